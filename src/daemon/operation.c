/* SPDX-License-Identifier: MIT */
/* The registry of long operations: see operation.h. */
#include "operation.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "string-util.h"
#include "time-util.h"

#define OPERATION_STAGE_MAX 64
#define OPERATION_MESSAGE_MAX 512

typedef struct CancelHook {
        OperationCancelFn fn;
        void *userdata;
        struct CancelHook *next;
} CancelHook;

struct Operation {
        uint64_t id;
        char *kind;
        OperationClient client;
        usec_t started; /* realtime */
        bool cancellable;
        pthread_mutex_t lock; /* guards what follows */
        char target[OPERATION_TARGET_MAX];
        char stage[OPERATION_STAGE_MAX];
        char message[OPERATION_MESSAGE_MAX];
        uint64_t done, total;
        bool cancelled;
        /* Past its point of no return (operation_commit): a cancel is refused with this. */
        char committed[OPERATION_MESSAGE_MAX];
        CancelHook *hooks;
        Operation *next; /* the list: loop only */
};

struct Operations {
        uint64_t next_id;
        Operation *head, *tail;
};

static _Thread_local Operation *current;

void operation_client_read_command(OperationClient *c) {
        c->command[0] = '\0';
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) c->pid);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        if (c->pid <= 0 || read_file_at(AT_FDCWD, path, 64 * 1024, &buf, &len) < 0)
                return;
        while (len > 0 && buf[len - 1] == '\0')
                len--;
        len = MIN(len, sizeof(c->command) - 1);
        for (size_t i = 0; i < len; i++)
                c->command[i] = buf[i] == '\0' ? ' ' : (buf[i] < 0x20 || buf[i] == 0x7f) ? '?' : buf[i];
        c->command[len] = '\0';
        /* Cut at a UTF-8 boundary, or the list could not be encoded. */
        while (len > 0 && ((unsigned char) c->command[len - 1] & 0xC0) == 0x80)
                c->command[--len] = '\0';
        if (len > 0 && ((unsigned char) c->command[len - 1] & 0x80))
                c->command[--len] = '\0';
}

int operations_new(Operations **ret) {
        Operations *ops = calloc(1, sizeof(*ops));
        if (!ops)
                return -ENOMEM;
        ops->next_id = 1;
        *ret = ops;
        return 0;
}

static void operation_free(Operation *op) {
        for (CancelHook *h = op->hooks, *next; h; h = next) {
                next = h->next;
                free(h);
        }
        pthread_mutex_destroy(&op->lock);
        free(op->kind);
        free(op);
}

Operations *operations_free(Operations *ops) {
        if (!ops)
                return NULL;
        for (Operation *op = ops->head, *next; op; op = next) {
                next = op->next;
                operation_free(op);
        }
        free(ops);
        return NULL;
}

/* Copy at most size-1 bytes, cut at a UTF-8 boundary. */
static void copy_text(char *dst, size_t size, const char *src) {
        size_t l = strlen(src ?: "");
        if (l >= size) {
                l = size - 1;
                while (l > 0 && ((unsigned char) src[l] & 0xC0) == 0x80)
                        l--;
        }
        memcpy(dst, src ?: "", l);
        dst[l] = '\0';
}

int operations_add(Operations *ops, const char *kind, const char *target, const OperationClient *client,
                   Operation **ret) {
        Operation *op = calloc(1, sizeof(*op));
        if (!op || !(op->kind = strdup(kind))) {
                free(op);
                return -ENOMEM;
        }
        op->id = ops->next_id++;
        op->client = client ? *client : (OperationClient){};
        op->started = now_realtime();
        op->cancellable = true;
        pthread_mutex_init(&op->lock, NULL);
        copy_text(op->target, sizeof(op->target), target);
        if (ops->tail)
                ops->tail->next = op;
        else
                ops->head = op;
        ops->tail = op;
        *ret = op;
        return 0;
}

void operations_remove(Operations *ops, Operation *op) {
        Operation *prev = NULL;
        for (Operation *o = ops->head; o; prev = o, o = o->next)
                if (o == op) {
                        if (prev)
                                prev->next = o->next;
                        else
                                ops->head = o->next;
                        if (ops->tail == o)
                                ops->tail = prev;
                        break;
                }
        operation_free(op);
}

void operation_set_cancellable(Operation *op, bool cancellable) {
        op->cancellable = cancellable;
}

uint64_t operation_id(const Operation *op) {
        return op->id;
}

const char *operation_kind(const Operation *op) {
        return op->kind;
}

