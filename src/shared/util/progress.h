/* SPDX-License-Identifier: MIT */
#pragma once

/* Progress of a long build or import (kernel import, image build), reported
 * to whoever started it so the user sees something move. Called on the
 * worker's thread; the callback must not block for long. */

#include <stddef.h>
#include <stdint.h>

/* stage: a fixed word ("debootstrap", "kernel", "initramfs", "rootfs",
 * "register", "copy", "decompress", ...). detail: a line for humans, may be
 * NULL. done/total: bytes or items; total 0 when unknown. */
typedef void (*ProgressFn)(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata);

typedef struct Progress {
        ProgressFn fn; /* NULL: nobody listens */
        void *userdata;
} Progress;

static inline void progress_report(const Progress *p, const char *stage, const char *detail, uint64_t done,
                                   uint64_t total) {
        if (p && p->fn)
                p->fn(stage, detail, done, total, p->userdata);
}
