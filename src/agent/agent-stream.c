/* SPDX-License-Identifier: MIT */
#include "agent-stream.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent-connect.h"
#include "agent-exec.h"
#include "agent-files.h"
#include "agent-identity.h"
#include "agent-info.h"
#include "log.h"
#include "macro.h"

/* Return consumed input credit once this much has piled up (or the queue
 * ran empty), so that a stream of small writes costs few WINDOW frames. */
#define WINDOW_UPDATE_MIN (AGENT_WINDOW_DEFAULT / 4)
#define POWEROFF_GRACE (1 * USEC_PER_SEC)

struct Stream {
        Stream *next;
        uint32_t id;
        uint8_t kind;
        bool pty;
        bool dead; /* our CLOSE is queued: freed by the next pump */
        AgentChild child;
        bool process; /* a process was started: report its exit */
        bool running; /* a process that is not yet reaped */
        int status;
        bool out_done[3]; /* [STDOUT], [STDERR]: nothing more will be read */
        uint8_t *inq;     /* host input waiting for the process */
        size_t inq_len;
        size_t in_avail;   /* credit the host still has */
        size_t in_unacked; /* consumed, not yet returned with WINDOW */
        bool stdin_eof;
        uint64_t out_credit;
        char *reply; /* a query's answer, sent as credit allows */
        size_t reply_len, reply_off;
        /* connect: the socket is stdout_fd (read) and a duplicate in
         * stdin_fd (written, shut down at the host's EOF) */
        bool socket, connecting, eof_sent;
        uint16_t port;
};

static Stream *stream_find(Session *s, uint32_t id) {
        for (Stream *st = s->streams; st; st = st->next)
                if (st->id == id && !st->dead)
                        return st;
        return NULL;
}

static void send_close(Session *s, uint32_t id, int err, const char *fmt, ...) _printf_(4, 5);
static void send_close(Session *s, uint32_t id, int err, const char *fmt, ...) {
        char text[AGENT_ERROR_MAX_TEXT] = "";
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(text, sizeof(text), fmt, ap);
                va_end(ap);
        }
        AgentStreamFrame f = { .type = AGENT_MSG_CLOSE,
                               .id = id,
                               .value = (uint32_t) (err < 0 ? -err : err),
                               .data = (const uint8_t *) text,
                               .len = strlen(text) };
        session_send(s, &f);
}

/* End a stream: kill what runs, queue our CLOSE, free it on the next pump. */
static void stream_finish(Session *s, Stream *st, int err, const char *text) {
        if (st->dead)
                return;
        log_debug("stream %u: ends (%s)", st->id, err ? strerror(err < 0 ? -err : err) : "done");
        if (st->running || st->child.pid > 0)
                agent_child_kill(&st->child);
        agent_child_done(&st->child);
        st->running = false;
        send_close(s, st->id, err, "%s", text ? text : "");
        st->dead = true;
}

static void stream_free(Stream *st) {
        if (st->child.pid > 0)
                agent_child_kill(&st->child);
        agent_child_done(&st->child);
        free(st->inq);
        free(st->reply);
        free(st);
}

void stream_close_all(Session *s) {
        while (s->streams) {
                Stream *st = s->streams;
                s->streams = st->next;
                stream_free(st);
        }
        s->n_streams = 0;
        s->poweroff_stream = 0;
}

/* ---- opening ---- */

static void send_opened(Session *s, Stream *st, pid_t pid) {
        session_send(s, &(AgentStreamFrame){ .type = AGENT_MSG_OPENED, .id = st->id, .value = (uint32_t) pid });
}

static int open_exec(Session *s, Stream *st, const AgentStreamFrame *f) {
        AgentExecSpec spec = {};
        int r = agent_exec_spec_parse(f->data, f->len, &spec);
        if (r < 0) {
                stream_finish(s, st, r, "malformed exec request");
                return r;
        }
        r = agent_exec_spawn(&spec, &st->child);
        if (r < 0) {
                char text[256];
                snprintf(text, sizeof(text), "%s: %s", spec.argv[0], strerror(-r));
                stream_finish(s, st, r, text);
        } else {
                log_debug("stream %u: exec %s: pid %d", st->id, spec.argv[0], (int) st->child.pid);
                st->pty = spec.flags & AGENT_EXEC_FLAG_PTY;
                st->running = st->process = true;
                send_opened(s, st, st->child.pid);
        }
        agent_exec_spec_done(&spec);
        return r;
}

