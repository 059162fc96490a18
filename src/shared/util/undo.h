/* SPDX-License-Identifier: MIT */
#pragma once

/* Rollback for multi-step host setups (clone + patch, loop + dm, work disk).
 * Each step records how to undo itself the moment its handle exists; on
 * failure the stack runs in reverse. Teardown treats "already gone"
 * (-ENOENT, -ENXIO) as done and retries a busy device (-EBUSY) with a short
 * backoff, so a half-built setup can always be taken apart. */

#include <stddef.h>

#include "macro.h"

/* Undo one step. name is the handle as recorded (a file name, /dev/loopN, a
 * dm name); data is the step's private state. */
typedef int (*UndoFn)(const char *name, void *data);

typedef struct UndoEntry {
        const char *kind; /* "file", "loop", "dm": for debug logs */
        char *name;
        UndoFn fn;
        void *data;
        void (*free_data)(void *data);
} UndoEntry;

typedef struct UndoStack {
        UndoEntry *entries;
        size_t n, allocated;
} UndoStack;

#define UNDO_STACK_INIT ((UndoStack){})

/* Record a step. On allocation failure the step is undone at once (so the
 * caller never holds an unrecorded handle) and -ENOMEM is returned. data is
 * freed with free_data (may be NULL) when the entry is dropped. */
int undo_push(UndoStack *s, const char *kind, const char *name, UndoFn fn, void *data, void (*free_data)(void *));

/* Record "unlink name beneath dirfd" (dirfd is duplicated). */
int undo_push_unlink(UndoStack *s, int dirfd, const char *name);

/* Record "remove the empty directory name beneath dirfd" (dirfd is duplicated). */
int undo_push_rmdir(UndoStack *s, int dirfd, const char *name);

/* Run every entry in reverse order, then empty the stack. Returns 0 or the
 * first real failure (after retries); keeps going past failures. */
int undo_run(UndoStack *s);

/* Success: forget every entry without running it. */
void undo_commit(UndoStack *s);

/* Cleanup: runs whatever was not committed. */
void undo_stack_done(UndoStack *s);
#define _cleanup_undo_ _cleanup_(undo_stack_done)
