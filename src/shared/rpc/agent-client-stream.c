/* SPDX-License-Identifier: MIT */
/* Running one stream: OPEN, data both ways within the credit windows, the
 * exit report, and the CLOSE handshake that frees the stream id. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "agent-client-internal.h"
#include "error.h"
#include "fs-util.h"
#include "string-util.h"

/* Stop reading our input while this much waits for the transport. */
#define OUT_HIGH (2 * AGENT_DATA_CHUNK)
#define CAPTURE_MAX (1024U * 1024U)
#define KILL_GRACE (2 * USEC_PER_SEC)

typedef struct Run {
        AgentClient *c;
        const AgentStreamIo *io;
        uint32_t id;
        uint64_t credit; /* what we may still send */
        size_t unacked;  /* received and consumed, not yet returned */
        bool in_open;
        bool opened, exited, closed;
        unsigned interrupts;
        int close_errno;
        char close_text[AGENT_ERROR_MAX_TEXT + 1];
        size_t err_len;
        uint64_t sent, received;
        AgentExecResult res;
} Run;

static int queue(Run *r, AgentStreamFrame f) {
        f.id = r->id;
        return agent_client_queue(r->c, &f);
}

static int capture(Run *r, const AgentStreamFrame *f) {
        char **buf = r->io->out_capture;
        size_t *len = r->io->out_capture_len;
        if (*len + f->len > CAPTURE_MAX)
                return error_setf(-EMSGSIZE, "guest agent reply too large");
        char *n = realloc(*buf, *len + f->len + 1);
        if (!n)
                return -ENOMEM;
        memcpy(n + *len, f->data, f->len);
        *len += f->len;
        n[*len] = 0;
        *buf = n;
        return 0;
}

static int keep(AgentCapture *k, const AgentStreamFrame *f) {
        size_t n = MIN(f->len, k->max - MIN(k->len, k->max));
        if (n < f->len)
                k->truncated = true;
        if (n == 0)
                return 0;
        char *d = realloc(k->data, k->len + n + 1);
        if (!d)
                return -ENOMEM;
        memcpy(d + k->len, f->data, n);
        k->len += n;
        d[k->len] = 0;
        k->data = d;
        return 0;
}

static int on_data(Run *r, const AgentStreamFrame *f) {
        const AgentStreamIo *io = r->io;
        int r2 = 0;
        if (f->channel == AGENT_CHANNEL_STDOUT && io->out_fd >= 0) {
                /* A closed stdout must not end a command; a copy's sink must work. */
                int w = loop_write(io->out_fd, f->data, f->len);
                if (w < 0 && io->sink_required)
                        return error_setf(w, "writing the received data: %s", strerror(-w));
        } else if (f->channel == AGENT_CHANNEL_STDOUT && io->out_keep)
                r2 = keep(io->out_keep, f);
        else if (f->channel == AGENT_CHANNEL_STDOUT && io->out_capture)
                r2 = capture(r, f);
        else if (f->channel == AGENT_CHANNEL_STDERR && io->err_fd >= 0)
                (void) loop_write(io->err_fd, f->data, f->len);
        else if (f->channel == AGENT_CHANNEL_STDERR && io->err_keep)
                r2 = keep(io->err_keep, f);
        else if (f->channel == AGENT_CHANNEL_STDERR && io->err_capture && r->err_len + 1 < io->err_capture_size) {
                size_t n = MIN(f->len, io->err_capture_size - 1 - r->err_len);
                memcpy(io->err_capture + r->err_len, f->data, n);
                r->err_len += n;
                io->err_capture[r->err_len] = 0;
        }
        r->received += f->len;
        if (io->progress)
                io->progress(io->userdata, r->sent, r->received);
        r->unacked += f->len;
        if (r2 >= 0 && r->unacked >= io->window / 4) {
                r2 = queue(r, (AgentStreamFrame){ .type = AGENT_MSG_WINDOW, .value = (uint32_t) r->unacked });
                r->unacked = 0;
        }
        return r2;
}

/* The guest's words: they end up in an error message, a log line, a
 * terminal. Cut on a character boundary, then cleaned (valid UTF-8, no
 * control characters). */
static void set_close_text(Run *r, const AgentStreamFrame *s) {
        size_t n = utf8_truncate_len((const char *) s->data, s->len, sizeof(r->close_text) - 1);
        memcpy(r->close_text, s->data, n);
        r->close_text[n] = 0;
        string_make_printable(r->close_text, false);
}

