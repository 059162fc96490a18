/* SPDX-License-Identifier: MIT */
/* The helper's socket: one JSON request per connection, terminated by the
 * client shutting down its write side; one JSON reply; close. Peers are
 * checked with SO_PEERCRED before a byte is read. Requests are handled in
 * the event loop itself: every method is a handful of quick syscalls. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "helper.h"
#include "jsonrpc.h"
#include "log.h"
#include "socket-util.h"
#include "string-util.h"
#include "time-util.h"

typedef struct Conn {
        Helper *h;
        int fd;
        uid_t uid;
        pid_t pid;
        char *buf;
        size_t len;
        sd_event_source *io, *timer;
} Conn;

/* Only root and the owner ever get a Conn (peer_allowed); an owner that is
 * root itself uses the owner's budget. */
static unsigned *conn_counter(Helper *h, uid_t uid) {
        return uid == h->owner_uid ? &h->n_conn_owner : &h->n_conn_root;
}

static unsigned conn_limit(const Helper *h, uid_t uid) {
        return uid == h->owner_uid ? HELPER_MAX_OWNER_CONNECTIONS : HELPER_MAX_ROOT_CONNECTIONS;
}

static void conn_free(Conn *c) {
        if (!c)
                return;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        free(c->buf);
        (*conn_counter(c->h, c->uid))--;
        free(c);
}

const char *errno_name(int r) {
        const char *n = strerrorname_np(r < 0 ? -r : r);
        return n ? n : "EIO";
}

/* Best effort: the peer may be gone; the reply is small and the socket
 * buffer empty, and a send timeout bounds a peer that stopped reading. */
static void send_reply(int fd, json_t *reply) {
        _cleanup_free_ char *text = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        if (!text)
                return;
        struct timeval tv = { .tv_sec = HELPER_REQUEST_TIMEOUT_SEC };
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                (void) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        if (loop_write(fd, text, strlen(text)) >= 0)
                (void) loop_write(fd, "\n", 1);
}

static void send_error(int fd, int r, const char *message) {
        send_reply(fd, json_pack("{s:b, s:s, s:s}", "ok", false, "error", message, "errno", errno_name(r)));
}

static void send_errno(int fd, int r) {
        const char *m = error_last_message();
        send_error(fd, r, m ? m : strerror(-r));
}

static int dispatch(Helper *h, json_t *req, json_t **ret_result, const char **ret_method) {
        static const HelperField fields[] = { { "method", FIELD_STRING, true }, {} };
        json_t *params = json_object_get(req, "params");
        /* params must be an object; checked separately for a precise message. */
        if (params && !json_is_object(params))
                return error_setf(-EINVAL, "request: field 'params' must be an object");
        json_t *copy = json_copy(req);
        if (!copy)
                return -ENOMEM;
        json_object_del(copy, "params");
        int r = params_check("request", copy, fields);
        json_decref(copy);
        if (r < 0)
                return r;
        const char *name = json_string_value(json_object_get(req, "method"));
        char b[48];
        const HelperMethod *m = helper_method_find(name);
        if (!m)
                return error_setf(-EOPNOTSUPP, "unknown method '%s'", shorten(name, b));
        *ret_method = m->name;
        json_t *empty = NULL;
        if (!params)
                params = empty = json_object();
        r = params ? m->fn(h, params, ret_result) : -ENOMEM;
        json_decref(empty);
        return r;
}

