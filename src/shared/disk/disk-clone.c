/* SPDX-License-Identifier: MIT */
#include "disk-clone.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk-fault.h"
#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "path-beneath.h"
#include "undo.h"

#define COPY_CHUNK (16ULL << 20)
#define COPY_BUF (1U << 20)

const char *disk_clone_method_to_string(DiskCloneMethod m) {
        switch (m) {
        case DISK_CLONE_REFLINK:
                return "reflink";
        case DISK_CLONE_DM_SNAPSHOT:
                return "dm-snapshot";
        case DISK_CLONE_SPARSE_COPY:
                return "sparse-copy";
        default:
                return NULL;
        }
}

bool disk_dm_available(void) {
        return access("/dev/mapper/control", F_OK) == 0;
}

uint64_t disk_dm_cow_size(uint64_t base_size) {
        /* 16 bytes of exception metadata per 4 KiB chunk is 1/256; /128
         * leaves room for the header and partially filled metadata areas. */
        return base_size + base_size / 128 + (4ULL << 20);
}

/* The errors FICLONE gives when the filesystem (or this pair of files)
 * cannot share extents: fall back rather than fail. */
static bool reflink_unsupported(int err) {
        return err == EOPNOTSUPP || err == ENOTTY || err == EXDEV || err == EINVAL || err == ENOSYS || err == EPERM;
}

static int copy_range_slow(int src, int dst, off_t off, off_t end) {
        _cleanup_free_ char *buf = malloc(COPY_BUF);
        if (!buf)
                return -ENOMEM;
        while (off < end) {
                size_t want = (size_t) MIN((off_t) COPY_BUF, end - off);
                ssize_t n = pread(src, buf, want, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO; /* source shrank under us */
                for (ssize_t w = 0; w < n;) {
                        ssize_t k = pwrite(dst, buf + w, (size_t) (n - w), off + w);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0)
                                return -errno;
                        w += k;
                }
                off += n;
        }
        return 0;
}

static int copy_range(int src, int dst, off_t off, off_t end) {
        while (off < end) {
                off_t in = off, out = off;
                size_t len = (size_t) MIN((off_t) COPY_CHUNK, end - off);
                ssize_t n = copy_file_range(src, &in, dst, &out, len, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL))
                        return copy_range_slow(src, dst, off, end);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                off += n;
        }
        return 0;
}

/* Copy only the data segments; dst was ftruncate()d to size, so every
 * range we skip stays a hole. */
static int copy_sparse(int src, int dst, off_t size) {
        if (ftruncate(dst, size) < 0)
                return -errno;
        for (off_t pos = 0; pos < size;) {
                off_t data = lseek(src, pos, SEEK_DATA);
                if (data < 0 && errno == ENXIO)
                        break; /* only a hole remains */
                if (data < 0)
                        return -errno;
                off_t hole = lseek(src, data, SEEK_HOLE);
                if (hole < 0)
                        return -errno;
                int r = copy_range(src, dst, data, MIN(hole, size));
                if (r < 0)
                        return r;
                pos = hole;
        }
        return 0;
}

static int clone_into(int src, int dst, off_t size, DiskCloneMethod allowed, DiskCloneMethod *ret_used) {
        int r;
        if (allowed & DISK_CLONE_REFLINK) {
                if ((r = disk_fault_point("clone-reflink")) < 0)
                        return r;
                if (ioctl(dst, FICLONE, src) >= 0) {
                        *ret_used = DISK_CLONE_REFLINK;
                        return 0;
                }
                if (!reflink_unsupported(errno))
                        return error_setf(-errno, "FICLONE failed: %s", strerror(errno));
                log_debug("FICLONE not supported here (%s), falling back", strerror(errno));
        }
        if ((allowed & DISK_CLONE_DM_SNAPSHOT) && disk_dm_available()) {
                if ((r = disk_fault_point("clone-dm-cow")) < 0)
                        return r;
                /* A fresh all-zero store is what a new persistent snapshot expects. */
                if (ftruncate(dst, (off_t) disk_dm_cow_size((uint64_t) size)) < 0)
                        return error_setf(-errno, "cannot size COW store: %s", strerror(errno));
                *ret_used = DISK_CLONE_DM_SNAPSHOT;
                return 0;
        }
        if (allowed & DISK_CLONE_SPARSE_COPY) {
                if ((r = disk_fault_point("clone-copy")) < 0)
                        return r;
                r = copy_sparse(src, dst, size);
                if (r < 0)
                        return error_setf(r, "copying disk data failed: %s", strerror(-r));
                *ret_used = DISK_CLONE_SPARSE_COPY;
                return 0;
        }
        return error_setf(-EOPNOTSUPP, "no allowed clone method works here");
}

