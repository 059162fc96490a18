/* SPDX-License-Identifier: MIT */
/* One call from reading its params to its reply: the same skeleton for
 * every method (check params, fill the args, answer on the loop or in a
 * worker), error replies, and progress notifications from workers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "error.h"
#include "events.h"
#include "jsonrpc.h"
#include "log.h"
#include "operation.h"
#include "server-internal.h"
#include "store.h"
#include "string-util.h"
#include "worker.h"

struct RpcCall {
        Daemon *d;
        const RpcMethod *method;
        Connection *conn; /* held; a reply after the client left goes nowhere */
        json_t *id;       /* NULL for a notification: no reply is sent */
        json_t *params;   /* held: the args' strings point into it */
        void *args;
        bool replied;
        /* Set by the worker for its error reply. */
        json_t *error_data;
        char *final_line; /* the worker's reply, sent from the loop */
        Operation *op;    /* listed while the worker runs (RpcMethod.operation) */
        const char *outcome;
        char *error_message; /* the worker's, for the operation's end event */
};

Daemon *rpc_call_daemon(RpcCall *call) {
        return call->d;
}

Connection *rpc_call_connection(RpcCall *call) {
        return call->conn;
}

const void *rpc_call_method_data(RpcCall *call) {
        return call->method->data;
}

void rpc_call_set_error_data(RpcCall *call, json_t *data) {
        json_decref(call->error_data);
        call->error_data = data;
}

static void call_free(RpcCall *call) {
        connection_remove_call(call->conn);
        json_decref(call->id);
        json_decref(call->params);
        json_decref(call->error_data);
        free(call->final_line);
        free(call->error_message);
        free(call->args);
        free(call);
}

static void call_send(RpcCall *call, char *line) {
        if (call->id && line)
                connection_send(call->conn, line);
        free(line);
}

void rpc_call_reply(RpcCall *call, json_t *result) {
        if (call->replied) {
                json_decref(result);
                return;
        }
        call->replied = true;
        call_send(call, jsonrpc_format_result(call->id, result));
}

int rpc_call_reply_text(RpcCall *call, const char *result, size_t len) {
        if (call->replied)
                return 0;
        char *line = jsonrpc_format_result_text(call->id, result, len);
        if (!line)
                return memchr(result, '\n', len) ? -EINVAL : -ENOMEM;
        call->replied = true;
        call_send(call, line);
        return 0;
}

_printf_(4, 0) static void reply_error_data(RpcCall *call, int code, json_t *data, const char *fmt, va_list ap) {
        if (call->replied) {
                json_decref(data);
                return;
        }
        call->replied = true;
        char msg[1024];
        int n = vsnprintf(msg, sizeof(msg), fmt, ap);
        if (n >= (int) sizeof(msg)) {
                /* Cut at a UTF-8 boundary, or the reply could not be encoded. */
                size_t l = sizeof(msg) - 1;
                while (l > 0 && ((unsigned char) msg[l - 1] & 0xC0) == 0x80)
                        l--;
                if (l > 0 && ((unsigned char) msg[l - 1] & 0xC0) == 0xC0)
                        l--;
                msg[l] = '\0';
        }
        call_send(call, jsonrpc_format_error(call->id, code, msg, data));
}

void rpc_call_reply_error(RpcCall *call, int code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        reply_error_data(call, code, NULL, fmt, ap);
        va_end(ap);
}

_printf_(3, 4) static void reply_invalid(RpcCall *call, json_t *data, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        reply_error_data(call, JSONRPC_INVALID_PARAMS, data, fmt, ap);
        va_end(ap);
}

void rpc_call_reply_invalid_param(RpcCall *call, const char *key, const char *expected, const char *got) {
        reply_invalid(call, json_pack("{s:s, s:s}", "param", key, "expected", expected), "\"%s\" must be %s%s%s%s", key,
                      expected, got ? ", got '" : "", got ? got : "", got ? "'" : "");
}

int rpc_errno_to_code(int r) {
        switch (-r) {
        case ENOENT:
        case ESRCH:
                return JSONRPC_NOT_FOUND;
        case EEXIST:
        case EBUSY:
        case ENOTUNIQ:
        case EALREADY:
                return JSONRPC_CONFLICT;
        case EINVAL:
        case ERANGE:
        case ENAMETOOLONG:
                return JSONRPC_INVALID_PARAMS;
        case ESHUTDOWN:
        case EPERM:
        case EACCES:
                return JSONRPC_UNAVAILABLE;
        default:
                return JSONRPC_FAILED;
        }
}