static void open_files(Session *s, Stream *st, const AgentStreamFrame *f) {
        AgentFilesSpec spec;
        int r = agent_files_spec_parse(f->data, f->len, &spec);
        if (r < 0) {
                stream_finish(s, st, r, "malformed file transfer request");
                return;
        }
        /* The child gets a copy of our memory: spec may point into the frame.
         * A copy is bulk work: at nice 10 it yields the CPU to the guest's
         * commands. */
        r = agent_builtin_spawn(st->kind == AGENT_STREAM_FILES_PUT ? agent_files_put : agent_files_get, &spec, 10,
                                &st->child);
        if (r < 0) {
                stream_finish(s, st, r, "cannot start the file transfer");
                return;
        }
        st->running = st->process = true;
        send_opened(s, st, st->child.pid);
}

static void open_query(Session *s, Stream *st) {
        size_t len = 0;
        int r = st->kind == AGENT_STREAM_HEALTH  ? agent_health_json(&st->reply, &len)
                : st->kind == AGENT_STREAM_STATS ? agent_stats_json(&st->reply, &len)
                                                 : agent_ports_json(s->opt.proc_root, &st->reply, &len);
        if (r < 0) {
                stream_finish(s, st, r, strerror(-r));
                return;
        }
        st->reply_len = len;
        st->out_done[AGENT_CHANNEL_STDOUT] = st->out_done[AGENT_CHANNEL_STDERR] = true;
        send_opened(s, st, 0);
}

static void open_identity(Session *s, Stream *st, const AgentStreamFrame *f) {
        if (f->len == 0 || f->len > AGENT_IDENTITY_MAX) {
                stream_finish(s, st, EINVAL, "malformed identity request");
                return;
        }
        AgentIdentityJob job = { .root = s->opt.root ? s->opt.root : "/",
                                 .guest = s->opt.guest,
                                 .received_ns = now_monotonic() * 1000ULL };
        memcpy(job.text, f->data, f->len);
        /* A child of its own, like a file transfer: the loop keeps serving. */
        int r = agent_builtin_spawn(agent_identity_builtin, &job, 0, &st->child);
        if (r < 0) {
                stream_finish(s, st, r, "cannot start the identity change");
                return;
        }
        st->running = st->process = true;
        send_opened(s, st, st->child.pid);
}

static void connect_failed(Session *s, Stream *st, int r) {
        char text[128];
        snprintf(text, sizeof(text), "127.0.0.1:%u in the guest: %s", st->port, strerror(-r));
        stream_finish(s, st, r, text);
}

static void open_connect(Session *s, Stream *st, const AgentStreamFrame *f) {
        AgentConnectSpec spec;
        if (agent_connect_spec_parse(f->data, f->len, &spec) < 0) {
                stream_finish(s, st, EBADMSG, "malformed connect request");
                return;
        }
        st->socket = true;
        st->port = spec.port;
        int fd = agent_connect_open(spec.port, &st->connecting);
        if (fd >= 0) {
                st->child.stdout_fd = fd;
                st->child.stdin_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (st->child.stdin_fd < 0)
                        fd = -errno;
        }
        if (fd < 0) {
                connect_failed(s, st, fd);
                return;
        }
        if (!st->connecting)
                send_opened(s, st, 0);
}

/* The connection in progress completed (or failed). */
static void connect_done(Session *s, Stream *st) {
        int r = agent_connect_finish(st->child.stdout_fd);
        if (r == -EINPROGRESS || r == -EALREADY)
                return;
        st->connecting = false;
        if (r < 0) {
                connect_failed(s, st, r);
                return;
        }
        log_debug("stream %u: connected to port %u", st->id, st->port);
        send_opened(s, st, 0);
}

static void open_poweroff(Session *s, Stream *st) {
        if (!s->opt.allow_poweroff) {
                stream_finish(s, st, EPERM,
                              "poweroff is disabled: --listen-unix mode and not PID 1 of a PID namespace");
                return;
        }
        log_info("poweroff requested by the host");
        sync();
        send_opened(s, st, 0);
        stream_finish(s, st, 0, NULL);
        s->poweroff_at = now_monotonic() + POWEROFF_GRACE;
        s->poweroff_stream = st->id;
}

