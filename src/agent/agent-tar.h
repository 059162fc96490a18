/* SPDX-License-Identifier: MIT */
#pragma once

/* The tar format of file transfers (POSIX pax interchange format: ustar
 * headers, with pax extended headers for what ustar cannot hold: long
 * names, large sizes and ids, sub-second mtimes). The host reads and writes
 * it with libarchive; the agent, which links nothing but libc, with this.
 * The reader also accepts GNU long names and base-256 numbers, which other
 * tar writers produce. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAR_BLOCK 512U
/* Limits on what a reader accepts from the other side. */
#define TAR_PATH_MAX 4096U
#define TAR_PAX_MAX (64U * 1024U)

typedef enum TarType {
        TAR_REG = '0',
        TAR_LINK = '1', /* hard link to linkpath */
        TAR_SYMLINK = '2',
        TAR_CHR = '3',
        TAR_BLK = '4',
        TAR_DIR = '5',
        TAR_FIFO = '6',
} TarType;

typedef struct TarEntry {
        char *path;     /* as in the archive ("top/a/b", "./a"); owned */
        char *linkpath; /* hard link target or symlink text; owned, NULL when none */
        char type;      /* TarType */
        uint32_t mode;  /* permission bits, set-id and sticky bits included */
        uint64_t uid, gid;
        uint64_t size; /* data bytes that follow (regular files only) */
        int64_t mtime_sec;
        uint32_t mtime_nsec;
        uint32_t devmajor, devminor;
} TarEntry;

void tar_entry_done(TarEntry *e);

/* The header blocks for e (a pax header first when needed); *ret is
 * allocated, its length a multiple of TAR_BLOCK. */
int tar_header_encode(const TarEntry *e, uint8_t **ret, size_t *ret_len);

/* A reader over a byte source. read() fills up to len bytes and returns
 * the count, 0 at end of input, or -errno. */
typedef struct TarReader {
        long (*read)(void *userdata, uint8_t *buf, size_t len);
        void *userdata;
        uint64_t left; /* data bytes of the current entry not yet read */
        uint64_t pad;  /* padding after them */
        bool end;
} TarReader;

/* The next entry: 1 and *ret, 0 at the end of the archive, -EBADMSG for a
 * malformed archive (with a reason in *ret_why), other -errno from read(). */
int tar_read_header(TarReader *r, TarEntry *ret, const char **ret_why);
/* Read up to len bytes of the current entry's data: > 0 bytes, 0 when the
 * entry's data is done, < 0 on error (-EBADMSG: the archive ends early). */
long tar_read_data(TarReader *r, uint8_t *buf, size_t len);
