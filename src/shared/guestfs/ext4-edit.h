/* SPDX-License-Identifier: MIT */
#pragma once

/* Edit an unmounted ext4 image file through libext2fs: nothing is mounted,
 * no debugfs or e2cp is run, and guest paths are resolved inside the image
 * only (a symlink inside the image is refused as a directory component and
 * replaced, never followed, as a final component), so a hostile image cannot
 * redirect a write onto the host. The image must not be mounted or in use by
 * a VM while it is edited. Errors are -errno; the libext2fs cause is recorded
 * with error_setf(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

typedef struct Ext4Image Ext4Image;

#define EXT4_GUEST_PATH_MAX 1024
#define EXT4_GUEST_DEPTH_MAX 32
/* Largest file written or read in one call. */
#define EXT4_FILE_MAX (256ULL << 20)

/* Absolute, no "." or ".." or empty components, no trailing '/', names <= 255
 * bytes, at most EXT4_GUEST_DEPTH_MAX components, shorter than
 * EXT4_GUEST_PATH_MAX, and not "/" itself. */
bool ext4_guest_path_is_valid(const char *path);

/* Open the image held by fd (a regular file, or the block device of an
 * assembled dm snapshot, opened read-write, e.g. with
 * open_beneath()); libext2fs reopens it through /proc/self/fd so no path
 * lookup in the state directory happens again. Refuses an image whose
 * journal needs recovery (-EUCLEAN). */
int ext4_image_open_fd(int fd, Ext4Image **ret);

/* Flush everything (superblock, bitmaps, caches), fsync the image once and
 * free. For images no VM uses yet: nothing orders the superblock after the
 * data before that one fsync. Returns the flush result; img is freed either
 * way. */
int ext4_image_close(Ext4Image *img);
/* Give the filesystem a random UUID and directory hash seed of its own (a
 * clone of a template has the template's). Only before its directories
 * grow hash trees (an empty filesystem); with metadata_csum, only when the
 * checksum seed is stored (metadata_csum_seed), else -EOPNOTSUPP. Written
 * at ext4_image_close(). */
int ext4_image_new_identity(Ext4Image *img);

/* Free without flushing (after a failure; the caller discards the image). */
void ext4_image_abort(Ext4Image *img);
DEFINE_TRIVIAL_CLEANUP_FUNC(Ext4Image *, ext4_image_abort);
#define _cleanup_ext4_image_ _cleanup_(ext4_image_abortp)

/* Create every missing directory of path with mode/uid/gid; existing
 * directories are left as they are. */
int ext4_mkdir_p(Ext4Image *img, const char *path, mode_t mode, uid_t uid, gid_t gid);

/* Set permission bits and owner of an existing path. */
int ext4_set_attrs(Ext4Image *img, const char *path, mode_t mode, uid_t uid, gid_t gid);

/* Create or replace a regular file (the parent must exist). A previous
 * entry (file or symlink) is unlinked and its blocks freed; a directory
 * there gives -EISDIR. Data is written through extents when the filesystem
 * has them. */
int ext4_write_file(Ext4Image *img, const char *path, const void *data, size_t len, mode_t mode, uid_t uid, gid_t gid);

/* Same, with the content read from a host fd (regular file, <= EXT4_FILE_MAX). */
int ext4_write_file_from_fd(Ext4Image *img, const char *path, int fd, mode_t mode, uid_t uid, gid_t gid);

/* Create or replace a symlink path -> target. */
int ext4_symlink(Ext4Image *img, const char *path, const char *target);

/* Read a regular file (symlinks are not followed: -ELOOP). */
int ext4_read_file(Ext4Image *img, const char *path, size_t max, char **ret, size_t *ret_len);

typedef struct Ext4Stat {
        mode_t mode; /* type and permission bits, as in struct stat */
        uid_t uid;
        gid_t gid;
        uint64_t size;
} Ext4Stat;

int ext4_stat(Ext4Image *img, const char *path, Ext4Stat *ret);
