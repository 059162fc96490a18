/* SPDX-License-Identifier: MIT */
/* The daemon's RPC server: the listening socket, connections, line framing,
 * dispatch, and the mailbox through which worker threads hand results back
 * to the event loop. Nothing here blocks. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon.h"
#include "error.h"
#include "jsonrpc.h"
#include "log.h"
#include "macro.h"
#include "string-util.h"

#define CONNECTION_MAX_PENDING_OUTPUT (64u * 1024 * 1024)

struct Connection {
        Daemon *d;
        int fd;
        sd_event_source *io;
        JsonRpcReader reader;
        char *out;
        size_t out_len, out_cap;
        bool closing;  /* stop reading requests; close once output is flushed */
        bool draining; /* reply sent and write side shut: discard input until EOF */
        bool refused;  /* turned away at accept: not counted against the limit */
        size_t drained;
        unsigned n_calls;
        RpcCall *calls;
        Connection *next, *prev;
};

struct RpcCall {
        Daemon *d;
        Connection *conn; /* NULL once the client went away (main thread only) */
        json_t *id;       /* NULL for a notification: no reply is sent */
        bool replied;
        bool deferred;
        RpcCall *next, *prev; /* in conn->calls */
        /* Worker state. */
        RpcWorkFn work;
        void *userdata;
        void (*free_userdata)(void *);
        json_t *error_data; /* set by the worker for its error reply */
};

typedef struct MailItem {
        RpcCall *call;
        char *line;
        bool final;
        struct MailItem *next;
} MailItem;

static void connection_free(Connection *c);

/* ---- output ---- */

static int connection_flush(Connection *c) {
        while (c->out_len > 0) {
                ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                memmove(c->out, c->out + n, c->out_len - (size_t) n);
                c->out_len -= (size_t) n;
        }
        if (c->closing && c->out_len == 0 && !c->draining) {
                /* Closing with the peer's unread bytes queued would reset the
                 * connection and could destroy our error reply before the peer
                 * reads it: shut our side and discard its input until EOF. */
                if (shutdown(c->fd, SHUT_WR) < 0)
                        return -errno;
                c->draining = true;
        }
        /* While the last replies go out, input is not read: asking for
         * EPOLLIN then would wake the loop forever on unread bytes. */
        uint32_t ev = c->closing && !c->draining ? 0 : EPOLLIN;
        if (c->out_len > 0)
                ev |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io, ev);
}

static void connection_queue(Connection *c, const char *line) {
        if (!c || !line)
                return;
        size_t l = strlen(line);
        if (c->out_len + l > CONNECTION_MAX_PENDING_OUTPUT) {
                log_warning("client is not reading its replies; closing the connection");
                c->closing = true;
                c->out_len = 0;
                return;
        }
        if (c->out_len + l > c->out_cap) {
                size_t want = MAX(c->out_cap * 2, c->out_len + l);
                char *nb = realloc(c->out, want);
                if (!nb) {
                        c->closing = true;
                        return;
                }
                c->out = nb;
                c->out_cap = want;
        }
        memcpy(c->out + c->out_len, line, l);
        c->out_len += l;
}

static void connection_kick(Connection *c) {
        if (connection_flush(c) < 0)
                connection_free(c);
}

/* ---- calls ---- */

static void call_unlink(RpcCall *call) {
        Connection *c = call->conn;
        if (!c)
                return;
        if (call->prev)
                call->prev->next = call->next;
        else
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        c->n_calls--;
        call->conn = NULL;
}

void rpc_call_set_error_data(RpcCall *call, json_t *data) {
        json_decref(call->error_data);
        call->error_data = data;
}

static void call_free(RpcCall *call) {
        call_unlink(call);
        json_decref(call->id);
        json_decref(call->error_data);
        if (call->free_userdata)
                call->free_userdata(call->userdata);
        free(call);
}

static void call_send_line(RpcCall *call, char *line) {
        if (call->id && call->conn)
                connection_queue(call->conn, line);
        free(line);
}

void rpc_call_reply(RpcCall *call, json_t *result) {
        if (call->replied) {
                json_decref(result);
                return;
        }
        call->replied = true;
        call_send_line(call, jsonrpc_format_result(call->id, result));
}

void rpc_call_reply_error(RpcCall *call, int code, const char *fmt, ...) {
        if (call->replied)
                return;
        call->replied = true;
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (n >= (int) sizeof(msg)) {
                /* Cut at a UTF-8 boundary, or the reply could not be encoded. */
                size_t l = sizeof(msg) - 1;
                while (l > 0 && ((unsigned char) msg[l - 1] & 0xC0) == 0x80)
                        l--;
                if (l > 0 && ((unsigned char) msg[l - 1] & 0xC0) == 0xC0)
                        l--;
                msg[l] = '\0';
        }
        call_send_line(call, jsonrpc_format_error(call->id, code, msg, NULL));
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

int rpc_params_check_keys(RpcCall *call, json_t *params, const char *const *allowed) {
        const char *key;
        json_t *v;
        json_object_foreach(params, key, v) {
                bool ok = false;
                for (const char *const *a = allowed; a && *a; a++)
                        if (streq(*a, key))
                                ok = true;
                if (!ok) {
                        rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "unknown parameter \"%s\"", key);
                        return -EINVAL;
                }
        }
        return 0;
}

