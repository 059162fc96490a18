/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Open a directory without following a final symlink; O_CLOEXEC always. */
int open_dir_nofollow(int dirfd, const char *path);

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

/* Read a whole regular file (O_NOFOLLOW), refusing files larger than max. */
int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len);

/* Write everything, retrying on EINTR and short writes. */
int loop_write(int fd, const void *buf, size_t len);

/* Read up to len bytes, retrying on EINTR and short reads; returns bytes read. */
ssize_t loop_read(int fd, void *buf, size_t len);

/* Join two path components into a newly allocated string. */
char *path_join(const char *a, const char *b);

/* Free disk space in bytes for the filesystem holding fd. */
int fd_free_bytes(int fd, unsigned long long *ret);
