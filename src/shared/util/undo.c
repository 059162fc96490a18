/* SPDX-License-Identifier: MIT */
#include "undo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "path-beneath.h"
#include "time-util.h"

#define UNDO_BUSY_RETRIES 8

static void entry_free(UndoEntry *e) {
        if (e->free_data)
                e->free_data(e->data);
        free(e->name);
        *e = (UndoEntry){};
}

/* Busy devices (a loop still opened by udev or blkid, a dm device being
 * scanned) usually free up within a few hundred milliseconds. */
static int entry_run(UndoEntry *e) {
        unsigned delay = 10;
        for (unsigned i = 0;; i++) {
                int r = e->fn(e->name, e->data);
                if (r == -ENOENT || r == -ENXIO)
                        r = 0;
                if (r != -EBUSY || i >= UNDO_BUSY_RETRIES) {
                        if (r < 0)
                                log_debug_errno(r, "undo %s %s failed: %m", e->kind, e->name);
                        return r;
                }
                sleep_ms(delay);
                delay = MIN(delay * 2, 320u);
        }
}

int undo_push(UndoStack *s, const char *kind, const char *name, UndoFn fn, void *data, void (*free_data)(void *)) {
        UndoEntry e = { .kind = kind, .name = strdup(name), .fn = fn, .data = data, .free_data = free_data };
        if (e.name && s->n == s->allocated) {
                size_t na = MAX(s->allocated * 2, (size_t) 8);
                UndoEntry *ne = reallocarray(s->entries, na, sizeof(UndoEntry));
                if (ne) {
                        s->entries = ne;
                        s->allocated = na;
                }
        }
        if (!e.name || s->n == s->allocated) {
                /* Can't record it: undo now rather than leak the handle. */
                if (e.name)
                        (void) entry_run(&e);
                else
                        (void) fn(name, data);
                entry_free(&e);
                return -ENOMEM;
        }
        s->entries[s->n++] = e;
        return 0;
}

static int unlink_step(const char *name, void *data) {
        return unlink_beneath((int) (intptr_t) data, name, 0);
}

static void close_data_fd(void *data) {
        safe_close((int) (intptr_t) data);
}

static int rmdir_step(const char *name, void *data) {
        return unlink_beneath((int) (intptr_t) data, name, AT_REMOVEDIR);
}

static int push_at(UndoStack *s, int dirfd, const char *kind, const char *name, UndoFn fn) {
        int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
                int r = -errno;
                (void) fn(name, (void *) (intptr_t) dirfd);
                return r;
        }
        return undo_push(s, kind, name, fn, (void *) (intptr_t) fd, close_data_fd);
}

int undo_push_unlink(UndoStack *s, int dirfd, const char *name) {
        return push_at(s, dirfd, "file", name, unlink_step);
}

int undo_push_rmdir(UndoStack *s, int dirfd, const char *name) {
        return push_at(s, dirfd, "dir", name, rmdir_step);
}

int undo_run(UndoStack *s) {
        int ret = 0;
        while (s->n > 0) {
                UndoEntry *e = &s->entries[--s->n];
                int r = entry_run(e);
                if (r < 0 && ret == 0)
                        ret = r;
                entry_free(e);
        }
        return ret;
}

void undo_commit(UndoStack *s) {
        for (size_t i = 0; i < s->n; i++)
                entry_free(&s->entries[i]);
        s->n = 0;
}

void undo_stack_done(UndoStack *s) {
        int saved = errno;
        (void) undo_run(s);
        free(s->entries);
        *s = UNDO_STACK_INIT;
        errno = saved;
}
