/* SPDX-License-Identifier: MIT */
#include "rpc-client.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "io-util.h"
#include "json-text.h"
#include "macro.h"
#include "socket-util.h"
#include "string-util.h"

struct RpcClient {
        int fd;
        JsonRpcReader reader;
        json_int_t next_id;
        int interrupt_fd;       /* -EBADF: none */
        bool interrupt_pending; /* readable with the socket: runs once its bytes are handled */
        RpcInterruptFn interrupt;
        void *interrupt_userdata;
        char *build; /* sent with each request; NULL: none */
        RpcOtherBuildFn other_build;
        void *other_build_userdata;
};

int rpc_client_set_build(RpcClient *c, const char *build, RpcOtherBuildFn fn, void *userdata) {
        char *b = NULL;
        if (build && !(b = strndup(build, JSONRPC_BUILD_MAX)))
                return -ENOMEM;
        free(c->build);
        c->build = b;
        c->other_build = b ? fn : NULL;
        c->other_build_userdata = userdata;
        return 0;
}

void rpc_client_set_interrupt(RpcClient *c, int fd, RpcInterruptFn fn, void *userdata) {
        c->interrupt_fd = fn ? fd : -EBADF;
        c->interrupt_pending = false;
        c->interrupt = fn;
        c->interrupt_userdata = userdata;
}

/* Wait for the reply's bytes; the interrupt fd, when readable, runs its
 * function and the wait goes on. When both are readable, the socket's bytes
 * are handled first: a notification that already came (the operation's id,
 * which Ctrl-C cancels) must be seen before the interrupt is. */
static int wait_readable(RpcClient *c, usec_t deadline) {
        if (c->interrupt_fd < 0)
                return fd_wait_until(c->fd, POLLIN, deadline);
        for (;;) {
                if (c->interrupt_pending) {
                        c->interrupt_pending = false;
                        c->interrupt(c->interrupt_userdata);
                }
                struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = c->interrupt_fd, .events = POLLIN } };
                int n = poll(p, 2, deadline_poll_ms(deadline));
                if (n < 0 && errno != EINTR)
                        return -errno;
                if (n > 0 && p[0].revents) {
                        c->interrupt_pending = p[1].revents != 0;
                        return p[0].revents;
                }
                if (n > 0 && p[1].revents)
                        c->interrupt(c->interrupt_userdata);
                if (deadline != USEC_INFINITY && now_monotonic() >= deadline)
                        return -ETIMEDOUT;
        }
}

void rpc_error_done(RpcError *e) {
        if (!e)
                return;
        free(e->message);
        json_decref(e->data);
        *e = (RpcError){};
}

int rpc_client_connect(const char *socket_path, RpcClient **ret) {
        _cleanup_close_ int fd = unix_connect(socket_path, 0);
        if (fd < 0)
                return fd;
        RpcClient *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = TAKE_FD(fd);
        c->next_id = 1;
        c->interrupt_fd = -EBADF;
        /* Replies carry whole listings; allow more than a request may hold. */
        jsonrpc_reader_init(&c->reader, 16 * JSONRPC_MAX_MESSAGE);
        *ret = c;
        return 0;
}

int rpc_client_reconnect(RpcClient *c, const char *socket_path) {
        int fd = unix_connect(socket_path, 0);
        if (fd < 0)
                return fd;
        safe_close(c->fd);
        c->fd = fd;
        jsonrpc_reader_done(&c->reader);
        jsonrpc_reader_init(&c->reader, 16 * JSONRPC_MAX_MESSAGE);
        return 0;
}

void rpc_client_free(RpcClient *c) {
        if (!c)
                return;
        safe_close(c->fd);
        jsonrpc_reader_done(&c->reader);
        free(c->build);
        free(c);
}

int rpc_client_fd(RpcClient *c) {
        return c->fd;
}