/* ---- worker threads ---- */

static void mailbox_post(Daemon *d, RpcCall *call, char *line, bool final) {
        MailItem *m = calloc(1, sizeof(*m));
        if (!m) {
                /* Out of memory in a worker: drop the line, but a final item must arrive
                 * or the call leaks; spin until we get memory. */
                while (final && !(m = calloc(1, sizeof(*m))))
                        usleep(1000);
                if (!m) {
                        free(line);
                        return;
                }
        }
        *m = (MailItem){ .call = call, .line = line, .final = final };
        pthread_mutex_lock(&d->mailbox_lock);
        if (d->mailbox_tail)
                d->mailbox_tail->next = m;
        else
                d->mailbox_head = m;
        d->mailbox_tail = m;
        pthread_mutex_unlock(&d->mailbox_lock);
        uint64_t one = 1;
        (void) !write(d->mailbox_efd, &one, sizeof(one));
}

void rpc_call_notify(RpcCall *call, const char *method, json_t *params) {
        mailbox_post(call->d, call, jsonrpc_format_notification(method, params), false);
}

static void *worker_main(void *p) {
        RpcCall *call = p;
        json_t *result = NULL;
        error_clear();
        int r = call->work(call, call->userdata, &result);
        char *line;
        if (r < 0)
                line = jsonrpc_format_error(call->id, rpc_errno_to_code(r), errno_message(r), TAKE_PTR(call->error_data));
        else
                line = jsonrpc_format_result(call->id, result);
        if (!line) /* the final reply must arrive, or the client waits forever */
                line = jsonrpc_format_error(call->id, JSONRPC_INTERNAL_ERROR, "the reply could not be encoded", NULL);
        mailbox_post(call->d, call, line, true);
        return NULL;
}

int rpc_call_defer(RpcCall *call, RpcWorkFn fn, void *userdata, void (*free_userdata)(void *)) {
        Daemon *d = call->d;
        call->userdata = userdata;
        call->free_userdata = free_userdata;
        if (d->n_workers >= DAEMON_MAX_WORKERS) {
                rpc_call_reply_error(call, JSONRPC_UNAVAILABLE, "daemon is busy: too many operations in progress");
                return -EBUSY;
        }
        call->work = fn;
        call->deferred = true;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        int r = pthread_create(&t, &attr, worker_main, call);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                call->deferred = false;
                rpc_call_reply_error(call, JSONRPC_FAILED, "cannot start worker: %s", strerror(r));
                return -r;
        }
        d->n_workers++;
        return 0;
}

static int on_mailbox(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Daemon *d = userdata;
        uint64_t v;
        (void) !read(fd, &v, sizeof(v));
        pthread_mutex_lock(&d->mailbox_lock);
        MailItem *m = d->mailbox_head;
        d->mailbox_head = d->mailbox_tail = NULL;
        pthread_mutex_unlock(&d->mailbox_lock);
        while (m) {
                MailItem *next = m->next;
                RpcCall *call = m->call;
                Connection *c = call->conn;
                call_send_line(call, m->line);
                if (m->final) {
                        d->n_workers--;
                        call_free(call);
                }
                if (c)
                        connection_kick(c);
                free(m);
                m = next;
        }
        return 0;
}

void server_drain_workers(Daemon *d, usec_t timeout) {
        /* Workers still running finish their operation (a half-made VM or
         * image is worse than a slower stop); their replies go nowhere. */
        usec_t deadline = now_monotonic() + timeout;
        while (d->n_workers > 0 && now_monotonic() < deadline) {
                struct pollfd p = { .fd = d->mailbox_efd, .events = POLLIN };
                if (poll(&p, 1, 200) > 0)
                        (void) on_mailbox(NULL, d->mailbox_efd, EPOLLIN, d);
        }
        if (d->n_workers > 0)
                log_warning("%u operations still running at exit", d->n_workers);
}

int server_mailbox_setup(Daemon *d) {
        pthread_mutex_init(&d->mailbox_lock, NULL);
        d->mailbox_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d->mailbox_efd < 0)
                return -errno;
        return sd_event_add_io(d->event, &d->mailbox_source, d->mailbox_efd, EPOLLIN, on_mailbox, d);
}

/* ---- dispatch ---- */