static int on_frame(Run *r, const AgentFrame *f) {
        if (f->type == AGENT_MSG_ERROR)
                return agent_client_error_frame(f);
        AgentStreamFrame s;
        if (!agent_msg_is_stream(f->type))
                return 0; /* a stray hello answer */
        if (agent_stream_frame_parse(f, &s) < 0)
                return error_setf(-EBADMSG, "guest agent sent a malformed %s frame", agent_msg_to_string(f->type));
        if (s.id != r->id)
                return 0;
        switch (s.type) {
        case AGENT_MSG_OPENED:
                r->opened = true;
                r->res.pid = (pid_t) s.value;
                return 0;
        case AGENT_MSG_DATA:
                return on_data(r, &s);
        case AGENT_MSG_WINDOW:
                r->credit += s.value;
                return 0;
        case AGENT_MSG_EXIT:
                r->exited = true;
                r->res.kind = s.exit_kind;
                r->res.code = (int) s.value;
                return 0;
        case AGENT_MSG_CLOSE:
                r->closed = true;
                r->close_errno = (int) s.value;
                set_close_text(r, &s);
                return 0;
        default:
                return error_setf(-EBADMSG, "guest agent sent an unexpected %s frame", agent_msg_to_string(s.type));
        }
}

static int read_input(Run *r) {
        static uint8_t buf[AGENT_DATA_CHUNK];
        size_t max = (size_t) MIN(r->credit, (uint64_t) sizeof(buf));
        ssize_t n = read(r->io->in_fd, buf, max);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return 0;
        if (n > 0) {
                r->credit -= (uint64_t) n;
                r->sent += (uint64_t) n;
                if (r->io->progress)
                        r->io->progress(r->io->userdata, r->sent, r->received);
                return queue(r, (AgentStreamFrame){ .type = AGENT_MSG_DATA,
                                                    .channel = AGENT_CHANNEL_STDIN,
                                                    .data = buf,
                                                    .len = (size_t) n });
        }
        r->in_open = false; /* EOF or an unreadable input: either way no more */
        return r->io->send_eof ? queue(r, (AgentStreamFrame){ .type = AGENT_MSG_EOF, .channel = AGENT_CHANNEL_STDIN })
                               : 0;
}

/* Input that is there already (an empty or redirected stdin: its EOF, a
 * first block of data) goes out in one write with the OPEN: on a
 * virtio-serial transport each write the guest receives costs it an
 * interrupt and a turn of the agent's loop, a millisecond under software
 * emulation. */
static int read_input_ready(Run *r) {
        struct pollfd p = { .fd = r->io->in_fd, .events = POLLIN };
        if (r->credit == 0 || poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
                return 0;
        return read_input(r);
}

static int on_signal(Run *r) {
        struct signalfd_siginfo si;
        if (read(r->io->signal_fd, &si, sizeof(si)) != (ssize_t) sizeof(si))
                return 0;
        if (si.ssi_signo == SIGWINCH) {
                struct winsize ws;
                if (!r->io->pty || r->io->tty_fd < 0 || ioctl(r->io->tty_fd, TIOCGWINSZ, &ws) < 0 || !ws.ws_row ||
                    !ws.ws_col)
                        return 0;
                return queue(r, (AgentStreamFrame){ .type = AGENT_MSG_RESIZE, .rows = ws.ws_row, .cols = ws.ws_col });
        }
        if (si.ssi_signo == SIGINT && ++r->interrupts >= 3)
                return error_setf(-ECANCELED, "interrupted three times: giving up on the command");
        return queue(r, (AgentStreamFrame){ .type = AGENT_MSG_SIGNAL, .value = si.ssi_signo });
}

/* Handle what arrived: frames in the buffer, then poll events. */
static int step(Run *r, usec_t deadline) {
        AgentClient *c = r->c;
        AgentFrame f;
        int q = 0;
        while (!r->closed && (q = agent_client_take_frame(c, &f)) > 0)
                if ((q = on_frame(r, &f)) < 0)
                        return q;
        if (r->closed || (q = agent_client_flush(c)) < 0)
                return q;
        bool want_in = r->in_open && r->credit > 0 && c->out_len - c->out_off < OUT_HIGH;
        struct pollfd p[3] = {
                { .fd = c->fd, .events = POLLIN | (c->out_off < c->out_len ? POLLOUT : 0) },
                { .fd = want_in ? r->io->in_fd : -1, .events = POLLIN },
                { .fd = r->io->signal_fd, .events = POLLIN },
        };
        int n = poll(p, 3, deadline_poll_ms(deadline));
        if (n < 0 && errno != EINTR)
                return -errno;
        if (n == 0 && deadline != USEC_INFINITY && now_monotonic() >= deadline)
                return -ETIMEDOUT;
        if (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) && (q = agent_client_fill(c)) < 0)
                return q;
        if (n > 0 && p[1].revents && (q = read_input(r)) < 0)
                return q;
        if (n > 0 && p[2].revents && (q = on_signal(r)) < 0)
                return q;
        return 0;
}

/* Give up on the stream: our CLOSE (the agent kills what runs), then wait
 * briefly for the agent's, so the connection can carry on. */
static void abandon(Run *r) {
        usec_t deadline = now_monotonic() + KILL_GRACE;
        if (queue(r, (AgentStreamFrame){ .type = AGENT_MSG_CLOSE }) < 0)
                return;
        while (!r->closed && now_monotonic() < deadline && step(r, deadline) >= 0)
                ;
}