static void stream_open(Session *s, const AgentStreamFrame *f) {
        if (stream_find(s, f->id)) {
                session_error(s, EEXIST, "stream %u is already open", f->id);
                return;
        }
        if (s->n_streams >= AGENT_MAX_STREAMS) {
                send_close(s, f->id, EMFILE, "too many streams (at most %u)", AGENT_MAX_STREAMS);
                return;
        }
        Stream *st = calloc(1, sizeof(*st));
        if (!st) {
                send_close(s, f->id, ENOMEM, "out of memory");
                return;
        }
        *st = (Stream){ .next = s->streams,
                        .id = f->id,
                        .kind = f->kind,
                        .child = AGENT_CHILD_NULL,
                        .in_avail = AGENT_WINDOW_DEFAULT,
                        .out_credit = f->value };
        s->streams = st;
        s->n_streams++;
        switch (f->kind) {
        case AGENT_STREAM_EXEC:
                (void) open_exec(s, st, f);
                break;
        case AGENT_STREAM_HEALTH:
        case AGENT_STREAM_PORTS:
        case AGENT_STREAM_STATS:
                open_query(s, st);
                break;
        case AGENT_STREAM_POWEROFF:
                open_poweroff(s, st);
                break;
        case AGENT_STREAM_FILES_PUT:
        case AGENT_STREAM_FILES_GET:
                open_files(s, st, f);
                break;
        case AGENT_STREAM_IDENTITY:
                open_identity(s, st, f);
                break;
        case AGENT_STREAM_CONNECT:
                open_connect(s, st, f);
                break;
        default:
                stream_finish(s, st, EOPNOTSUPP, "unknown stream kind");
                break;
        }
}

/* ---- frames from the host ---- */

static void stream_input(Session *s, Stream *st, const AgentStreamFrame *f) {
        if (f->channel != AGENT_CHANNEL_STDIN || f->len > st->in_avail) {
                stream_finish(s, st, EPROTO, f->len > st->in_avail ? "flow control window exceeded" : "bad channel");
                return;
        }
        st->in_avail -= f->len;
        /* Input for a process that is gone (or whose stdin is closed) is dropped. */
        if (st->child.stdin_fd < 0 || st->stdin_eof) {
                st->in_unacked += f->len;
                return;
        }
        if (!st->inq && !(st->inq = malloc(AGENT_WINDOW_DEFAULT))) {
                stream_finish(s, st, ENOMEM, "out of memory");
                return;
        }
        memcpy(st->inq + st->inq_len, f->data, f->len);
        st->inq_len += f->len;
}

static void stream_window(Session *s, Stream *st, uint32_t inc) {
        st->out_credit += inc;
        if (st->out_credit > AGENT_WINDOW_MAX)
                stream_finish(s, st, EPROTO, "window grown past its limit");
}

static void stream_resize(Stream *st, uint16_t rows, uint16_t cols) {
        struct winsize ws = { .ws_row = rows, .ws_col = cols };
        if (st->pty && st->child.stdout_fd >= 0)
                (void) ioctl(st->child.stdout_fd, TIOCSWINSZ, &ws);
}

void stream_frame(Session *s, const AgentStreamFrame *f) {
        if (f->type == AGENT_MSG_OPEN) {
                stream_open(s, f);
                return;
        }
        if (f->type == AGENT_MSG_CLOSE && f->id == s->poweroff_stream && s->poweroff_at)
                s->poweroff_at = now_monotonic(); /* the host has our answer: no need to wait */
        Stream *st = stream_find(s, f->id);
        if (!st)
                return; /* a frame in flight for a stream that just ended */
        switch (f->type) {
        case AGENT_MSG_DATA:
                stream_input(s, st, f);
                break;
        case AGENT_MSG_EOF:
                st->stdin_eof = true;
                break;
        case AGENT_MSG_WINDOW:
                stream_window(s, st, f->value);
                break;
        case AGENT_MSG_SIGNAL:
                if (st->running)
                        (void) agent_child_signal(&st->child, (int) f->value);
                break;
        case AGENT_MSG_RESIZE:
                stream_resize(st, f->rows, f->cols);
                break;
        case AGENT_MSG_CLOSE:
                stream_finish(s, st, 0, NULL);
                break;
        default:
                session_error(s, EBADMSG, "%s is not a host frame", agent_msg_to_string(f->type));
                break;
        }
}

