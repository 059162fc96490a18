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
        if ((r = disk_clone(base_dirfd, base_name, dirfd, name, allowed & DISK_CLONE_FILE, &used)) < 0)
                return r;
        if ((r = undo_push_unlink(&undo, dirfd, name)) < 0)
                return r;
        _cleanup_close_ int fd = open_beneath(dirfd, name, O_RDWR | O_NOCTTY, 0);
        if (fd < 0)
                return error_setf(fd, "cannot open %s: %s", name, strerror(-fd));
        if ((r = guest_patch_apply_fd(fd, patch)) < 0)
                return r;
        if ((r = disk_fault_point("rootdisk-fsync")) < 0)
                return r;
        if (fsync(fd) < 0)
                return error_setf(-errno, "fsync of %s failed: %s", name, strerror(errno));
        undo_commit(&undo);
        if (ret_used)
                *ret_used = used;
        return 0;
}