json_t *operation_to_json(Operation *op) {
        pthread_mutex_lock(&op->lock);
        json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:b, s:{s:i, s:i, s:s}}", "id",
                              (json_int_t) op->id, "kind", op->kind, "target", op->target, "stage", op->stage,
                              "message", op->message, "bytes", (json_int_t) op->done, "total", (json_int_t) op->total,
                              "started", (json_int_t) op->started, "cancellable", op->cancellable, "cancelled",
                              op->cancelled, "client", "pid", (int) op->client.pid, "uid", (int) op->client.uid,
                              "command", op->client.command);
        pthread_mutex_unlock(&op->lock);
        return j;
}

json_t *operations_to_json(Operations *ops) {
        json_t *arr = json_array();
        for (Operation *op = ops->head; arr && op; op = op->next)
                json_array_append_new(arr, operation_to_json(op));
        return json_pack("{s:o}", "operations", arr);
}

int operations_cancel(Operations *ops, uint64_t id, Operation **ret) {
        Operation *op = ops->head;
        while (op && op->id != id)
                op = op->next;
        if (!op)
                return error_setf(-ENOENT, "no operation %llu is in flight ('banger operations' lists those that are)",
                                  (unsigned long long) id);
        if (!op->cancellable)
                return error_setf(-EBUSY, "operation %llu (%s) cannot be cancelled: it finishes on its own",
                                  (unsigned long long) id, op->kind);
        pthread_mutex_lock(&op->lock);
        if (op->committed[0]) {
                int r = error_setf(-EBUSY, "too late to cancel: operation %llu (%s) %s; it completes on its own",
                                   (unsigned long long) id, op->kind, op->committed);
                pthread_mutex_unlock(&op->lock);
                return r;
        }
        if (!op->cancelled) {
                op->cancelled = true;
                for (CancelHook *h = op->hooks; h; h = h->next)
                        h->fn(h->userdata);
        }
        pthread_mutex_unlock(&op->lock);
        if (ret)
                *ret = op;
        return 0;
}

void operation_set_target(Operation *op, const char *target) {
        if (!op)
                return;
        pthread_mutex_lock(&op->lock);
        copy_text(op->target, sizeof(op->target), target);
        pthread_mutex_unlock(&op->lock);
}

void operation_set_progress(Operation *op, const char *stage, const char *message, uint64_t done, uint64_t total) {
        if (!op)
                return;
        pthread_mutex_lock(&op->lock);
        if (!streq(op->stage, stage ?: "")) /* bytes belong to their stage */
                op->done = op->total = 0;
        copy_text(op->stage, sizeof(op->stage), stage);
        if (message && *message)
                copy_text(op->message, sizeof(op->message), message);
        if (done || total) {
                op->done = done;
                op->total = total;
        }
        pthread_mutex_unlock(&op->lock);
}

bool operation_cancelled(Operation *op) {
        if (!op)
                return false;
        pthread_mutex_lock(&op->lock);
        bool c = op->cancelled;
        pthread_mutex_unlock(&op->lock);
        return c;
}

void operation_set_current(Operation *op) {
        current = op;
}

Operation *operation_current(void) {
        return current;
}

int operation_check(void) {
        return operation_cancelled(current) ? error_setf(-ECANCELED, "cancelled") : 0;
}

int operation_commit(const char *why) {
        Operation *op = current;
        if (!op)
                return 0;
        pthread_mutex_lock(&op->lock);
        bool cancelled = op->cancelled;
        if (!cancelled && !op->committed[0])
                copy_text(op->committed, sizeof(op->committed), why && *why ? why : "is past its point of no return");
        pthread_mutex_unlock(&op->lock);
        return cancelled ? error_setf(-ECANCELED, "cancelled") : 0;
}

bool operation_progress_cancel(const char *why, void *userdata) {
        return why ? operation_commit(why) < 0 : operation_check() < 0;
}

int operation_on_cancel(Operation *op, OperationCancelFn fn, void *userdata) {
        if (!op)
                return 0;
        CancelHook *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        *h = (CancelHook){ .fn = fn, .userdata = userdata };
        pthread_mutex_lock(&op->lock);
        h->next = op->hooks;
        op->hooks = h;
        if (op->cancelled)
                fn(userdata);
        pthread_mutex_unlock(&op->lock);
        return 0;
}

void operation_on_cancel_remove(Operation *op, OperationCancelFn fn, void *userdata) {
        if (!op)
                return;
        pthread_mutex_lock(&op->lock);
        for (CancelHook **pp = &op->hooks; *pp; pp = &(*pp)->next)
                if ((*pp)->fn == fn && (*pp)->userdata == userdata) {
                        CancelHook *h = *pp;
                        *pp = h->next;
                        free(h);
                        break;
                }
        pthread_mutex_unlock(&op->lock);
}