/* ---- moving data ---- */

static void read_output(Session *s, Stream *st, uint8_t ch) {
        int *fd = ch == AGENT_CHANNEL_STDOUT ? &st->child.stdout_fd : &st->child.stderr_fd;
        size_t max = (size_t) MIN(st->out_credit, (uint64_t) AGENT_DATA_CHUNK);
        if (*fd < 0) {
                st->out_done[ch] = true;
                return;
        }
        if (max == 0 || session_backlog(s) >= SESSION_OUT_HIGH)
                return;
        uint8_t *p = session_data_begin(s, st->id, ch, max);
        if (!p)
                return;
        ssize_t n = read(*fd, p, max);
        if (n > 0) {
                session_commit_data(s, (size_t) n);
                st->out_credit -= (uint64_t) n;
                return;
        }
        if (n < 0 && errno == EINTR)
                return;
        if (n < 0 && errno != EAGAIN && st->socket) {
                int err = errno;
                stream_finish(s, st, err, strerror(err)); /* ECONNRESET: not an end of data */
                return;
        }
        if (n < 0 && errno == EAGAIN) {
                /* After the exit everything it wrote is in the pipe: a
                 * background grandchild holding it open must not delay us. */
                if (!st->running)
                        st->out_done[ch] = true;
                return;
        }
        *fd = safe_close(*fd); /* EOF, or EIO from a PTY whose last user left */
        st->out_done[ch] = true;
}

static void flush_stdin(Stream *st) {
        if (st->connecting)
                return;
        while (st->inq_len > 0 && st->child.stdin_fd >= 0) {
                ssize_t n = write(st->child.stdin_fd, st->inq, st->inq_len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n < 0) { /* EPIPE: it stopped reading; what is queued is dropped */
                        st->child.stdin_fd = safe_close(st->child.stdin_fd);
                        n = (ssize_t) st->inq_len;
                }
                memmove(st->inq, st->inq + n, st->inq_len - (size_t) n);
                st->inq_len -= (size_t) n;
                st->in_unacked += (size_t) n;
        }
        if (st->child.stdin_fd < 0 && st->inq_len > 0) {
                st->in_unacked += st->inq_len;
                st->inq_len = 0;
        }
        if (st->inq_len == 0 && st->stdin_eof && st->child.stdin_fd >= 0) {
                /* The other duplicate keeps the socket: say FIN explicitly. */
                if (st->socket)
                        (void) shutdown(st->child.stdin_fd, SHUT_WR);
                st->child.stdin_fd = safe_close(st->child.stdin_fd);
        }
}

static void return_credit(Session *s, Stream *st) {
        if (st->in_unacked == 0 || (st->in_unacked < WINDOW_UPDATE_MIN && st->inq_len > 0))
                return;
        session_send(s,
                     &(AgentStreamFrame){ .type = AGENT_MSG_WINDOW, .id = st->id, .value = (uint32_t) st->in_unacked });
        st->in_avail += st->in_unacked;
        st->in_unacked = 0;
}

static void reap(Stream *st) {
        if (agent_child_reap(&st->child, &st->status) < 0)
                st->status = W_EXITCODE(255, 0);
        st->running = false;
        st->child.pidfd = safe_close(st->child.pidfd);
        st->child.stdin_fd = safe_close(st->child.stdin_fd);
}

size_t stream_poll_count(const Session *s) {
        return 4 * s->n_streams;
}

void stream_poll_fill(Session *s, struct pollfd *p) {
        bool can_send = session_backlog(s) < SESSION_OUT_HIGH;
        for (Stream *st = s->streams; st; st = st->next, p += 4) {
                bool credit = can_send && st->out_credit > 0 && !st->dead && !st->connecting;
                p[0] = (struct pollfd){ .fd = credit ? st->child.stdout_fd : -1, .events = POLLIN };
                p[1] = (struct pollfd){ .fd = credit ? st->child.stderr_fd : -1, .events = POLLIN };
                p[2] = (struct pollfd){ .fd = st->inq_len > 0 && !st->connecting ? st->child.stdin_fd : -1,
                                        .events = POLLOUT };
                /* A connection in progress waits here (a socket has no pidfd). */
                p[3] = (struct pollfd){ .fd = st->running      ? st->child.pidfd
                                              : st->connecting ? st->child.stdout_fd
                                                               : -1,
                                        .events = st->connecting ? POLLOUT : POLLIN };
        }
}

