/* SPDX-License-Identifier: MIT */
#pragma once

/* The long operations in flight (docs/protocol.md, "Operations"): a method
 * whose RpcMethod sets .operation is registered here when its worker starts
 * and removed when it has answered; rpc-call.c does both, and its
 * rpc_call_progress() keeps the stage and byte counts current. What a
 * method's own code adds is the cancellation points: operation_check()
 * between steps, operation_cancelled() in a copy or download loop, and
 * operation_on_cancel() for a wait that must end at once (the VM locks do
 * that for the boot wait). The list and cancel run on the loop; progress,
 * checks and hooks on any thread. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

typedef struct Operation Operation;
typedef struct Operations Operations;

#define OPERATION_COMMAND_MAX 256
#define OPERATION_TARGET_MAX 256

/* Who asked: the peer of the connection (SO_PEERCRED), its command line
 * when /proc still shows it (arguments joined by spaces, cut). */
typedef struct OperationClient {
        pid_t pid;
        uid_t uid;
        char command[OPERATION_COMMAND_MAX];
} OperationClient;

/* Fill c->command from /proc/<c->pid>/cmdline ("" when it cannot be read). */
void operation_client_read_command(OperationClient *c);

int operations_new(Operations **ret);
/* Once no operation runs any more. */
Operations *operations_free(Operations *ops);

/* Loop: register one (kind "vm.create", target as the user named it or ""). */
int operations_add(Operations *ops, const char *kind, const char *target, const OperationClient *client,
                   Operation **ret);
/* Loop: it answered; it leaves the list and is freed. */
void operations_remove(Operations *ops, Operation *op);
/* Loop: {"operations": [...]} oldest first. */
json_t *operations_to_json(Operations *ops);
/* Loop: ask operation id to stop at its next cancellation point. -ENOENT
 * when no such operation is in flight, -EBUSY when it cannot be cancelled
 * or is past its point of no return (operation_commit; the messages say
 * so). Asking twice is not an error. */
int operations_cancel(Operations *ops, uint64_t id, Operation **ret);

/* Loop, before its worker starts: whether operations.cancel may stop it
 * (it has cancellation points); new operations may be. */
void operation_set_cancellable(Operation *op, bool cancellable);

uint64_t operation_id(const Operation *op);
/* Loop, or the operation's own worker. */
const char *operation_kind(const Operation *op);
json_t *operation_to_json(Operation *op);

/* Any thread. */
void operation_set_target(Operation *op, const char *target);
void operation_set_progress(Operation *op, const char *stage, const char *message, uint64_t done, uint64_t total);
/* NULL is never cancelled. */
bool operation_cancelled(Operation *op);

/* The operation the calling thread works for (a worker sets it; threads it
 * starts for the same operation set it too). NULL: none. */
void operation_set_current(Operation *op);
Operation *operation_current(void);
/* A cancellation point: -ECANCELED (with the message "cancelled") when the
 * calling thread's operation was cancelled, else 0. */
int operation_check(void);

/* A cancellation point that is also the last one, for the calling thread's
 * operation: -ECANCELED (with the message "cancelled") when a cancel came
 * first, so the caller rolls back; else 0, and from then on
 * operations.cancel refuses (-EBUSY) with "too late to cancel: operation N
 * (KIND) <why>; it completes on its own" ("is past the point where ...").
 * Checked and set under one lock: a cancel is either seen here or refused. */
int operation_commit(const char *why);

/* A Progress's cancel callback (progress.h) for the calling thread's
 * operation: operation_check(), or with a why, operation_commit(why). */
bool operation_progress_cancel(const char *why, void *userdata);

/* Any thread: fn(userdata) runs once when op is cancelled (at once when it
 * is already), under the operation's own lock: it must not block (write an
 * eventfd, shut a socket down). Remove it before userdata goes away.
 * -ENOMEM, or 0. With op NULL nothing is registered and 0 returned. */
typedef void (*OperationCancelFn)(void *userdata);
int operation_on_cancel(Operation *op, OperationCancelFn fn, void *userdata);
void operation_on_cancel_remove(Operation *op, OperationCancelFn fn, void *userdata);