static void dispatch(Connection *c, json_t *msg) {
        JsonRpcRequest req;
        const char *why;
        int code = jsonrpc_request_from_json(msg, &req, &why);
        if (code < 0) {
                json_t *id = json_object_get(msg, "id");
                char *line = jsonrpc_format_error(json_is_string(id) || json_is_integer(id) ? id : NULL, code, why, NULL);
                connection_queue(c, line);
                free(line);
                c->closing = true;
                return;
        }
        if (c->n_calls >= DAEMON_MAX_CALLS_PER_CONNECTION) {
                char *line = jsonrpc_format_error(req.id, JSONRPC_UNAVAILABLE, "too many requests in flight on this connection", NULL);
                connection_queue(c, line);
                free(line);
                return;
        }
        RpcCall *call = calloc(1, sizeof(*call));
        if (!call) {
                c->closing = true;
                return;
        }
        *call = (RpcCall){ .d = c->d, .conn = c, .id = json_incref(req.id) };
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        c->n_calls++;

        const RpcMethod *m = rpc_method_find(req.method);
        json_t *params = req.params ? json_incref(req.params) : json_object();
        error_clear();
        if (!m)
                rpc_call_reply_error(call, JSONRPC_METHOD_NOT_FOUND, "unknown method \"%s\"", req.method);
        else if (c->d->shutting_down && !streq(req.method, "daemon.ping"))
                rpc_call_reply_error(call, JSONRPC_UNAVAILABLE, "daemon is shutting down");
        else {
                log_debug("call %s", req.method);
                int r = m->fn(c->d, call, params);
                if (r < 0 && !call->replied && !call->deferred)
                        rpc_call_reply_errno(call, r);
        }
        json_decref(params);
        if (!call->deferred) {
                if (!call->replied)
                        rpc_call_reply_error(call, JSONRPC_INTERNAL_ERROR, "method produced no reply");
                call_free(call);
        }
}

static void connection_process_lines(Connection *c) {
        const char *line;
        size_t len;
        int r;
        while (!c->closing && (r = jsonrpc_reader_next(&c->reader, &line, &len)) != 0) {
                if (r < 0) {
                        char *e = jsonrpc_format_error(NULL, JSONRPC_INVALID_REQUEST, "message larger than 1 MiB", NULL);
                        connection_queue(c, e);
                        free(e);
                        c->closing = true;
                        return;
                }
                if (len == 0)
                        continue;
                json_t *msg = NULL;
                const char *why;
                int code = jsonrpc_parse_line(line, len, &msg, &why);
                if (code < 0) {
                        char *e = jsonrpc_format_error(NULL, code, why, NULL);
                        connection_queue(c, e);
                        free(e);
                        c->closing = true;
                        return;
                }
                dispatch(c, msg);
                json_decref(msg);
        }
}

#define CONNECTION_MAX_DRAIN (1024u * 1024)

static int connection_drain(Connection *c) {
        char buf[65536];
        for (;;) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n <= 0)
                        return -ECONNRESET;
                c->drained += (size_t) n;
                if (c->drained > CONNECTION_MAX_DRAIN)
                        return -ECONNRESET;
        }
}

static int on_connection_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Connection *c = userdata;
        if (c->draining) {
                if (connection_drain(c) < 0 || (revents & (EPOLLHUP | EPOLLERR)))
                        connection_free(c);
                return 0;
        }
        if (revents & EPOLLIN && !c->closing) {
                char buf[65536];
                /* A bounded number of reads per wakeup keeps other clients served. */
                for (int i = 0; i < 16 && !c->closing; i++) {
                        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno == EAGAIN)
                                break;
                        if (n <= 0) {
                                connection_free(c);
                                return 0;
                        }
                        if (jsonrpc_reader_feed(&c->reader, buf, (size_t) n) < 0) {
                                char *e = jsonrpc_format_error(NULL, JSONRPC_INVALID_REQUEST, "message larger than 1 MiB", NULL);
                                connection_queue(c, e);
                                free(e);
                                c->closing = true;
                                break;
                        }
                        connection_process_lines(c);
                }
        } else if (revents & (EPOLLHUP | EPOLLERR) && !(revents & EPOLLOUT)) {
                connection_free(c);
                return 0;
        }
        connection_kick(c);
        return 0;
}

static void connection_free(Connection *c) {
        Daemon *d = c->d;
        /* Deferred calls outlive us; they just lose their way back. */
        while (c->calls)
                call_unlink(c->calls);
        sd_event_source_disable_unref(c->io);
        safe_close(c->fd);
        jsonrpc_reader_done(&c->reader);
        free(c->out);
        if (c->prev)
                c->prev->next = c->next;
        else
                d->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        if (c->refused)
                d->n_refused--;
        else
                d->n_connections--;
        free(c);
}

/* ---- listening ---- */