/* The clone, created O_EXCL 0600 with its removal recorded on undo; its fd
 * (read-write), not synced yet. */
static int clone_new(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name, DiskCloneMethod allowed,
                     UndoStack *undo, DiskCloneMethod *ret_used) {
        int r = disk_fault_point("clone-open-source");
        if (r < 0)
                return r;
        _cleanup_close_ int src = open_beneath(src_dirfd, src_name, O_RDONLY | O_NOCTTY, 0);
        if (src < 0)
                return error_setf(src, "cannot open clone source %s: %s", src_name, strerror(-src));
        struct stat st;
        if (fstat(src, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return error_setf(-EBADFD, "clone source %s is not a regular file", src_name);

        if ((r = disk_fault_point("clone-create")) < 0)
                return r;
        _cleanup_close_ int dst = open_beneath(dst_dirfd, dst_name, O_RDWR | O_CREAT | O_EXCL | O_NOCTTY, 0600);
        if (dst < 0)
                return error_setf(dst, "cannot create %s: %s", dst_name, strerror(-dst));
        if ((r = undo_push_unlink(undo, dst_dirfd, dst_name)) < 0)
                return r;
        if ((r = clone_into(src, dst, st.st_size, allowed, ret_used)) < 0)
                return r;
        log_debug("cloned %s to %s with %s", src_name, dst_name, disk_clone_method_to_string(*ret_used));
        return TAKE_FD(dst);
}

int disk_clone(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name, DiskCloneMethod allowed,
               DiskCloneMethod *ret_used) {
        _cleanup_undo_ UndoStack undo = UNDO_STACK_INIT;
        DiskCloneMethod used = 0;
        _cleanup_close_ int dst = clone_new(src_dirfd, src_name, dst_dirfd, dst_name, allowed, &undo, &used);
        if (dst < 0)
                return dst;
        int r = disk_sync_commit(dst, dst_name, "clone-fsync", &undo);
        if (r < 0)
                return r;
        if (ret_used)
                *ret_used = used;
        return 0;
}

int disk_clone_file_open(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name,
                         DiskCloneMethod allowed, UndoStack *undo, DiskCloneMethod *ret_used) {
        /* No fsync here: the caller edits the file and syncs it once, at its
         * disk_sync_commit(). */
        DiskCloneMethod used = 0;
        int fd = clone_new(src_dirfd, src_name, dst_dirfd, dst_name, allowed & DISK_CLONE_FILE, undo, &used);
        if (fd >= 0 && ret_used)
                *ret_used = used;
        return fd;
}

int disk_sync_commit(int fd, const char *name, const char *step, UndoStack *undo) {
        int r = disk_fault_point(step);
        if (r < 0)
                return r;
        if (fsync(fd) < 0)
                return error_setf(-errno, "fsync of %s failed: %s", name, strerror(errno));
        undo_commit(undo);
        return 0;
}

int disk_commit_synced(const char *step, UndoStack *undo) {
        int r = disk_fault_point(step);
        if (r < 0)
                return r;
        undo_commit(undo);
        return 0;
}

int disk_clone_probe(int dirfd, DiskCloneMethod *ret) {
        _cleanup_close_ int a = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        _cleanup_close_ int b = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (a < 0 || b < 0)
                return error_setf(-errno, "cannot create probe files: %s", strerror(errno));
        char block[4096];
        memset(block, 0x5a, sizeof(block));
        int r = loop_write(a, block, sizeof(block));
        if (r < 0)
                return r;
        if (ioctl(b, FICLONE, a) >= 0)
                *ret = DISK_CLONE_REFLINK;
        else if (!reflink_unsupported(errno))
                return error_setf(-errno, "FICLONE probe failed: %s", strerror(errno));
        else if (disk_dm_available())
                *ret = DISK_CLONE_DM_SNAPSHOT;
        else
                *ret = DISK_CLONE_SPARSE_COPY;
        return 0;
}
