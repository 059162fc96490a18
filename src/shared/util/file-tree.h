/* SPDX-License-Identifier: MIT */
#pragma once

/* Whole-tree operations through directory fds: nothing here follows a
 * symlink (a symlink is copied as a symlink, removed as a symlink), so a
 * tree cannot lead a copy or a removal outside itself. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "progress.h"

#define FILE_TREE_DEPTH_MAX 64
#define SHA256_HEX_LEN 64

/* Remove dirfd/name and everything below it. A missing name is not an
 * error. Returns 0 or the first error (removal goes on past it). */
int rm_rf_at(int dirfd, const char *name);

/* Return true to leave out relpath (relative to the tree's root, "a/b.ko")
 * and, for a directory, everything below it. */
typedef bool (*FileTreeSkipFn)(const char *relpath, bool is_dir, void *userdata);

/* Copy the contents of src_fd (a directory) into dst_fd (an existing
 * directory): directories, regular files (exact permission bits; owner too
 * when running as root) and symlinks (target kept verbatim). Other file
 * types (devices, fifos, sockets) are skipped. Existing names are -EEXIST. */
int copy_tree_at(int src_fd, int dst_fd, FileTreeSkipFn skip, void *userdata);

/* Copy a regular file into dst_dirfd/name, created with O_EXCL and exactly
 * mode; returns its size and sha256 (lowercase hex) when asked. Reports
 * bytes to progress under stage, and stops with -ECANCELED between chunks
 * when progress says so (progress_check). On failure the partial file is
 * removed. */
int copy_file_at(int src_fd, int dst_dirfd, const char *name, mode_t mode, const Progress *progress, const char *stage,
                 char ret_sha256[SHA256_HEX_LEN + 1], uint64_t *ret_size);

/* Write a buffer to a new file dst_dirfd/name (O_EXCL, exactly mode), with
 * its sha256. On failure the partial file is removed. */
int write_new_file_at(int dst_dirfd, const char *name, const void *data, size_t len, mode_t mode,
                      char ret_sha256[SHA256_HEX_LEN + 1]);

/* sha256 (lowercase hex) of a buffer, and of a file read from offset 0. */
int sha256_buffer(const void *data, size_t len, char ret[static SHA256_HEX_LEN + 1]);
int sha256_fd(int fd, char ret[static SHA256_HEX_LEN + 1], uint64_t *ret_size);

/* Sum of the sizes of the regular files below a directory (symlinks not
 * followed), for sizing a filesystem image. */
int tree_disk_usage(int dir_fd, uint64_t *ret_bytes, uint64_t *ret_inodes);
