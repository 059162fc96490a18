/* SPDX-License-Identifier: MIT */
#include "qemu-qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "io-util.h"
#include "log.h"
#include "socket-util.h"
#include "string-util.h"
#include "vmm-driver.h"

struct QmpClient {
        int fd;
        char *buf; /* bytes received but not yet parsed */
        size_t len;
        unsigned next_id;
        /* Events that arrived while a command waited for its reply, oldest
         * first, so qmp_client_wait_event() can still see them. */
        json_t *events[QMP_EVENTS_KEPT];
        size_t n_events;
};

QmpClient *qmp_client_free(QmpClient *c) {
        if (!c)
                return NULL;
        safe_close(c->fd);
        free(c->buf);
        for (size_t i = 0; i < c->n_events; i++)
                json_decref(c->events[i]);
        free(c);
        return NULL;
}

/* Keeps the newest QMP_EVENTS_KEPT events; takes the reference. */
static void event_keep(QmpClient *c, json_t *event) {
        if (c->n_events == QMP_EVENTS_KEPT) {
                json_decref(c->events[0]);
                memmove(c->events, c->events + 1, (QMP_EVENTS_KEPT - 1) * sizeof(json_t *));
                c->n_events--;
        }
        c->events[c->n_events++] = event;
}

static int wait_fd(int fd, short events, usec_t deadline, const char *what) {
        int r = fd_wait_until(fd, events, deadline);
        if (r == -ETIMEDOUT)
                return error_setf(r, "QEMU did not answer %s in time", what);
        return r;
}

/* One send, with pass_fd (if >= 0) attached as SCM_RIGHTS. */
static ssize_t send_chunk(int sock, const char *data, size_t len, int pass_fd) {
        if (pass_fd < 0)
                return send(sock, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) data, .iov_len = len };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control)
        };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
        return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* pass_fd (>= 0) travels with the first bytes that are sent. */
