/* SPDX-License-Identifier: MIT */
#pragma once

/* Snapshots inside the VM service (vm-snapshot.c takes them, vm-restore.c
 * restores them, snapshot-ops.c lists, deletes and recovers them). */

#include "disk-clone.h"
#include "vm-manager.h"

/* A VM's disks, in device order (root first), as files in its state
 * directory and in a snapshot's directory. */
#define VM_DISK_FILES 2
extern const char *const vm_disk_files[VM_DISK_FILES];

/* <state>/snapshots/<id> */
char *snapshot_dir(VmManager *m, const char *id);

/* Clone every disk file from src_dfd into dst_dfd (under its name plus
 * suffix, if given): reflink where possible, else a sparse copy. On failure
 * nothing new is left in dst_dfd. */
int vm_copy_disks(int src_dfd, int dst_dfd, const char *suffix, DiskCloneMethod *ret_used);
/* How the copy was made, for the progress. */
const char *vm_copy_method_words(DiskCloneMethod used);
/* Blocks the named files take. */
uint64_t vm_disk_used_bytes(int dfd, const char *const *names, size_t n);

/* With the VM's lock held. */
int vm_snapshot_locked(VmManager *m, Store *s, VmRecord *vm, const VmSnapshotRequest *req, VmProgress *p,
                       SnapshotRecord *ret);
