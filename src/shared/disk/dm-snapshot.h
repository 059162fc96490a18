/* SPDX-License-Identifier: MIT */
#pragma once

/* The device-mapper clone path: a persistent snapshot target over a
 * read-only loop of the base image, with the VM's sparse COW store file
 * (made by disk_clone() with DISK_CLONE_DM_SNAPSHOT) on a second loop.
 * Tables go through `dmsetup` via the spawn module (argv only).
 *
 * NOTE: this host has no device-mapper (/dev/mapper/control is missing), so
 * this file is exercised only up to the "not available" check here; its
 * test skips with exit 77. */

#include <stddef.h>

/* Build /dev/mapper/<dm_name> over the files open on base_fd (read-only)
 * and cow_fd (read-write). Taking fds, not names, means what is attached is
 * exactly what the caller opened and checked: a name swapped in between
 * (for a FIFO, a device, someone else's file) is never reopened. Both loops
 * are AUTOCLEAR: once the dm table (their only remaining opener) is removed
 * they detach by themselves. On failure every step taken is undone.
 * -EOPNOTSUPP when device-mapper is missing. */
int dm_snapshot_assemble(int base_fd, int cow_fd, const char *dm_name, char **ret_device);

/* Remove the dm device (dmsetup remove --retry); absent is success. */
int dm_snapshot_remove(const char *dm_name);

typedef struct DmDevice {
        char *name;      /* dm name */
        char **backings; /* backing files of the loop devices beneath it */
} DmDevice;

void dm_device_free_many(DmDevice *l, size_t n);

/* Every dm device with the backing files of its loop slaves (sysfs). On a
 * host without device-mapper this is an empty list. */
int dm_list(DmDevice **ret, size_t *ret_n);