static int accept_one(Daemon *d, int fd);
static int on_connection_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        /* Drain a burst of connections per wakeup, bounded so requests on
         * existing connections are not starved. */
        for (int i = 0; i < 64; i++)
                if (accept_one(userdata, fd) <= 0)
                        break;
        return 0;
}

static Connection *connection_new(Daemon *d, int cfd, bool refused) {
        Connection *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        *c = (Connection){ .d = d, .fd = cfd, .refused = refused };
        jsonrpc_reader_init(&c->reader, JSONRPC_MAX_MESSAGE);
        if (sd_event_add_io(d->event, &c->io, cfd, EPOLLIN, on_connection_io, c) < 0) {
                free(c);
                return NULL;
        }
        c->next = d->connections;
        if (d->connections)
                d->connections->prev = c;
        d->connections = c;
        if (refused)
                d->n_refused++;
        else
                d->n_connections++;
        return c;
}

/* Answer with an error and close cleanly (the peer reads the reason). */
static void refuse(Daemon *d, int cfd, const char *why) {
        Connection *c = d->n_refused < DAEMON_MAX_REFUSING ? connection_new(d, cfd, true) : NULL;
        if (!c) {
                close(cfd);
                return;
        }
        char *line = jsonrpc_format_error(NULL, JSONRPC_UNAVAILABLE, why, NULL);
        connection_queue(c, line);
        free(line);
        c->closing = true;
        connection_kick(c);
}

/* Returns 1 when a connection was taken (accepted or refused), 0 when none waits. */
static int accept_one(Daemon *d, int fd) {
        int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno == EINTR || errno == ECONNABORTED)
                        return 1;
                if (errno != EAGAIN)
                        log_warning_errno(-errno, "accept failed: %m");
                return 0;
        }
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                refuse(d, cfd, "cannot identify peer");
                return 1;
        }
        if (cred.uid != 0 && cred.uid != geteuid()) {
                log_warning("refusing connection from uid %u (pid %d)", (unsigned) cred.uid, (int) cred.pid);
                refuse(d, cfd, "permission denied: this daemon serves only its own user and root");
                return 1;
        }
        if (d->n_connections >= DAEMON_MAX_CONNECTIONS) {
                log_warning("refusing connection: %d connections open", DAEMON_MAX_CONNECTIONS);
                refuse(d, cfd, "too many connections");
                return 1;
        }
        if (!connection_new(d, cfd, false))
                close(cfd);
        return 1;
}

static int bind_private_socket(Daemon *d) {
        /* Bind through the verified directory fd, so a directory swapped after
         * the check cannot redirect us, and under umask 0177 so the socket is
         * 0600 from the moment it exists. */
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d/bangerd.sock", d->runtime_dir_fd);
        if (strlen(d->paths.socket_path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return error_setf(-ENAMETOOLONG, "socket path %s is longer than 107 bytes", d->paths.socket_path);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, path);

        /* A stale socket from a crashed daemon: remove it only if nobody answers. */
        struct stat st;
        if (fstatat(d->runtime_dir_fd, "bangerd.sock", &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return error_setf(-EEXIST, "%s exists and is not a socket", d->paths.socket_path);
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        return error_setf(-EADDRINUSE, "another bangerd is already listening on %s",
                                          d->paths.socket_path);
                (void) unlinkat(d->runtime_dir_fd, "bangerd.sock", 0);
        }

        /* A socket inode gets 0777 & ~umask: 0177 leaves exactly 0600. */
        mode_t old = umask(0177);
        int r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        int saved = errno;
        umask(old);
        if (r < 0)
                return error_setf(-saved, "cannot bind %s: %s", d->paths.socket_path, strerror(saved));
        d->owns_socket_file = true;
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int server_listen(Daemon *d) {
        int n = sd_listen_fds(true);
        int fd;
        if (n > 1)
                return error_setf(-EINVAL, "expected one socket from systemd, got %d", n);
        if (n == 1) {
                fd = SD_LISTEN_FDS_START;
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
                        return error_setf(-EINVAL, "the fd systemd passed is not a listening Unix stream socket");
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                d->socket_activated = true;
                log_info("using the socket systemd passed in");
        } else {
                fd = bind_private_socket(d);
                if (fd < 0)
                        return fd;
        }
        d->listen_fd = fd;
        return sd_event_add_io(d->event, &d->listen_source, fd, EPOLLIN, on_accept, d);
}

void server_close_all(Daemon *d) {
        while (d->connections) {
                (void) connection_flush(d->connections);
                connection_free(d->connections);
        }
        d->listen_source = sd_event_source_disable_unref(d->listen_source);
        d->listen_fd = safe_close(d->listen_fd);
        if (d->owns_socket_file && d->runtime_dir_fd >= 0)
                (void) unlinkat(d->runtime_dir_fd, "bangerd.sock", 0);
        d->owns_socket_file = false;
}