static int send_all(QmpClient *c, const char *data, size_t len, int pass_fd, usec_t deadline, const char *what) {
        while (len > 0) {
                ssize_t n = send_chunk(c->fd, data, len, pass_fd);
                if (n > 0)
                        pass_fd = -EBADF;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        int r = wait_fd(c->fd, POLLOUT, deadline, what);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
                        return error_setf(-ECONNRESET, "QEMU closed its QMP connection before %s", what);
                if (n < 0)
                        return error_setf(-errno, "cannot send %s to QEMU: %m", what);
                data += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Take one complete line out of the buffer, if there is one. */
static int pop_line(QmpClient *c, json_t **ret) {
        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                if (!nl)
                        return 0;
                size_t n = (size_t) (nl - c->buf);
                size_t l = n > 0 && c->buf[n - 1] == '\r' ? n - 1 : n;
                json_t *j = NULL;
                json_error_t err;
                if (l > 0)
                        j = json_loadb(c->buf, l, 0, &err);
                memmove(c->buf, nl + 1, c->len - n - 1);
                c->len -= n + 1;
                if (l == 0)
                        continue;
                if (!j)
                        return error_setf(-EBADMSG, "QEMU sent malformed JSON: %s", err.text);
                if (!json_is_object(j)) {
                        json_decref(j);
                        return error_setf(-EBADMSG, "QEMU sent a QMP message that is not an object");
                }
                *ret = j;
                return 1;
        }
}

static int read_message(QmpClient *c, usec_t deadline, const char *what, json_t **ret) {
        for (;;) {
                int r = pop_line(c, ret);
                if (r != 0)
                        return r < 0 ? r : 0;
                if (c->len >= QMP_MESSAGE_MAX)
                        return error_setf(-EMSGSIZE, "QEMU sent a QMP message over %u bytes", QMP_MESSAGE_MAX);
                r = wait_fd(c->fd, POLLIN, deadline, what);
                if (r < 0)
                        return r;
                ssize_t n = recv(c->fd, c->buf + c->len, QMP_MESSAGE_MAX - c->len, MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return error_setf(-errno, "cannot read from QEMU's QMP socket: %m");
                if (n == 0)
                        return error_setf(-ECONNRESET, "QEMU closed its QMP connection during %s", what);
                c->len += (size_t) n;
        }
}

static int reply_error(const char *command, json_t *error) {
        const char *cls = json_string_value(json_object_get(error, "class"));
        const char *desc = json_string_value(json_object_get(error, "desc"));
        int r = streq_ptr(cls, "CommandNotFound") ? -EOPNOTSUPP : -EIO;
        return error_setf(r, "QEMU refused %s: %s", command, desc ? desc : "(no description)");
}

static int execute(QmpClient *c, const char *command, json_t *arguments, int pass_fd, usec_t timeout, json_t **ret) {
        if (!c || !command)
                return -EINVAL;
        usec_t deadline = deadline_from_timeout(timeout);
        char id[32];
        snprintf(id, sizeof(id), "banger-%u", c->next_id++);

        _cleanup_(qmp_json_decrefp) json_t *req = json_pack("{s:s, s:s}", "execute", command, "id", id);
        if (!req || (arguments && json_object_set(req, "arguments", arguments) < 0))
                return -ENOMEM;
        _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        size_t l = strlen(text);
        text[l] = '\n'; /* replaces the NUL; sent with its length */
        int r = send_all(c, text, l + 1, pass_fd, deadline, command);
        if (r < 0)
                return r;

        for (;;) {
                _cleanup_(qmp_json_decrefp) json_t *msg = NULL;
                r = read_message(c, deadline, command, &msg);
                if (r < 0)
                        return r;
                const char *event = json_string_value(json_object_get(msg, "event"));
                if (event) {
                        log_debug("QMP event %s while waiting for %s", event, command);
                        event_keep(c, TAKE_PTR(msg));
                        continue;
                }
                if (!streq_ptr(json_string_value(json_object_get(msg, "id")), id))
                        continue; /* not ours: a reply to a command someone else abandoned */
                json_t *error = json_object_get(msg, "error");
                if (error)
                        return reply_error(command, error);
                json_t *value = json_object_get(msg, "return");
                if (!value)
                        return error_setf(-EBADMSG, "QEMU's reply to %s has neither return nor error", command);
                if (ret)
                        *ret = json_incref(value);
                return 0;
        }
}

int qmp_client_execute(QmpClient *c, const char *command, json_t *arguments, usec_t timeout, json_t **ret) {
        return execute(c, command, arguments, -EBADF, timeout, ret);
}

int qmp_client_add_fd(QmpClient *c, const char *fdname, int fd, usec_t timeout) {
        if (fd < 0 || !fdname)
                return -EINVAL;
        _cleanup_(qmp_json_decrefp) json_t *args = json_pack("{s:s}", "fdname", fdname);
        if (!args)
                return -ENOMEM;
        return execute(c, "getfd", args, fd, timeout, NULL);
}

/* The oldest kept event named name, taken out of the queue. */
static json_t *event_take(QmpClient *c, const char *name) {
        for (size_t i = 0; i < c->n_events; i++) {
                if (!streq_ptr(json_string_value(json_object_get(c->events[i], "event")), name))
                        continue;
                json_t *e = c->events[i];
                memmove(c->events + i, c->events + i + 1, (c->n_events - i - 1) * sizeof(json_t *));
                c->n_events--;
                return e;
        }
        return NULL;
}

int qmp_client_wait_event(QmpClient *c, const char *name, usec_t deadline, json_t **ret) {
        if (!c || !name)
                return -EINVAL;
        json_t *kept = event_take(c, name);
        for (;;) {
                if (kept) {
                        if (ret)
                                *ret = json_incref(json_object_get(kept, "data"));
                        json_decref(kept);
                        return 0;
                }
                _cleanup_(qmp_json_decrefp) json_t *msg = NULL;
                int r = read_message(c, deadline, name, &msg);
                if (r < 0)
                        return r;
                if (streq_ptr(json_string_value(json_object_get(msg, "event")), name))
                        kept = TAKE_PTR(msg);
        }
}

int qmp_client_new_from_fd(int fd, usec_t timeout, QmpClient **ret) {
        _cleanup_close_ int owned = fd;
        usec_t deadline = deadline_from_timeout(timeout);
        if (fd < 0 || !ret)
                return -EINVAL;
        _cleanup_(qmp_client_freep) QmpClient *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = TAKE_FD(owned);
        c->buf = malloc(QMP_MESSAGE_MAX);
        if (!c->buf)
                return -ENOMEM;

        _cleanup_(qmp_json_decrefp) json_t *greeting = NULL;
        int r = read_message(c, deadline, "the greeting", &greeting);
        if (r < 0)
                return r;
        if (!json_object_get(greeting, "QMP"))
                return error_setf(-EPROTO, "the QMP socket did not greet like QEMU");
        usec_t now = now_monotonic();
        r = qmp_client_execute(c, "qmp_capabilities", NULL,
                               deadline == USEC_INFINITY ? USEC_INFINITY : (now < deadline ? deadline - now : 0), NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int qmp_client_connect(const char *path, usec_t timeout, QmpClient **ret) {
        int fd = unix_connect(path, SOCK_NONBLOCK);
        if (fd < 0)
                return fd;
        return qmp_client_new_from_fd(fd, timeout, ret);
}

int qmp_execute_once(const char *path, const char *command, json_t *arguments, usec_t timeout, json_t **ret) {
        usec_t deadline = deadline_from_timeout(timeout);
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        int r = qmp_client_connect(path, timeout, &c);
        if (r < 0)
                return r;
        usec_t now = now_monotonic();
        return qmp_client_execute(c, command, arguments,
                                  deadline == USEC_INFINITY ? USEC_INFINITY : (now < deadline ? deadline - now : 0),
                                  ret);
}
