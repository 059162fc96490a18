/* SPDX-License-Identifier: MIT */
/* A VM's console log: opened through the state directory, its tail for
 * error replies. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console-stream.h"
#include "fs-util.h"
#include "macro.h"
#include "path-beneath.h"
#include "vm-internal.h"

int vm_console_log_open(VmManager *m, const char *id) {
        char rel[64];
        snprintf(rel, sizeof(rel), "vms/%s/console.log", id);
        return open_beneath(m->d->state_dir_fd, rel, O_RDONLY, 0);
}

/* Last lines of the console log, for error replies. */
char *vm_log_tail(VmManager *m, const char *id, size_t max) {
        _cleanup_close_ int fd = vm_console_log_open(m, id);
        if (fd < 0)
                return NULL;
        off_t size = lseek(fd, 0, SEEK_END);
        off_t from = size > (off_t) max ? size - (off_t) max : 0;
        char *buf = calloc(1, max + 1);
        if (!buf)
                return NULL;
        ssize_t n = pread(fd, buf, max, from);
        if (n < 0)
                n = 0;
        buf[n] = '\0';
        /* Start at a line boundary; keep it valid UTF-8-ish for JSON. */
        char *nl = from > 0 ? strchr(buf, '\n') : NULL;
        if (nl)
                memmove(buf, nl + 1, strlen(nl + 1) + 1);
        for (char *p = buf; *p; p++)
                if ((unsigned char) *p >= 0x80 || (*p < 0x20 && *p != '\n' && *p != '\t'))
                        *p = '?';
        return buf;
}

typedef struct Part {
        int fd;
        uint64_t size, ino;
} Part;

/* A part's identity for clients: its inode number alone could be reused by
 * a later part right after the rotation that deleted it (the client would
 * then skip ahead), so its birth time is mixed in where the file system
 * records one. Never 0 (that means console.log). */
static uint64_t part_id(const struct statx *sx) {
        uint64_t born = (sx->stx_mask & STATX_BTIME)
                                ? (uint64_t) sx->stx_btime.tv_sec * 1000000000ULL + sx->stx_btime.tv_nsec
                                : 0;
        uint64_t id = (sx->stx_ino ^ (born * 0x9E3779B97F4A7C15ULL)) & (uint64_t) INT64_MAX;
        return id ? id : 1;
}

static Part part_open(int dfd, const char *name) {
        Part p = { .fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK) };
        struct statx sx;
        if (p.fd >= 0 && (statx(p.fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_INO | STATX_SIZE | STATX_BTIME, &sx) < 0 ||
                          !S_ISREG(sx.stx_mode)))
                p.fd = safe_close(p.fd);
        if (p.fd >= 0) {
                p.size = sx.stx_size;
                p.ino = part_id(&sx);
        }
        return p;
}

/* Where the client's position lies in old + cur read as one stream. */
static uint64_t start_of(const Part *old, const Part *cur, bool from_offset, uint64_t offset, uint64_t file,
                         size_t tail) {
        uint64_t total = old->size + cur->size;
        if (!from_offset)
                return total > tail ? total - tail : 0;
        if (file == 0 || (cur->fd >= 0 && file == cur->ino))
                return old->size + MIN(offset, cur->size);
        if (old->fd >= 0 && file == old->ino)
                return MIN(offset, old->size);
        return 0; /* rotated away: from the oldest part kept */
}

static int read_parts(const Part *old, const Part *cur, uint64_t v, char *buf, size_t len, size_t *ret) {
        size_t n = 0;
        while (n < len) {
                uint64_t at = v + n;
                const Part *p = at < old->size ? old : cur;
                uint64_t off = at < old->size ? at : at - old->size;
                ssize_t k = pread(p->fd, buf + n, len - n, (off_t) off);
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break; /* a part shrank: stop here */
                n += (size_t) k;
        }
        *ret = n;
        return 0;
}

int vm_console_read(VmManager *m, const char *id, bool from_offset, uint64_t offset, uint64_t file, size_t tail,
                    size_t max, VmConsoleChunk *ret) {
        _cleanup_close_ int dfd = vm_dir_open(m, VM_DIR_STATE, id, false);
        if (dfd < 0)
                return dfd;
        /* console.log first: a rotation in between then shows one file twice. */
        Part cur = part_open(dfd, CONSOLE_LOG_NAME), old = part_open(dfd, CONSOLE_LOG_OLD_NAME);
        if (old.fd >= 0 && cur.fd >= 0 && old.ino == cur.ino)
                old = (Part){ .fd = safe_close(old.fd) };
        uint64_t v = start_of(&old, &cur, from_offset, offset, file, tail);
        size_t len = (size_t) MIN(old.size + cur.size - v, (uint64_t) max), n = 0;
        char *buf = malloc(len + 1);
        int r = buf ? read_parts(&old, &cur, v, buf, len, &n) : -ENOMEM;
        uint64_t end = v + n;
        if (r >= 0) {
                bool in_old = old.fd >= 0 && (end < old.size || cur.fd < 0);
                *ret = (VmConsoleChunk){ .data = buf,
                                         .len = n,
                                         .next_offset = in_old ? end : end - old.size,
                                         .next_file = in_old ? old.ino : cur.ino,
                                         .kept = old.size + cur.size };
                buf = NULL;
        }
        free(buf);
        safe_close(old.fd);
        safe_close(cur.fd);
        return r;
}