void stream_poll_handle(Session *s, const struct pollfd *p) {
        for (Stream *st = s->streams; st; st = st->next, p += 4) {
                if (st->dead)
                        continue;
                if (p[0].revents)
                        read_output(s, st, AGENT_CHANNEL_STDOUT);
                if (p[1].revents)
                        read_output(s, st, AGENT_CHANNEL_STDERR);
                if (p[2].revents)
                        flush_stdin(st);
                if (p[3].revents && st->connecting)
                        connect_done(s, st);
                else if (p[3].revents)
                        reap(st);
        }
}

/* ---- finishing ---- */

static void pump_reply(Session *s, Stream *st) {
        while (st->reply_off < st->reply_len && st->out_credit > 0 && session_backlog(s) < SESSION_OUT_HIGH) {
                size_t n = MIN(MIN(st->reply_len - st->reply_off, (size_t) AGENT_DATA_CHUNK), (size_t) st->out_credit);
                AgentStreamFrame f = { .type = AGENT_MSG_DATA,
                                       .id = st->id,
                                       .channel = AGENT_CHANNEL_STDOUT,
                                       .data = (const uint8_t *) st->reply + st->reply_off,
                                       .len = n };
                session_send(s, &f);
                st->reply_off += n;
                st->out_credit -= n;
        }
        if (st->reply_off == st->reply_len)
                stream_finish(s, st, 0, NULL);
}

static void pump_process(Session *s, Stream *st) {
        flush_stdin(st);
        return_credit(s, st);
        if (st->running)
                return;
        /* Exited: drain what the pipes still hold (as credit allows), then report. */
        for (uint8_t ch = AGENT_CHANNEL_STDOUT; ch <= AGENT_CHANNEL_STDERR; ch++)
                while (!st->out_done[ch] && st->out_credit > 0 && session_backlog(s) < SESSION_OUT_HIGH)
                        read_output(s, st, ch);
        if (!st->out_done[AGENT_CHANNEL_STDOUT] || !st->out_done[AGENT_CHANNEL_STDERR])
                return;
        bool sig = WIFSIGNALED(st->status);
        session_send(s,
                     &(AgentStreamFrame){ .type = AGENT_MSG_EXIT,
                                          .id = st->id,
                                          .exit_kind = sig ? AGENT_EXIT_SIGNAL : AGENT_EXIT_CODE,
                                          .value = (uint32_t) (sig ? WTERMSIG(st->status) : WEXITSTATUS(st->status)) });
        stream_finish(s, st, 0, NULL);
}

/* A connection: the guest's end of data becomes our EOF on channel 1 (the
 * host half-closes its client), and the stream is done once both
 * directions are. */
static void pump_socket(Session *s, Stream *st) {
        flush_stdin(st);
        return_credit(s, st);
        if (st->connecting)
                return;
        if (st->out_done[AGENT_CHANNEL_STDOUT] && !st->eof_sent) {
                session_send(
                        s, &(AgentStreamFrame){ .type = AGENT_MSG_EOF, .id = st->id, .channel = AGENT_CHANNEL_STDOUT });
                st->eof_sent = true;
        }
        if (st->eof_sent && st->child.stdin_fd < 0)
                stream_finish(s, st, 0, NULL);
}

void stream_pump(Session *s) {
        for (Stream **pp = &s->streams; *pp;) {
                Stream *st = *pp;
                if (!st->dead && st->reply)
                        pump_reply(s, st);
                else if (!st->dead && st->process)
                        pump_process(s, st);
                else if (!st->dead && st->socket)
                        pump_socket(s, st);
                if (st->dead) {
                        *pp = st->next;
                        s->n_streams--;
                        stream_free(st);
                        continue;
                }
                pp = &st->next;
        }
}