static const char *errno_message(int r) {
        const char *m = error_last_message();
        return m ? m : strerror(-r);
}

void rpc_call_reply_errno(RpcCall *call, int r) {
        rpc_call_reply_error(call, rpc_errno_to_code(r), "%s", errno_message(r));
}

/* ---- notifications from workers ---- */

typedef struct Note {
        RpcCall *call;
        char *line;
} Note;

/* On the loop. The call is still alive: its final reply was posted after
 * this, and the mailbox keeps order. */
static void note_send(void *p) {
        Note *n = p;
        call_send(n->call, n->line);
        free(n);
}

/* A progress notification is the operation's stage too; it names it. */
static void operation_note(RpcCall *call, json_t *params) {
        if (!call->op || !json_is_object(params))
                return;
        json_t *done = json_object_get(params, "bytes"), *total = json_object_get(params, "total");
        operation_set_progress(call->op, json_string_value(json_object_get(params, "stage")),
                               json_string_value(json_object_get(params, "message")),
                               json_is_integer(done) ? (uint64_t) json_integer_value(done) : 0,
                               json_is_integer(total) ? (uint64_t) json_integer_value(total) : 0);
        json_object_set_new(params, "operation", json_integer((json_int_t) operation_id(call->op)));
}

void rpc_call_notify(RpcCall *call, const char *method, json_t *params) {
        if (streq(method, "progress")) {
                operation_note(call, params);
                event_bus_progress(call->d->events, call->method->name, params);
        }
        Note *n = calloc(1, sizeof(*n));
        if (!n) {
                json_decref(params);
                return; /* a progress line less */
        }
        *n = (Note){ .call = call, .line = jsonrpc_format_notification(method, params) };
        if (!n->line || workers_post(call->d->workers, note_send, n) < 0) {
                free(n->line);
                free(n);
        }
}

void rpc_call_progress(RpcCall *call, const char *stage, const char *message, uint64_t done, uint64_t total) {
        rpc_call_notify(call, "progress",
                        json_pack("{s:s, s:s, s:I, s:I}", "stage", stage, "message", message ? message : "", "bytes",
                                  (json_int_t) done, "total", (json_int_t) total));
}

/* ---- work in a worker ---- */

static void call_work(void *p) {
        RpcCall *call = p;
        json_t *result = NULL;
        error_clear();
        _cleanup_store_close_ Store *s = NULL;
        int r = daemon_open_store(call->d, &s);
        operation_set_current(call->op);
        if (r >= 0)
                r = call->method->work(call, s, call->args, &result);
        operation_set_current(NULL);
        /* Only a cancel makes it "cancelled": a boot that a stop interrupted
         * fails with -ECANCELED too, as it always did. */
        bool cancelled = r < 0 && operation_cancelled(call->op);
        if (cancelled)
                r = error_setf(-ECANCELED, "operation %llu (%s) was cancelled",
                               (unsigned long long) operation_id(call->op), call->method->name);
        call->outcome = r >= 0 ? "ok" : cancelled ? "cancelled" : "failed";
        if (r < 0)
                call->error_message = strdup(errno_message(r));
        if (r < 0)
                call->final_line = jsonrpc_format_error(call->id, cancelled ? JSONRPC_CANCELLED : rpc_errno_to_code(r),
                                                        errno_message(r), TAKE_PTR(call->error_data));
        else
                call->final_line = jsonrpc_format_result(call->id, result);
        if (!call->final_line) /* the final reply must arrive, or the client waits forever */
                call->final_line =
                        jsonrpc_format_error(call->id, JSONRPC_INTERNAL_ERROR, "the reply could not be encoded", NULL);
}

/* ---- the operations registry (operation.h) ---- */

/* What the operation acts on, from the first param the method names that
 * the call has: a string, or the strings of an array joined by spaces. */
static void operation_target_of(RpcCall *call, char *buf, size_t size) {
        const char *names = call->method->operation_target ?: "";
        json_t *v = NULL;
        while (!v && *names) {
                size_t n = strcspn(names, " ");
                char key[64];
                snprintf(key, sizeof(key), "%.*s", (int) MIN(n, sizeof(key) - 1), names);
                v = json_object_get(call->params, key);
                names += n + (names[n] == ' ');
        }
        buf[0] = '\0';
        if (json_is_string(v))
                snprintf(buf, size, "%s", json_string_value(v));
        size_t i, l = 0;
        json_t *e;
        json_array_foreach (json_is_array(v) ? v : NULL, i, e)
                if (json_is_string(e) && l < size)
                        l += (size_t) snprintf(buf + l, size - l, "%s%s", l ? " " : "", json_string_value(e));
}

