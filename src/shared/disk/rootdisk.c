/* SPDX-License-Identifier: MIT */
#include "rootdisk.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "disk-fault.h"
#include "error.h"
#include "macro.h"
#include "path-beneath.h"
#include "undo.h"

int rootdisk_create(int base_dirfd, const char *base_name, int dirfd, const char *name, DiskCloneMethod allowed,
                    const GuestPatch *patch, DiskCloneMethod *ret_used) {
        _cleanup_undo_ UndoStack undo = UNDO_STACK_INIT;
        /* Validate first: a bad request must not cost a clone. */
        int r = guest_patch_validate(patch);
        if (r < 0)
                return r;
        /* The patch edits a plain ext4 file; a dm COW store has no
         * filesystem of its own to edit before the snapshot exists. */
        DiskCloneMethod used = 0;
        _cleanup_close_ int fd = disk_clone_file_open(base_dirfd, base_name, dirfd, name, allowed, &undo, &used);
        if (fd < 0)
                return fd;
        /* The patch's close fsyncs the file: all of it, clone included. */
        if ((r = guest_patch_apply_fd(fd, patch)) < 0)
                return r;
        if ((r = disk_commit_synced("rootdisk-fsync", &undo)) < 0)
                return r;
        if (ret_used)
                *ret_used = used;
        return 0;
}
