/* SPDX-License-Identifier: MIT */
#pragma once

/* libext2fs's errcode_t in terms banger reports: a message and an errno.
 * Every user of libext2fs (ext4-edit here, the OCI ext4 writer) goes through
 * these so the same failure reads the same everywhere. */

#include <ext2fs/ext2fs.h>

/* The message for e: strerror() for the system errors unix_io passes
 * through, the ext2 error table's text otherwise. Never NULL. */
const char *libext2fs_error_text(errcode_t e);

/* -errno for e: system errors pass through; the ext2 codes that have an
 * errno counterpart (not found, exists, no space, read-only...) map to it;
 * anything else is -EIO. */
int libext2fs_error_to_errno(errcode_t e);
