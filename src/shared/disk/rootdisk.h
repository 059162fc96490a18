/* SPDX-License-Identifier: MIT */
#pragma once

/* A VM's writable root disk: a copy-on-write clone of the image rootfs with
 * the guest patch (hostname, network, keys, files) written into it. Either
 * the finished disk exists, or nothing does. */

#include "disk-clone.h"
#include "guest-patch.h"

/* Clone base (beneath base_dirfd) to name (beneath dirfd) with a file-based
 * method from allowed, then apply patch. On failure the clone is removed. */
int rootdisk_create(int base_dirfd, const char *base_name, int dirfd, const char *name, DiskCloneMethod allowed,
                    const GuestPatch *patch, DiskCloneMethod *ret_used);