static void conn_handle(Conn *c) {
        _cleanup_(json_decrefp) json_t *req = NULL;
        json_t *result = NULL;
        const char *method = "?";
        error_clear();
        int r = helper_request_parse(c->buf, c->len, &req);
        if (r >= 0)
                r = dispatch(c->h, req, &result, &method);
        if (r < 0) {
                const char *m = error_last_message();
                log_warning("uid %u pid %d: %s refused: %s", (unsigned) c->uid, (int) c->pid, method,
                            m ? m : strerror(-r));
                send_errno(c->fd, r);
                return;
        }
        log_info("uid %u pid %d: %s ok", (unsigned) c->uid, (int) c->pid, method);
        send_reply(c->fd, json_pack("{s:b, s:o}", "ok", true, "result", result ? result : json_object()));
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *c = userdata;
        for (;;) {
                /* Read one byte past the limit to tell "exactly full" from "too big". */
                ssize_t n = read(fd, c->buf + c->len, HELPER_MAX_REQUEST + 1 - c->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0) {
                        conn_free(c);
                        return 0;
                }
                if (n == 0)
                        break;
                c->len += (size_t) n;
                if (c->len > HELPER_MAX_REQUEST) {
                        log_warning("uid %u pid %d: request over %d bytes refused", (unsigned) c->uid, (int) c->pid,
                                    HELPER_MAX_REQUEST);
                        send_error(fd, -EMSGSIZE, "request larger than 65536 bytes; refused");
                        conn_free(c);
                        return 0;
                }
        }
        c->buf[c->len] = '\0';
        conn_handle(c);
        conn_free(c);
        return 0;
}

static int on_conn_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Conn *c = userdata;
        log_warning("uid %u pid %d: no complete request within %d s", (unsigned) c->uid, (int) c->pid,
                    HELPER_REQUEST_TIMEOUT_SEC);
        send_error(c->fd, -ETIMEDOUT,
                   "no complete request within 10 s (end the request by shutting down the "
                   "write side of the socket)");
        conn_free(c);
        return 0;
}

static bool peer_allowed(const Helper *h, const struct ucred *cr) {
        return cr->uid == 0 || cr->uid == h->owner_uid;
}

static int conn_new(Helper *h, int fd, const struct ucred *cr) {
        Conn *c = calloc(1, sizeof(Conn));
        if (!c)
                return -ENOMEM;
        *c = (Conn){ .h = h, .fd = fd, .uid = cr->uid, .pid = cr->pid };
        (*conn_counter(h, cr->uid))++;
        c->buf = malloc(HELPER_MAX_REQUEST + 2);
        int r = c->buf ? 0 : -ENOMEM;
        if (r >= 0)
                r = sd_event_add_io(h->event, &c->io, fd, EPOLLIN, on_conn_io, c);
        if (r >= 0)
                r = sd_event_add_time_relative(h->event, &c->timer, CLOCK_MONOTONIC,
                                               HELPER_REQUEST_TIMEOUT_SEC * USEC_PER_SEC, 0, on_conn_timeout, c);
        if (r < 0) {
                c->fd = -EBADF; /* the caller still owns fd on failure */
                conn_free(c);
        }
        return r;
}

static int on_accept(sd_event_source *s, int lfd, uint32_t revents, void *userdata) {
        Helper *h = userdata;
        _cleanup_close_ int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
                return 0;
        struct ucred cr;
        socklen_t l = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0)
                return 0;
        if (!peer_allowed(h, &cr)) {
                log_warning("refused connection from uid %u pid %d: not root or the owner", (unsigned) cr.uid,
                            (int) cr.pid);
                char msg[128];
                snprintf(msg, sizeof(msg), "permission denied: uid %u is neither root nor the owner (uid %u)",
                         (unsigned) cr.uid, (unsigned) h->owner_uid);
                send_error(fd, -EPERM, msg);
                return 0;
        }
        unsigned limit = conn_limit(h, cr.uid);
        if (*conn_counter(h, cr.uid) >= limit) {
                log_warning("refused connection from uid %u pid %d: %u already open", (unsigned) cr.uid, (int) cr.pid,
                            limit);
                char msg[128];
                snprintf(msg, sizeof(msg), "too many concurrent requests from uid %u (at most %u); retry",
                         (unsigned) cr.uid, limit);
                send_error(fd, -EBUSY, msg);
                return 0;
        }
        if (conn_new(h, fd, &cr) >= 0)
                TAKE_FD(fd);
        return 0;
}

