/* SPDX-License-Identifier: MIT */
/* Ctrl-C turned into operations.cancel: see operation-cancel.h. */
#include "operation-cancel.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jsonrpc.h"
#include "output.h"
#include "string-util.h"

static int signal_pipe = -EBADF;
static struct sigaction old_int, old_term;

static void on_signal(int sig) {
        int saved = errno;
        char b = (char) sig;
        (void) !write(signal_pipe, &b, 1);
        errno = saved;
}

static void on_interrupt(void *userdata);

void operation_cancel_begin(OperationCancel *g, Cli *cli, RpcClient *c) {
        *g = (OperationCancel){ .cli = cli, .c = c, .pipe = { -EBADF, -EBADF } };
        if (signal_pipe >= 0 || pipe2(g->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                return;
        signal_pipe = g->pipe[1];
        /* SA_RESETHAND: a second Ctrl-C ends the CLI as it always did. */
        struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND | SA_RESTART };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        g->installed = true;
        rpc_client_set_interrupt(c, g->pipe[0], on_interrupt, g);
}

/* Cancel what is named and not asked yet, over a connection of our own (the
 * call's waits for its reply). */
static void send_cancels(OperationCancel *g) {
        RpcClient *c = NULL;
        for (; g->n_sent < g->n_ids; g->n_sent++) {
                uint64_t id = g->ids[g->n_sent];
                if (!c && rpc_client_connect(g->cli->socket_path, &c) < 0)
                        break;
                RpcError err = {};
                int r = rpc_client_call(c, "operations.cancel", json_pack("{s:I}", "id", (json_int_t) id),
                                        10 * USEC_PER_SEC, NULL, NULL, NULL, &err);
                if (r >= 0)
                        fprintf(stderr,
                                "\nbanger: cancelling operation %llu, rolling back (Ctrl-C again to stop "
                                "waiting)\n",
                                (unsigned long long) id);
                else
                        fprintf(stderr, "\nbanger: cannot cancel operation %llu: %s\n", (unsigned long long) id,
                                err.message ? err.message : strerror(-r));
                rpc_error_done(&err);
        }
        rpc_client_free(c);
}

/* A call that is no operation (vm stop) ends on Ctrl-C as it always did. */
static void on_interrupt(void *userdata) {
        OperationCancel *g = userdata;
        char sig = SIGINT;
        while (read(g->pipe[0], &sig, 1) > 0)
                ;
        if (g->n_ids == 0) {
                sigaction(SIGINT, &old_int, NULL);
                sigaction(SIGTERM, &old_term, NULL);
                raise(sig);
                return;
        }
        g->interrupted = true;
        send_cancels(g);
}

void operation_cancel_notify(OperationCancel *g, const char *method, json_t *params) {
        json_t *id = json_object_get(params, "id");
        if (!streq(method, "operation") || !json_is_integer(id) || g->n_ids >= OPERATION_CANCEL_MAX_IDS)
                return;
        g->ids[g->n_ids++] = (uint64_t) json_integer_value(id);
        if (g->interrupted)
                send_cancels(g);
}

void operation_cancel_end(OperationCancel *g, int code) {
        if (code == JSONRPC_CANCELLED)
                g->cli->exit_status = g->interrupted ? 128 + SIGINT : EXIT_CANCELLED;
        if (!g->installed)
                return;
        rpc_client_set_interrupt(g->c, -EBADF, NULL, NULL);
        /* A signal that came after the reply, before this: it was meant for us. */
        char b;
        bool late = read(g->pipe[0], &b, 1) == 1;
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        signal_pipe = -EBADF;
        close(g->pipe[0]);
        close(g->pipe[1]);
        g->installed = false;
        if (late)
                raise(b);
}
