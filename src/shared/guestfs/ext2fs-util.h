/* SPDX-License-Identifier: MIT */
#pragma once

/* What every user of libext2fs (ext4-edit here, the OCI ext4 writer) needs
 * the same way: its errcode_t as a message and an errno, so the same
 * failure reads the same everywhere, and the steps it leaves to callers. */

#include <ext2fs/ext2fs.h>

/* The message for e: strerror() for the system errors unix_io passes
 * through, the ext2 error table's text otherwise. Never NULL. */
const char *libext2fs_error_text(errcode_t e);

/* -errno for e: system errors pass through; the ext2 codes that have an
 * errno counterpart (not found, exists, no space, read-only...) map to it;
 * anything else is -EIO. */
int libext2fs_error_to_errno(errcode_t e);

/* Open the filesystem on fd (a file or block device) read-write, through
 * /proc/self/fd so the caller's checks on fd hold for what is opened. The
 * libext2fs error, or 0 with *ret (bitmaps not read yet). */
errcode_t libext2fs_open_fd(int fd, ext2_filsys *ret);

/* The same through libext2fs_fd_io_manager (ext2fs-fdio.c): pread/pwrite on
 * a duplicate of fd, without unix_io's fsync at open. For an image the
 * caller fsyncs itself once it is written (ext4_image_close). */
extern io_manager libext2fs_fd_io_manager;
errcode_t libext2fs_open_fd_unsynced(int fd, ext2_filsys *ret);

/* Make directory name in parent (mode 0755, root-owned: callers set the
 * inode's attributes afterwards), growing parent when it has no room for
 * the entry. The libext2fs error, or 0 with *ret the new inode. */
errcode_t libext2fs_mkdir(ext2_filsys fs, ext2_ino_t parent, const char *name, ext2_ino_t *ret);

/* Link ino (of ext2 file type type) as name in parent, growing parent when
 * it has no room for the entry. The libext2fs error, or 0. */
errcode_t libext2fs_link(ext2_filsys fs, ext2_ino_t parent, const char *name, ext2_ino_t ino, int type);
