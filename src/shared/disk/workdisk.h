/* SPDX-License-Identifier: MIT */
#pragma once

/* The per-VM work disk (mounted at /root in the guest): either a fresh
 * sparse ext4 of the requested size, or a clone of the image's work seed
 * grown to that size. The file is created O_EXCL with mode 0600 beneath the
 * given directory and removed again if any step fails. */

#include <stdbool.h>
#include <stdint.h>

#include "disk-clone.h"

#define WORKDISK_DEFAULT_SIZE (8ULL << 30)
#define WORKDISK_MIN_SIZE (16ULL << 20)

/* Sparse file of size bytes, formatted with mkfs.ext4 (label "banger-work"). */
int workdisk_create(int dirfd, const char *name, uint64_t size);

/* The same work disk, cloned (reflink, else sparse copy) from a formatted
 * template of that size in template_dirfd ("work-SIZE.ext4", made with
 * workdisk_create() the first time), which costs no mkfs. With
 * WORKDISK_TEMPLATES_MAX templates there already (sizes are the user's),
 * the disk is formatted directly. *ret_cloned: whether it is a clone, in
 * which case it has the template's filesystem UUID and hash seed, and is
 * not synced yet: the caller gives it its own (ext4_image_new_identity())
 * before any use, and ext4_image_close() syncs it. */
#define WORKDISK_TEMPLATES_MAX 8
int workdisk_create_cached(int template_dirfd, int dirfd, const char *name, uint64_t size, bool *ret_cloned);

/* Clone seed (reflink or sparse copy, as allowed), then e2fsck -fp and, when
 * size is larger than the seed, extend the file and resize2fs. A size
 * smaller than the seed is refused (-EINVAL); 0 keeps the seed's size. */
int workdisk_from_seed(int seed_dirfd, const char *seed_name, int dirfd, const char *name, uint64_t size,
                       DiskCloneMethod allowed, DiskCloneMethod *ret_used);

/* Run an e2fsprogs tool on the file open at fd (it reopens it through
 * /proc/<pid>/fd, so the state directory is not walked by path again).
 * Exit codes <= ok_max count as success; otherwise -EIO with the tool's
 * output recorded by error_setf(). Exposed for the helper's repair paths. */
int disk_run_e2fs_tool(const char *tool, const char *const *args, int fd, int ok_max);
