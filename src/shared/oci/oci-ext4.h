/* SPDX-License-Identifier: MIT */
#pragma once

/* Writing an assembled image tree into a fresh ext4 filesystem: mkfs.ext4
 * formats the (sparse) file, then libext2fs creates every directory, file
 * (extents, holes skipped), symlink (fast or slow), hard link (one inode,
 * counted links), device node and FIFO with its mode (setuid, setgid and
 * sticky bits included), owner and mtime. Nothing is mounted and no host
 * path is ever created from image content. */

#include <stdint.h>

#include "oci-tree.h"

typedef int (*OciExt4ProgressFn)(uint64_t done, uint64_t total, void *userdata);

/* Image size for a tree: content x 1.5, at least min_size, rounded up to
 * 1 MiB. */
uint64_t oci_ext4_image_size(OciTree *t, uint64_t min_size);

/* Format the file open at image_fd (read-write, empty) with size bytes and
 * write t into it. label may be NULL. */
int oci_ext4_write(OciTree *t, int image_fd, uint64_t size, const char *label, OciExt4ProgressFn progress,
                   void *userdata);
