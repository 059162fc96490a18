/* SPDX-License-Identifier: MIT */
/* The daemon's RPC server: the listening socket, connections, line framing
 * and dispatch by method name. Nothing here blocks. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "banger-build.h"
#include "daemon.h"
#include "error.h"
#include "jsonrpc.h"
#include "log.h"
#include "socket-util.h"
#include "macro.h"
#include "server-internal.h"
#include "string-util.h"

#define SERVER_MAX_CONNECTIONS 256
#define SERVER_MAX_REFUSING 64
#define CONNECTION_MAX_CALLS 64
#define CONNECTION_MAX_PENDING_OUTPUT (64u * 1024 * 1024)
#define CONNECTION_MAX_DRAIN (1024u * 1024)

struct Server {
        Daemon *d;
        const RpcMethod *const *tables;
        bool socket_activated;
        bool owns_socket_file;
        int listen_fd;
        sd_event_source *listen_source;
        Connection *connections;
        unsigned n_connections;
        unsigned n_refused;
};

struct Connection {
        Server *server;
        unsigned n_refs; /* one while open, one per call */
        bool open;
        bool in_handler; /* replies queue up and go out when the handler ends */
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
        pid_t peer_pid;
        uid_t peer_uid;
        Connection *next, *prev;
};

/* ---- connection lifetime ---- */

static void connection_unref(Connection *c) {
        if (--c->n_refs == 0)
                free(c);
}

static void connection_close(Connection *c) {
        if (!c->open)
                return;
        Server *s = c->server;
        c->open = false;
        c->io = sd_event_source_disable_unref(c->io);
        c->fd = safe_close(c->fd);
        jsonrpc_reader_done(&c->reader);
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_cap = 0;
        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        if (c->refused)
                s->n_refused--;
        else
                s->n_connections--;
        connection_unref(c); /* calls still running keep the memory */
}

void connection_peer(Connection *c, pid_t *ret_pid, uid_t *ret_uid) {
        *ret_pid = c->peer_pid;
        *ret_uid = c->peer_uid;
}

void connection_add_call(Connection *c) {
        c->n_refs++;
        c->n_calls++;
}

void connection_remove_call(Connection *c) {
        c->n_calls--;
        connection_unref(c);
}

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
        if (!c->open || !line)
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
        if (c->open && connection_flush(c) < 0)
                connection_close(c);
}

void connection_send(Connection *c, const char *line) {
        connection_queue(c, line);
        if (!c->in_handler)
                connection_kick(c);
}

bool connection_is_open(Connection *c) {
        return c->open && !c->closing;
}

size_t connection_pending(Connection *c) {
        return c->open ? c->out_len : 0;
}

void connection_end(Connection *c) {
        c->closing = true;
        if (!c->in_handler)
                connection_kick(c);
}

void connection_set_send_buffer(Connection *c, int bytes) {
        if (c->open)
                (void) setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
}

/* A reply that is not a method's: bad request, unknown method, refusal. */
static void connection_send_error(Connection *c, json_t *id, int code, const char *message) {
        _cleanup_free_ char *line = jsonrpc_format_error(id, code, message, NULL);
        connection_queue(c, line);
}

/* A request for another build ("VERSION COMMIT", docs/protocol.md) is
 * refused before it runs, with this daemon's build: a client checks the
 * build this way in the round trip of its call, not a daemon.ping before. */
static void connection_send_other_build(Connection *c, json_t *id, const char *build) {
        char msg[JSONRPC_BUILD_MAX + 160];
        snprintf(msg, sizeof(msg), "this daemon is banger %s (%s), not %s", BANGER_VERSION, BANGER_COMMIT, build);
        _cleanup_free_ char *line =
                jsonrpc_format_error(id, JSONRPC_OTHER_BUILD, msg,
                                     json_pack("{s:s, s:s}", "version", BANGER_VERSION, "commit", BANGER_COMMIT));
        connection_queue(c, line);
}

/* ---- dispatch ---- */

