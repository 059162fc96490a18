/* SPDX-License-Identifier: MIT */
#pragma once

/* Opening state files strictly beneath a directory fd. Every disk path banger
 * touches lives under its managed state directory; a symlink or ".." planted
 * there (by a guest-influenced name, a stale file, another user) must never
 * send an open, create or unlink somewhere else. */

#include <stdbool.h>
#include <sys/types.h>

/* A relative path with no ".." component, no empty component (no "//", no
 * leading or trailing '/'), components <= 255 bytes and total < 4096. "."
 * components are refused too, so one path names one thing. */
bool path_beneath_is_valid(const char *relpath);

/* openat(dirfd, relpath, flags, mode) that fails rather than leave dirfd:
 * absolute paths and ".." give -EXDEV, a symlink anywhere (middle or end)
 * gives -ELOOP, an invalid path -EINVAL. Uses openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) and falls back to a
 * component walk with O_NOFOLLOW when the kernel lacks openat2. O_CLOEXEC
 * is always added. */
int open_beneath(int dirfd, const char *relpath, int flags, mode_t mode);

/* The fallback walk on its own, so tests cover it on kernels with openat2. */
int open_beneath_walk(int dirfd, const char *relpath, int flags, mode_t mode);

enum {
        /* Also refuse (-EXDEV) to cross a mount point on the way, the last
         * component included (RESOLVE_NO_XDEV; the walk compares mount ids
         * before it looks inside). For a privileged process resolving paths
         * in a directory someone else can write: that someone could mount a
         * FUSE filesystem there and stall any lookup or open() in it. */
        BENEATH_NO_XDEV = 1 << 0,
};

int open_beneath_ex(int dirfd, const char *relpath, int flags, mode_t mode, unsigned how);
int open_beneath_walk_ex(int dirfd, const char *relpath, int flags, mode_t mode, unsigned how);

/* Open the directory holding relpath's last component (beneath dirfd) and
 * return its fd; *ret_base points into relpath at the last component. */
int open_parent_beneath(int dirfd, const char *relpath, const char **ret_base);

/* unlinkat() of relpath beneath dirfd (flags as unlinkat: 0 or AT_REMOVEDIR). */
int unlink_beneath(int dirfd, const char *relpath, int flags);
