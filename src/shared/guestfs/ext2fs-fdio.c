/* SPDX-License-Identifier: MIT */

/* A libext2fs I/O manager over an fd the caller already opened: pread and
 * pwrite on a duplicate of it, no cache of its own (the kernel's page cache
 * is one). It exists for what unix_io does on every read-write open: an
 * fsync of the device "to clear stale errors". On a disk just cloned (a
 * reflink's whole metadata, on a loop-mounted or busy filesystem) that
 * fsync is a log force and a device flush, and it clears nothing: an error
 * of earlier writeback is reported to an fsync through the file description
 * that sampled it, and ext4_image_close() fsyncs the caller's fd anyway. */
#include "ext2fs-util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct FdIo {
        int fd;
} FdIo;

static errcode_t fdio_close(io_channel channel) {
        if (--channel->refcount > 0)
                return 0;
        FdIo *io = channel->private_data;
        if (io)
                (void) close(io->fd);
        free(io);
        free(channel->name);
        free(channel);
        return 0;
}

static errcode_t fdio_open(const char *name, int flags, io_channel *ret) {
        char *end = NULL;
        errno = 0;
        long n = name ? strtol(name, &end, 10) : -1;
        if (!name || errno || !end || *end || n < 0 || n > INT32_MAX)
                return EXT2_ET_BAD_DEVICE_NAME;
        io_channel channel = calloc(1, sizeof(*channel));
        FdIo *io = calloc(1, sizeof(*io));
        char *copy = strdup(name);
        int fd = fcntl((int) n, F_DUPFD_CLOEXEC, 3);
        if (!channel || !io || !copy || fd < 0) {
                errcode_t e = fd < 0 ? (errcode_t) errno : EXT2_ET_NO_MEMORY;
                if (fd >= 0)
                        (void) close(fd);
                free(copy);
                free(io);
                free(channel);
                return e;
        }
        io->fd = fd;
        *channel = (struct struct_io_channel){ .magic = EXT2_ET_MAGIC_IO_CHANNEL,
                                               .manager = libext2fs_fd_io_manager,
                                               .name = copy,
                                               .block_size = 1024,
                                               .refcount = 1,
                                               .private_data = io };
        *ret = channel;
        return 0;
}

static errcode_t fdio_set_blksize(io_channel channel, int blksize) {
        if (blksize <= 0)
                return EXT2_ET_INVALID_ARGUMENT;
        channel->block_size = blksize;
        return 0;
}

/* count < 0 is a byte count (libext2fs's convention), else blocks. */
static errcode_t fdio_span(io_channel channel, unsigned long long block, int count, size_t *ret_size,
                           off_t *ret_offset) {
        unsigned long long size = count < 0 ? (unsigned long long) -(long long) count
                                            : (unsigned long long) count * (unsigned) channel->block_size;
        if (size > SSIZE_MAX || block > (unsigned long long) INT64_MAX / (unsigned) channel->block_size)
                return EXT2_ET_INVALID_ARGUMENT;
        *ret_size = (size_t) size;
        *ret_offset = (off_t) (block * (unsigned) channel->block_size);
        return 0;
}

static errcode_t fdio_read_blk64(io_channel channel, unsigned long long block, int count, void *data) {
        FdIo *io = channel->private_data;
        size_t size = 0, done = 0;
        off_t off = 0;
        errcode_t e = fdio_span(channel, block, count, &size, &off);
        while (!e && done < size) {
                ssize_t n = pread(io->fd, (char *) data + done, size - done, off + (off_t) done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        e = n < 0 ? (errcode_t) errno : EXT2_ET_SHORT_READ;
                        break;
                }
                done += (size_t) n;
        }
        if (e && done < size) /* as unix_io: what was not read reads as zeros */
                memset((char *) data + done, 0, size - done);
        if (e && channel->read_error)
                return channel->read_error(channel, (unsigned long) block, count, data, size, (int) done, e);
        return e;
}

static errcode_t fdio_write_at(io_channel channel, off_t off, const void *data, size_t size) {
        FdIo *io = channel->private_data;
        size_t done = 0;
        while (done < size) {
                ssize_t n = pwrite(io->fd, (const char *) data + done, size - done, off + (off_t) done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? (errcode_t) errno : EXT2_ET_SHORT_WRITE;
                done += (size_t) n;
        }
        return 0;
}

static errcode_t fdio_write_blk64(io_channel channel, unsigned long long block, int count, const void *data) {
        size_t size = 0;
        off_t off = 0;
        errcode_t e = fdio_span(channel, block, count, &size, &off);
        if (!e)
                e = fdio_write_at(channel, off, data, size);
        if (e && channel->write_error)
                return channel->write_error(channel, (unsigned long) block, count, data, size, 0, e);
        return e;
}

static errcode_t fdio_read_blk(io_channel channel, unsigned long block, int count, void *data) {
        return fdio_read_blk64(channel, block, count, data);
}

static errcode_t fdio_write_blk(io_channel channel, unsigned long block, int count, const void *data) {
        return fdio_write_blk64(channel, block, count, data);
}

/* What libext2fs uses to rewrite only the superblock's changed bytes. */
static errcode_t fdio_write_byte(io_channel channel, unsigned long offset, int size, const void *data) {
        if (size < 0 || offset > (unsigned long) INT64_MAX)
                return EXT2_ET_INVALID_ARGUMENT;
        return fdio_write_at(channel, (off_t) offset, data, (size_t) size);
}

/* Nothing is cached here; syncing is the caller's (ext4_image_close). */
static errcode_t fdio_flush(io_channel channel) {
        return 0;
}

static errcode_t fdio_set_option(io_channel channel, const char *option, const char *arg) {
        return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager fdio_manager = {
        .magic = EXT2_ET_MAGIC_IO_MANAGER,
        .name = "banger fd I/O manager",
        .open = fdio_open,
        .close = fdio_close,
        .set_blksize = fdio_set_blksize,
        .read_blk = fdio_read_blk,
        .write_blk = fdio_write_blk,
        .flush = fdio_flush,
        .write_byte = fdio_write_byte,
        .set_option = fdio_set_option,
        .read_blk64 = fdio_read_blk64,
        .write_blk64 = fdio_write_blk64,
};

io_manager libext2fs_fd_io_manager = &fdio_manager;

errcode_t libext2fs_open_fd_unsynced(int fd, ext2_filsys *ret) {
        char name[16];
        snprintf(name, sizeof(name), "%d", fd);
        return ext2fs_open2(name, NULL, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, libext2fs_fd_io_manager, ret);
}