static const RpcMethod *method_find(Server *s, const char *name) {
        for (const RpcMethod *const *t = s->tables; *t; t++)
                for (const RpcMethod *m = *t; m->name; m++)
                        if (streq(m->name, name))
                                return m;
        return NULL;
}

static void dispatch(Connection *c, json_t *msg) {
        Server *s = c->server;
        JsonRpcRequest req;
        const char *why;
        int code = jsonrpc_request_from_json(msg, &req, &why);
        if (code < 0) {
                json_t *id = json_object_get(msg, "id");
                connection_send_error(c, json_is_string(id) || json_is_integer(id) ? id : NULL, code, why);
                c->closing = true;
                return;
        }
        if (c->n_calls >= CONNECTION_MAX_CALLS) {
                connection_send_error(c, req.id, JSONRPC_UNAVAILABLE, "too many requests in flight on this connection");
                return;
        }
        if (req.build && !streq(req.build, BANGER_VERSION " " BANGER_COMMIT)) {
                if (req.id)
                        connection_send_other_build(c, req.id, req.build);
                return;
        }
        const RpcMethod *m = method_find(s, req.method);
        if (!m) {
                char msg_text[320];
                snprintf(msg_text, sizeof(msg_text), "unknown method \"%.256s\"", req.method);
                if (req.id)
                        connection_send_error(c, req.id, JSONRPC_METHOD_NOT_FOUND, msg_text);
                return;
        }
        if (s->d->shutting_down && !streq(req.method, "daemon.ping")) {
                if (req.id)
                        connection_send_error(c, req.id, JSONRPC_UNAVAILABLE, "daemon is shutting down");
                return;
        }
        rpc_call_run(s->d, c, req.id, m, req.params);
}

static void connection_process_lines(Connection *c) {
        const char *line;
        size_t len;
        int r;
        while (c->open && !c->closing && (r = jsonrpc_reader_next(&c->reader, &line, &len)) != 0) {
                if (r < 0) {
                        connection_send_error(c, NULL, JSONRPC_INVALID_REQUEST, "message larger than 1 MiB");
                        c->closing = true;
                        return;
                }
                if (len == 0)
                        continue;
                json_t *msg = NULL;
                const char *why;
                int code = jsonrpc_parse_line(line, len, &msg, &why);
                if (code < 0) {
                        connection_send_error(c, NULL, code, why);
                        c->closing = true;
                        return;
                }
                dispatch(c, msg);
                json_decref(msg);
        }
}

/* ---- input ---- */

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

/* Read what is there (a bounded number of reads per wakeup keeps other
 * clients served) and answer every complete line. */
static void connection_read(Connection *c) {
        char buf[65536];
        for (int i = 0; i < 16 && c->open && !c->closing; i++) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        connection_close(c);
                        return;
                }
                if (jsonrpc_reader_feed(&c->reader, buf, (size_t) n) < 0) {
                        connection_send_error(c, NULL, JSONRPC_INVALID_REQUEST, "message larger than 1 MiB");
                        c->closing = true;
                        break;
                }
                connection_process_lines(c);
        }
}

static int on_connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Connection *c = userdata;
        if (c->draining) {
                if (connection_drain(c) < 0 || (revents & (EPOLLHUP | EPOLLERR)))
                        connection_close(c);
                return 0;
        }
        c->n_refs++; /* a call that ends here must not free c under us */
        c->in_handler = true;
        if (revents & EPOLLIN && !c->closing)
                connection_read(c);
        else if (revents & (EPOLLHUP | EPOLLERR) && !(revents & EPOLLOUT))
                connection_close(c);
        c->in_handler = false;
        connection_kick(c);
        connection_unref(c);
        return 0;
}

/* ---- listening ---- */

