/* SPDX-License-Identifier: MIT */
#pragma once

/* After a crash or a failed teardown, loop and dm devices backed by files in
 * the managed state directory may outlive their VM. Reconcile lists them and
 * removes every one the caller says no VM owns: dm devices first (they hold
 * their loops; only banger's, see disk_dm_is_managed), then loops. */

#include <stdbool.h>

#include "dm-snapshot.h"

typedef enum DiskHandleKind {
        DISK_HANDLE_LOOP, /* id: backing file path */
        DISK_HANDLE_DM,   /* id: dm device name */
} DiskHandleKind;

/* Return true when a live VM still uses this handle. */
typedef bool (*DiskOwnedFn)(DiskHandleKind kind, const char *id, void *userdata);

/* managed_dir: absolute path of the state directory. Returns the number of
 * devices removed, or -errno (it keeps going past single failures and
 * reports the first). */
int disk_reconcile(const char *managed_dir, DiskOwnedFn owned, void *userdata);

/* Every dm device banger makes is named "banger-…". */
#define DISK_DM_PREFIX "banger-"

/* A dm device reconcile may remove: named DISK_DM_PREFIX…, and stacked only
 * on loop devices over files beneath dir (so not another helper's, and not
 * something else someone stacked on one of our loops). */
bool disk_dm_is_managed(const DmDevice *d, const char *dir);