static int send_all(int fd, const char *s, size_t len, usec_t deadline) {
        while (len > 0) {
                int r = fd_wait_until(fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
                ssize_t n = send(fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return errno == EPIPE ? -ECONNRESET : -errno;
                }
                s += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Handle one received message: 1 if it was our reply, 0 for anything else. */
static int handle_message(json_t *msg, json_int_t id, RpcNotifyFn notify, void *userdata, json_t **ret_result,
                          RpcError *ret_error) {
        json_t *jid = json_object_get(msg, "id");
        json_t *method = json_object_get(msg, "method");
        if (!jid && json_is_string(method)) {
                if (notify)
                        notify(json_string_value(method), json_object_get(msg, "params"), userdata);
                return 0;
        }
        json_t *err = json_object_get(msg, "error");
        /* A reply with id null is the server refusing the connection as a whole. */
        if (!(json_is_integer(jid) && json_integer_value(jid) == id) && !(json_is_null(jid) && err))
                return 0;
        if (err) {
                json_t *code = json_object_get(err, "code"), *m = json_object_get(err, "message");
                if (ret_error) {
                        ret_error->code = json_is_integer(code) ? (int) json_integer_value(code) : JSONRPC_FAILED;
                        ret_error->message = strdup(json_is_string(m) ? json_string_value(m) : "unknown error");
                        ret_error->data = json_incref(json_object_get(err, "data"));
                }
                return -EREMOTEIO;
        }
        json_t *res = json_object_get(msg, "result");
        if (!res)
                return -EBADMSG;
        if (ret_result)
                *ret_result = json_incref(res);
        return 1;
}

/* Where a call's reply goes: a jansson tree, or (text) the result's JSON
 * text as the server sent it. */
typedef struct Reply {
        json_t **result;
        char **text;
        size_t *text_len;
} Reply;

/* One received line: 1 if it was our reply (stored in reply), 0 for anything
 * else. For a text reply only the envelope goes through jansson, with the
 * result cut out and null in its place. */
static int handle_line(const char *l, size_t len, json_int_t id, RpcNotifyFn notify, void *userdata, const Reply *reply,
                       RpcError *ret_error) {
        _cleanup_free_ char *envelope = NULL;
        size_t start = 0, end = 0;
        if (reply->text && json_text_member_span(l, len, "result", &start, &end) >= 0) {
                envelope = malloc(len - (end - start) + sizeof("null"));
                if (!envelope)
                        return -ENOMEM;
                memcpy(mempcpy(mempcpy(envelope, l, start), "null", 4), l + end, len - end);
                len = len - (end - start) + 4;
        }
        json_t *msg = json_loadb(envelope ?: l, len, 0, NULL), *res = NULL;
        if (!json_is_object(msg)) {
                json_decref(msg);
                return -EBADMSG;
        }
        int r = handle_message(msg, id, notify, userdata, &res, ret_error);
        json_decref(msg);
        if (r <= 0)
                return r;
        if (!reply->text) {
                if (reply->result)
                        *reply->result = res;
                else
                        json_decref(res);
                return 1;
        }
        json_decref(res);
        /* A reply whose result the span did not find (not an object's member
         * as the server writes it) has none to hand over as text. */
        if (!envelope)
                return -EBADMSG;
        char *t = strndup(l + start, end - start);
        if (!t)
                return -ENOMEM;
        *reply->text = t;
        *reply->text_len = end - start;
        return 1;
}

static int call_once(RpcClient *c, const char *method, json_t *params, usec_t timeout, RpcNotifyFn notify,
                     void *userdata, const Reply *reply, RpcError *ret_error) {
        usec_t deadline = deadline_from_timeout(timeout);
        json_int_t id = c->next_id++;
        json_t *jid = json_integer(id);
        _cleanup_free_ char *line = jsonrpc_format_request(jid, method, params, c->build);
        json_decref(jid);
        if (!line)
                return -ENOMEM;
        int r = send_all(c->fd, line, strlen(line), deadline);
        if (r < 0)
                return r;
        for (;;) {
                const char *l;
                size_t len;
                while ((r = jsonrpc_reader_next(&c->reader, &l, &len)) > 0) {
                        r = handle_line(l, len, id, notify, userdata, reply, ret_error);
                        if (r != 0)
                                return r < 0 ? r : 0;
                }
                if (r < 0)
                        return r;
                r = wait_readable(c, deadline);
                if (r < 0)
                        return r;
                char buf[65536];
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                r = jsonrpc_reader_feed(&c->reader, buf, (size_t) n);
                if (r < 0)
                        return r;
        }
}

static int call(RpcClient *c, const char *method, json_t *params, usec_t timeout, RpcNotifyFn notify, void *userdata,
                const Reply *reply, RpcError *ret_error) {
        if (!c->build)
                return call_once(c, method, params, timeout, notify, userdata, reply, ret_error);
        RpcError err = {};
        int r = call_once(c, method, json_incref(params), timeout, notify, userdata, reply, &err);
        /* Another build refused the call before running it; one from before
         * the "build" member refused the member (and closed the connection). */
        bool other = r == -EREMOTEIO && (err.code == JSONRPC_OTHER_BUILD || err.code == JSONRPC_INVALID_REQUEST);
        if (!other) {
                json_decref(params);
                if (ret_error)
                        *ret_error = err;
                else
                        rpc_error_done(&err);
                return r;
        }
        RpcOtherBuildFn fn = c->other_build;
        void *fn_userdata = c->other_build_userdata;
        (void) rpc_client_set_build(c, NULL, NULL, NULL);
        r = fn ? fn(c, &err, fn_userdata) : -EREMOTEIO;
        if (r < 0) {
                json_decref(params);
                if (ret_error)
                        *ret_error = err;
                else
                        rpc_error_done(&err);
                return r;
        }
        rpc_error_done(&err);
        return call_once(c, method, params, timeout, notify, userdata, reply, ret_error);
}

int rpc_client_call(RpcClient *c, const char *method, json_t *params, usec_t timeout, RpcNotifyFn notify,
                    void *userdata, json_t **ret_result, RpcError *ret_error) {
        return call(c, method, params, timeout, notify, userdata, &(const Reply){ .result = ret_result }, ret_error);
}

int rpc_client_call_text(RpcClient *c, const char *method, json_t *params, usec_t timeout, RpcNotifyFn notify,
                         void *userdata, char **ret_text, size_t *ret_len, RpcError *ret_error) {
        return call(c, method, params, timeout, notify, userdata,
                    &(const Reply){ .text = ret_text, .text_len = ret_len }, ret_error);
}

/* Every complete message buffered: notifications to notify, the rest skipped. */
static int dispatch_buffered(RpcClient *c, RpcNotifyFn notify, void *userdata) {
        const char *l;
        size_t len;
        int r;
        while ((r = jsonrpc_reader_next(&c->reader, &l, &len)) > 0) {
                json_t *msg = json_loadb(l, len, 0, NULL);
                if (!json_is_object(msg)) {
                        json_decref(msg);
                        return -EBADMSG;
                }
                (void) handle_message(msg, 0, notify, userdata, NULL, NULL);
                json_decref(msg);
        }
        return r;
}

int rpc_client_read_notifications(RpcClient *c, RpcNotifyFn notify, void *userdata) {
        int r = dispatch_buffered(c, notify, userdata);
        if (r < 0)
                return r;
        char buf[65536];
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 0 : -errno;
        if (n == 0)
                return -ECONNRESET;
        r = jsonrpc_reader_feed(&c->reader, buf, (size_t) n);
        if (r < 0)
                return r;
        return dispatch_buffered(c, notify, userdata);
}
