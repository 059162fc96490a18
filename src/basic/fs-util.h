/* SPDX-License-Identifier: MIT */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

/* Open a directory without following a final symlink; O_CLOEXEC always. */
int open_dir_nofollow(int dirfd, const char *path);

/* A directory stream on dirfd/path, opened as open_dir_nofollow() does. It
 * is a new open file description, so its offset is its own: "." reads
 * dirfd's directory without the shared offset a dup would bring. */
int opendir_at(int dirfd, const char *path, DIR **ret);
static inline void closedir_safep(DIR **d) {
        if (*d) {
                int saved = errno;
                (void) closedir(*d);
                errno = saved;
        }
}
#define _cleanup_closedir_ _cleanup_(closedir_safep)

/* mkdirat() with the final mode (the umask can only narrow it, so the
 * directory never exists with looser bits); EEXIST is not an error. Returns
 * 1 if created, 0 if it existed. */
int mkdirat_private(int dirfd, const char *name, mode_t mode);

/* Create every component of an absolute path with mode (existing ones are
 * left alone). */
int mkdir_p(const char *path, mode_t mode);

/* Write data to dirfd/name atomically: temp file in the same directory
 * created with `mode`, write, fsync, renameat, fsync the directory. */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode);
/* The same, for files others rely on (system units): the file gets exactly
 * mode, whatever the umask, and owner uid:gid, both set on the temp file's
 * fd before it holds any content or takes the name. */
int write_file_atomic_at_owned(int dirfd, const char *name, const void *data, size_t len, mode_t mode, uid_t uid,
                               gid_t gid);

/* Read a whole regular file (O_NOFOLLOW), refusing files larger than max. */
int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len);
/* The same for an fd already open (read from its current offset). */
int read_file_fd(int fd, size_t max, char **ret, size_t *ret_len);

/* Read a procfs or sysfs file (they report size 0, so read_file_at()'s
 * size check does not apply) until EOF or max bytes, whichever comes first:
 * a longer file is cut at max. NUL-terminated; O_NOFOLLOW, O_CLOEXEC. */
int read_virtual_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len);

/* Write everything, retrying on EINTR and short writes. */
int loop_write(int fd, const void *buf, size_t len);

/* Read up to len bytes, retrying on EINTR and short reads; returns bytes read. */
ssize_t loop_read(int fd, void *buf, size_t len);

/* Join two path components into a newly allocated string. */
char *path_join(const char *a, const char *b);

/* Free disk space in bytes for the filesystem holding fd. */
int fd_free_bytes(int fd, unsigned long long *ret);