static int finish(Run *r) {
        /* The agent's CLOSE came: ours frees the id on both sides. */
        int q = queue(r, (AgentStreamFrame){ .type = AGENT_MSG_CLOSE });
        if (q >= 0)
                q = agent_client_drain(r->c, now_monotonic() + USEC_PER_SEC);
        if (q < 0)
                return q;
        if (r->close_errno != 0 && !r->exited)
                return error_setf(-r->close_errno, "%s", r->close_text[0] ? r->close_text : strerror(r->close_errno));
        return 0;
}

int agent_client_run(AgentClient *c, uint8_t kind, const uint8_t *req, size_t req_len, const AgentStreamIo *io,
                     usec_t deadline, AgentExecResult *ret) {
        if (!c->hello_done)
                return -ENOTCONN;
        Run r = { .c = c, .io = io, .id = c->next_id, .credit = c->info.window, .in_open = io->in_fd >= 0 };
        c->next_id = c->next_id >= 0x7ffffffdU ? 1 : c->next_id + 2; /* odd: opened by the host */
        int q = queue(&r,
                      (AgentStreamFrame){
                              .type = AGENT_MSG_OPEN, .kind = kind, .value = io->window, .data = req, .len = req_len });
        if (q >= 0 && !r.in_open && io->send_eof)
                q = queue(&r, (AgentStreamFrame){ .type = AGENT_MSG_EOF, .channel = AGENT_CHANNEL_STDIN });
        if (q >= 0 && r.in_open)
                q = read_input_ready(&r);
        while (q >= 0 && !r.closed)
                q = step(&r, deadline);
        if (q == -ETIMEDOUT || q == -ECANCELED) {
                abandon(&r);
                return q == -ETIMEDOUT ? error_setf(q, "timed out; the guest side was stopped") : q;
        }
        if (q < 0)
                return q;
        q = finish(&r);
        if (q >= 0 && ret)
                *ret = r.res;
        return q;
}

int agent_client_exec(AgentClient *c, const AgentExecOptions *o, usec_t timeout, AgentExecResult *ret) {
        if (!o->argv || !o->argv[0])
                return -EINVAL;
        AgentExecSpec spec = { .flags = o->pty ? AGENT_EXEC_FLAG_PTY : 0,
                               .rows = (uint16_t) MIN(o->rows, 65535U),
                               .cols = (uint16_t) MIN(o->cols, 65535U),
                               .cwd = o->cwd,
                               .argv = (char **) o->argv,
                               .env = (char **) o->env };
        _cleanup_free_ uint8_t *req = NULL;
        size_t len;
        int r = agent_exec_spec_encode(&spec, &req, &len);
        if (r < 0)
                return error_setf(r, "command line too large for the guest agent");
        AgentStreamIo io = { .in_fd = o->stdin_fd,
                             .out_fd = o->stdout_fd,
                             .err_fd = o->stderr_fd,
                             .window = AGENT_WINDOW_DEFAULT,
                             .pty = o->pty,
                             .signal_fd =
                                     o->signal_fd > 0 ? o->signal_fd : -1, /* 0 (a zeroed field) is not a signalfd */
                             .tty_fd = o->tty_fd,
                             .out_keep = o->stdout_fd < 0 ? o->stdout_capture : NULL,
                             .err_keep = o->stderr_fd < 0 ? o->stderr_capture : NULL,
                             .send_eof = true };
        AgentExecResult res = {};
        r = agent_client_run(c, AGENT_STREAM_EXEC, req, len, &io, deadline_from_timeout(timeout), &res);
        if (r < 0)
                return r;
        *ret = res;
        return 0;
}

int agent_client_files(AgentClient *c, const AgentFilesOptions *o, usec_t timeout) {
        AgentFilesSpec spec = { .flags = o->flags, .path = o->path };
        _cleanup_free_ uint8_t *req = NULL;
        size_t len;
        int r = agent_files_spec_encode(&spec, &req, &len);
        if (r < 0)
                return error_setf(r, "invalid guest path %s", o->path);
        bool put = o->kind == AGENT_STREAM_FILES_PUT;
        char why[1024] = "";
        /* Large windows: a copy is throughput-bound. */
        AgentStreamIo io = { .in_fd = put ? o->data_fd : -EBADF,
                             .out_fd = put ? -EBADF : o->data_fd,
                             .err_fd = -EBADF,
                             .err_capture = why,
                             .err_capture_size = sizeof(why),
                             .window = 4 * AGENT_WINDOW_DEFAULT,
                             .signal_fd = -EBADF,
                             .tty_fd = -EBADF,
                             .send_eof = true,
                             .progress = o->progress,
                             .userdata = o->userdata };
        AgentExecResult res = {};
        r = agent_client_run(c, o->kind, req, len, &io, deadline_from_timeout(timeout), &res);
        if (r < 0)
                return r;
        if (res.kind != AGENT_EXIT_CODE || res.code != 0) {
                why[strcspn(why, "\n")] = 0;
                string_make_printable(why, false); /* the guest's stderr */
                return error_setf(-EIO, "%s", why[0] ? why : "the copy failed in the guest");
        }
        return 0;
}
