/* SPDX-License-Identifier: MIT */
#pragma once

/* Progress of a long build or import (kernel import, image build), reported
 * to whoever started it so the user sees something move. Called on the
 * worker's thread; the callback must not block for long. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* stage: a fixed word ("debootstrap", "kernel", "initramfs", "rootfs",
 * "register", "copy", "decompress", ...). detail: a line for humans, may be
 * NULL. done/total: bytes or items; total 0 when unknown. */
typedef void (*ProgressFn)(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata);

/* Whether the work should stop now (it was cancelled): asked between chunks
 * and steps; true makes the work roll back and return -ECANCELED. why NULL:
 * an ordinary point. why non-NULL: the work's point of no return (it says
 * what follows, "is registering kernel k"): when this returns false, the
 * asker completes, and later cancels are refused with why. */
typedef bool (*ProgressCancelFn)(const char *why, void *userdata);

typedef struct Progress {
        ProgressFn fn; /* NULL: nobody listens */
        void *userdata;
        ProgressCancelFn cancel; /* NULL: never cancelled */
} Progress;

static inline void progress_report(const Progress *p, const char *stage, const char *detail, uint64_t done,
                                   uint64_t total) {
        if (p && p->fn)
                p->fn(stage, detail, done, total, p->userdata);
}

/* A cancellation point: -ECANCELED when the work should stop, else 0. */
static inline int progress_check(const Progress *p) {
        return p && p->cancel && p->cancel(NULL, p->userdata) ? -ECANCELED : 0;
}

/* The last cancellation point: -ECANCELED (roll back), or 0 (complete). */
static inline int progress_commit(const Progress *p, const char *why) {
        return p && p->cancel && p->cancel(why, p->userdata) ? -ECANCELED : 0;
}
