/* SPDX-License-Identifier: MIT */
#pragma once

/* Ctrl-C on a long call (vm create, start, image import ...): the daemon
 * names the call's operation in an "operation" notification; a SIGINT or
 * SIGTERM while the call waits sends operations.cancel for it over a
 * connection of its own, and the call goes on waiting for its reply (the
 * daemon rolls back, then answers "cancelled"). A second Ctrl-C ends the
 * CLI at once; the operation then still rolls back. Where something else
 * already reads these signals (vm run --rm blocks them), nothing changes. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli.h"

#define OPERATION_CANCEL_MAX_IDS 8

typedef struct OperationCancel {
        Cli *cli;
        RpcClient *c;
        uint64_t ids[OPERATION_CANCEL_MAX_IDS];
        unsigned n_ids;
        bool interrupted; /* a signal came: cancel each operation once named */
        unsigned n_sent;
        int pipe[2];
        bool installed;
} OperationCancel;

/* Catch SIGINT and SIGTERM while c waits for a call's reply. */
void operation_cancel_begin(OperationCancel *g, Cli *cli, RpcClient *c);
/* Every notification of the call: an "operation" one names it. */
void operation_cancel_notify(OperationCancel *g, const char *method, json_t *params);
/* After the reply: the signals as they were. When the call ended in the
 * daemon's "cancelled" error, the exit status becomes 130 after a Ctrl-C
 * here, else EXIT_CANCELLED (cli->exit_status). */
void operation_cancel_end(OperationCancel *g, int code);