/* The socket's directory: created root-owned 0711 when missing; an
 * existing one must be a real directory owned by root that nobody else can
 * write to, so nobody but root can swap the socket. */
static int socket_dir_open(const char *dir, int *ret_fd) {
        /* The process umask is 0077; 0711 lets the owner reach the socket. */
        mode_t old = umask(0066);
        int r = mkdirat_private(AT_FDCWD, dir, 0711);
        umask(old);
        if (r < 0)
                return error_setf(r, "cannot create %s: %s", dir, strerror(-r));
        _cleanup_close_ int fd = open_dir_nofollow(AT_FDCWD, dir);
        if (fd < 0)
                return error_setf(fd, "cannot open %s (it must be a directory, not a symlink): %s", dir, strerror(-fd));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != 0 || (st.st_mode & 0022))
                return error_setf(-EPERM,
                                  "%s must be owned by root and not writable by group or others "
                                  "(it is uid %u, mode %04o)",
                                  dir, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777));
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Remove a stale socket left by a crashed helper; refuse when a live helper
 * answers on it or when something that is not a socket holds the name. */
static int socket_clear_stale(Helper *h, const struct sockaddr_un *sa) {
        struct stat st;
        if (fstatat(h->socket_dir_fd, h->socket_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return error_setf(-EEXIST, "%s exists and is not a socket", h->socket_path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) == 0)
                return error_setf(-EADDRINUSE, "another helper is already listening on %s", h->socket_path);
        if (unlinkat(h->socket_dir_fd, h->socket_name, 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int socket_bind_private(Helper *h, int fd, const struct sockaddr_un *sa) {
        /* Born 0600 root:root under umask 0177, then handed to the owner:
         * at no moment can anyone but root and the owner connect. */
        mode_t old = umask(0177);
        int r = bind(fd, (const struct sockaddr *) sa, sizeof(*sa));
        umask(old);
        if (r < 0)
                return error_setf(-errno, "cannot bind %s: %s", h->socket_path, strerror(errno));
        if (fchownat(h->socket_dir_fd, h->socket_name, h->owner_uid, h->owner_gid, AT_SYMLINK_NOFOLLOW) < 0) {
                r = -errno;
                (void) unlinkat(h->socket_dir_fd, h->socket_name, 0);
                return error_setf(r, "cannot hand %s to uid %u: %s", h->socket_path, (unsigned) h->owner_uid,
                                  strerror(-r));
        }
        return 0;
}

int helper_listen(Helper *h) {
        _cleanup_free_ char *dir = strdup(h->socket_path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir || !slash[1])
                return error_setf(-EINVAL, "socket path %s must be absolute, in a directory other than /",
                                  h->socket_path);
        *slash = '\0';
        h->socket_name = h->socket_path + (slash - dir) + 1;
        struct sockaddr_un sa;
        int r = sockaddr_un_set(&sa, h->socket_path, NULL);
        if (r >= 0)
                r = socket_dir_open(dir, &h->socket_dir_fd);
        if (r >= 0)
                r = socket_clear_stale(h, &sa);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if ((r = socket_bind_private(h, fd, &sa)) < 0)
                return r;
        r = listen(fd, 64) < 0 ? -errno : sd_event_add_io(h->event, &h->listen_source, fd, EPOLLIN, on_accept, h);
        if (r < 0) {
                (void) unlinkat(h->socket_dir_fd, h->socket_name, 0);
                return error_setf(r, "cannot listen on %s: %s", h->socket_path, strerror(-r));
        }
        h->listen_fd = TAKE_FD(fd);
        return 0;
}

void helper_unlisten(Helper *h) {
        h->listen_source = sd_event_source_disable_unref(h->listen_source);
        if (h->listen_fd >= 0 && h->socket_dir_fd >= 0)
                (void) unlinkat(h->socket_dir_fd, h->socket_name, 0);
        h->listen_fd = safe_close(h->listen_fd);
}
