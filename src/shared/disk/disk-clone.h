/* SPDX-License-Identifier: MIT */
#pragma once

/* Copy-on-write clones of image disks. A VM's writable root is a clone of
 * the image rootfs, made with the cheapest method the state directory's
 * filesystem supports:
 *   reflink      FICLONE on XFS/btrfs: shares every extent, so a 64 GiB image
 *                clones as fast as a 1 GiB one;
 *   dm-snapshot  the clone is a sparse, all-zero COW store file; at VM start
 *                dm_snapshot_assemble() stacks it (persistent snapshot) on a
 *                read-only loop of the base (see dm-snapshot.h);
 *   sparse copy  SEEK_DATA/SEEK_HOLE + copy_file_range: data is copied, holes
 *                stay holes. */

#include <stdbool.h>
#include <stdint.h>

#include "undo.h"

typedef enum DiskCloneMethod {
        DISK_CLONE_REFLINK = 1 << 0,
        DISK_CLONE_DM_SNAPSHOT = 1 << 1,
        DISK_CLONE_SPARSE_COPY = 1 << 2,
        DISK_CLONE_ANY = DISK_CLONE_REFLINK | DISK_CLONE_DM_SNAPSHOT | DISK_CLONE_SPARSE_COPY,
        /* Methods whose result is a plain file holding the whole disk. */
        DISK_CLONE_FILE = DISK_CLONE_REFLINK | DISK_CLONE_SPARSE_COPY,
} DiskCloneMethod;

const char *disk_clone_method_to_string(DiskCloneMethod m);

/* Clone src (beneath src_dirfd) to dst (beneath dst_dirfd), trying the
 * allowed methods in the order reflink, dm-snapshot, sparse copy. dst is
 * created O_EXCL with mode 0600 and removed again on any failure. The method
 * used is stored in *ret_used (may be NULL) on success. */
int disk_clone(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name, DiskCloneMethod allowed,
               DiskCloneMethod *ret_used);

/* disk_clone() with only the methods among allowed whose result is a
 * complete file (reflink, sparse copy), its removal recorded on undo, and
 * not synced: the fd, read-write, for the caller to edit and then sync with
 * disk_sync_commit(); or -errno with a message. */
int disk_clone_file_open(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name,
                         DiskCloneMethod allowed, UndoStack *undo, DiskCloneMethod *ret_used);

/* The last step of a disk setup: the fault point step, fsync of the file
 * (name for the message), then undo_commit(). */
int disk_sync_commit(int fd, const char *name, const char *step, UndoStack *undo);

/* The same for a file the caller has just fsynced itself (an ext4 edit's
 * close does): the fault point step, then undo_commit(), without a second
 * fsync that would find nothing to write yet still flush the device. */
int disk_commit_synced(const char *step, UndoStack *undo);

/* Which method disk_clone() would use for a clone into dirfd (for doctor):
 * reflink if FICLONE works there (tested on two unnamed O_TMPFILE files, so
 * nothing is left behind), else dm-snapshot if device-mapper exists, else
 * sparse copy. */
int disk_clone_probe(int dirfd, DiskCloneMethod *ret);

/* /dev/mapper/control exists (device-mapper usable on this host). */
bool disk_dm_available(void);

/* Size of the COW store for a base of base_size bytes: big enough that the
 * snapshot can never overflow (every chunk rewritten, plus metadata). */
uint64_t disk_dm_cow_size(uint64_t base_size);