/* On the loop, before the worker starts: list it, tell the caller its id
 * (the CLI cancels it on Ctrl-C), and tell subscribers. */
static int operation_begin(RpcCall *call) {
        if (!call->method->operation)
                return 0;
        OperationClient client = {};
        connection_peer(call->conn, &client.pid, &client.uid);
        operation_client_read_command(&client);
        char target[OPERATION_TARGET_MAX];
        operation_target_of(call, target, sizeof(target));
        int r = operations_add(call->d->operations, call->method->name, target, &client, &call->op);
        if (r < 0)
                return r;
        operation_set_cancellable(call->op, call->method->cancellable);
        json_t *j = operation_to_json(call->op);
        char *line = jsonrpc_format_notification("operation", json_incref(j));
        call_send(call, line);
        json_object_set_new(j, "operation", json_integer((json_int_t) operation_id(call->op)));
        json_object_set_new(j, "method", json_string(call->method->name));
        json_object_del(j, "kind");
        json_object_set_new(j, "kind", json_string("operation"));
        json_object_set_new(j, "event", json_string("started"));
        event_bus_publish(call->d->events, j);
        return 0;
}

/* On the loop, once the reply went out. */
static void operation_end(RpcCall *call) {
        if (!call->op)
                return;
        json_int_t id = (json_int_t) operation_id(call->op);
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s?}", "kind", "operation", "event", "finished", "id",
                              id, "operation", id, "method", call->method->name, "result", call->outcome ?: "failed",
                              "error", call->error_message);
        json_t *op = operation_to_json(call->op);
        json_object_set(j, "target", json_object_get(op, "target"));
        json_decref(op);
        event_bus_publish(call->d->events, j);
        operations_remove(call->d->operations, call->op);
        call->op = NULL;
}

static void call_work_done(void *p) {
        RpcCall *call = p;
        call->replied = true;
        call_send(call, TAKE_PTR(call->final_line));
        operation_end(call);
        call_free(call);
}

static void call_defer(RpcCall *call) {
        int r = operation_begin(call);
        if (r >= 0)
                r = workers_start(call->d->workers, call_work, call_work_done, call, 0);
        if (r < 0 && call->op) { /* its "started" event gets its "finished" */
                call->error_message = strdup(r == -EBUSY ? "daemon is busy" : strerror(-r));
                operation_end(call);
        }
        if (r == -EBUSY)
                rpc_call_reply_error(call, JSONRPC_UNAVAILABLE, "daemon is busy: too many operations in progress");
        else if (r < 0)
                rpc_call_reply_error(call, JSONRPC_FAILED, "cannot start a worker: %s", strerror(-r));
        if (r < 0)
                call_free(call);
}

/* ---- the skeleton every method shares ---- */

static int call_prepare(RpcCall *call) {
        const RpcMethod *m = call->method;
        if (m->args_size && !(call->args = calloc(1, m->args_size)))
                return -ENOMEM;
        if (m->defaults)
                m->defaults(call->d, call->args);
        int r = rpc_params_read(call, m->name, m->params, call->params, call->args);
        if (r >= 0 && m->check)
                r = m->check(call->d, call, call->args);
        return r;
}

void rpc_call_run(Daemon *d, Connection *c, json_t *id, const RpcMethod *m, json_t *params) {
        RpcCall *call = calloc(1, sizeof(*call));
        if (!call) {
                log_warning("out of memory for a call of %s", m->name);
                return;
        }
        *call = (RpcCall){ .d = d,
                           .method = m,
                           .conn = c,
                           .id = json_incref(id),
                           .params = params ? json_incref(params) : json_object() };
        connection_add_call(c);
        error_clear();
        log_debug("call %s", m->name);
        int r = call_prepare(call);
        if (r >= 0 && m->work) {
                call_defer(call);
                return;
        }
        if (r >= 0)
                r = m->run(d, call, call->args);
        if (r < 0)
                rpc_call_reply_errno(call, r);
        if (!call->replied)
                rpc_call_reply_error(call, JSONRPC_INTERNAL_ERROR, "method produced no reply");
        call_free(call);
}