static Connection *connection_new(Server *s, int cfd, bool refused) {
        Connection *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        *c = (Connection){ .server = s, .n_refs = 1, .open = true, .fd = cfd, .refused = refused };
        jsonrpc_reader_init(&c->reader, JSONRPC_MAX_MESSAGE);
        if (sd_event_add_io(s->d->event, &c->io, cfd, EPOLLIN, on_connection_io, c) < 0) {
                free(c);
                return NULL;
        }
        c->next = s->connections;
        if (s->connections)
                s->connections->prev = c;
        s->connections = c;
        if (refused)
                s->n_refused++;
        else
                s->n_connections++;
        return c;
}

/* Answer with an error and close cleanly (the peer reads the reason). */
static void refuse(Server *s, int cfd, const char *why) {
        Connection *c = s->n_refused < SERVER_MAX_REFUSING ? connection_new(s, cfd, true) : NULL;
        if (!c) {
                close(cfd);
                return;
        }
        connection_send_error(c, NULL, JSONRPC_UNAVAILABLE, why);
        c->closing = true;
        connection_kick(c);
}

/* Returns 1 when a connection was taken (accepted or refused), 0 when none waits. */
static int accept_one(Server *s, int fd) {
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
                refuse(s, cfd, "cannot identify peer");
                return 1;
        }
        if (cred.uid != 0 && cred.uid != geteuid()) {
                log_warning("refusing connection from uid %u (pid %d)", (unsigned) cred.uid, (int) cred.pid);
                refuse(s, cfd, "permission denied: this daemon serves only its own user and root");
                return 1;
        }
        if (s->n_connections >= SERVER_MAX_CONNECTIONS) {
                log_warning("refusing connection: %d connections open", SERVER_MAX_CONNECTIONS);
                refuse(s, cfd, "too many connections");
                return 1;
        }
        Connection *c = connection_new(s, cfd, false);
        if (!c)
                close(cfd);
        else {
                c->peer_pid = cred.pid;
                c->peer_uid = cred.uid;
        }
        return 1;
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        /* Drain a burst of connections per wakeup, bounded so requests on
         * existing connections are not starved. */
        for (int i = 0; i < 64; i++)
                if (accept_one(userdata, fd) <= 0)
                        break;
        return 0;
}

static int bind_private_socket(Server *s) {
        Daemon *d = s->d;
        /* Bind through the verified directory fd, so a directory swapped after
         * the check cannot redirect us, and under umask 0177 so the socket is
         * 0600 from the moment it exists. */
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d/bangerd.sock", d->runtime_dir_fd);
        int r = unix_socket_path_check(d->paths.socket_path);
        if (r < 0)
                return r;

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        struct sockaddr_un sa;
        (void) sockaddr_un_set(&sa, path, NULL);

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
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        int saved = errno;
        umask(old);
        if (r < 0)
                return error_setf(-saved, "cannot bind %s: %s", d->paths.socket_path, strerror(saved));
        s->owns_socket_file = true;
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static int server_listen(Server *s) {
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
                s->socket_activated = true;
                log_info("using the socket systemd passed in");
        } else {
                fd = bind_private_socket(s);
                if (fd < 0)
                        return fd;
        }
        s->listen_fd = fd;
        return sd_event_add_io(s->d->event, &s->listen_source, fd, EPOLLIN, on_accept, s);
}

int server_new(Daemon *d, const RpcMethod *const *tables, Server **ret) {
        Server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (Server){ .d = d, .tables = tables, .listen_fd = -EBADF };
        int r = server_listen(s);
        if (r < 0) {
                server_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        while (s->connections) {
                Connection *c = s->connections;
                (void) connection_flush(c);
                connection_close(c);
        }
        s->listen_source = sd_event_source_disable_unref(s->listen_source);
        s->listen_fd = safe_close(s->listen_fd);
        if (s->owns_socket_file && s->d->runtime_dir_fd >= 0)
                (void) unlinkat(s->d->runtime_dir_fd, "bangerd.sock", 0);
        free(s);
        return NULL;
}

unsigned server_connections(Server *s) {
        return s ? s->n_connections : 0;
}

bool server_socket_activated(Server *s) {
        return s && s->socket_activated;
}
