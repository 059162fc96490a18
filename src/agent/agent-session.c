/* SPDX-License-Identifier: MIT */
#include "agent-session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <termios.h>
#include <unistd.h>

#include "agent-stream.h"
#include "log.h"
#include "macro.h"

/* A frame that stops arriving half way is dropped after this long. */
#define PARTIAL_FRAME_TIMEOUT (5 * USEC_PER_SEC)
/* After acknowledging a poweroff, wait this long for the host's close. */
#define POWEROFF_GRACE (1 * USEC_PER_SEC)
/* Stop reading the transport while this much output waits: the host is not
 * reading its replies. */
#define OUT_STOP_READ (4 * SESSION_OUT_HIGH)
#define CAPABILITIES "exec pty signal resize health ports stats poweroff files identity connect resumed"

enum { SESSION_CONTINUE = 0, SESSION_CLOSE = 1 };

/* ---- output queue ---- */

static uint8_t *out_reserve(Session *s, size_t n) {
        if (s->out_off > 0 && s->out_off == s->out_len)
                s->out_off = s->out_len = 0;
        if (s->out_len + n > s->out_cap && s->out_off > 0) {
                memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
                s->out_len -= s->out_off;
                s->out_off = 0;
        }
        if (s->out_len + n > s->out_cap) {
                size_t cap = MAX(s->out_cap * 2, s->out_len + n);
                uint8_t *p = realloc(s->out, cap);
                if (!p) {
                        s->out_failed = true;
                        return NULL;
                }
                s->out = p;
                s->out_cap = cap;
        }
        return s->out + s->out_len;
}

void session_send(Session *s, const AgentStreamFrame *f) {
        size_t n = agent_stream_frame_size(f);
        uint8_t *p = out_reserve(s, n);
        if (p)
                s->out_len += agent_stream_frame_encode(f, p);
}

uint8_t *session_data_begin(Session *s, uint32_t id, uint8_t channel, size_t max) {
        AgentStreamFrame f = { .type = AGENT_MSG_DATA, .id = id, .channel = channel };
        size_t hdr = agent_stream_frame_size(&f);
        uint8_t *p = out_reserve(s, hdr + max);
        if (!p)
                return NULL;
        agent_stream_frame_encode(&f, p);
        return p + hdr;
}

void session_commit_data(Session *s, size_t len) {
        AgentStreamFrame f = { .type = AGENT_MSG_DATA, .id = 1 };
        size_t hdr = agent_stream_frame_size(&f);
        /* The header written by session_data_begin() sits at out_len. */
        agent_put_u32(s->out + s->out_len + 1, (uint32_t) (hdr - AGENT_FRAME_HEADER_SIZE + len));
        s->out_len += hdr + len;
}

void session_error(Session *s, int err, const char *fmt, ...) {
        char text[AGENT_ERROR_MAX_TEXT];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        log_debug("error to host: %s", text);
        uint8_t *p = out_reserve(s, AGENT_FRAME_HEADER_SIZE + 4 + sizeof(text));
        if (p)
                s->out_len += agent_error_encode(p, AGENT_FRAME_HEADER_SIZE + 4 + sizeof(text), err, text);
}

static void flush_out(Session *s) {
        while (s->out_off < s->out_len && !s->peer_gone) {
                ssize_t n = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        s->peer_gone = true; /* EPIPE, or EIO from a tty whose other side closed */
                        return;
                }
                s->out_off += (size_t) n;
        }
}

/* Write everything queued, waiting up to timeout (session end, poweroff). */
static void flush_out_wait(Session *s, usec_t timeout) {
        usec_t deadline = now_monotonic() + timeout;
        for (flush_out(s); s->out_off < s->out_len && !s->peer_gone; flush_out(s)) {
                usec_t now = now_monotonic();
                struct pollfd p = { .fd = s->fd, .events = POLLOUT };
                if (now >= deadline || poll(&p, 1, (int) ((deadline - now) / USEC_PER_MSEC) + 1) <= 0)
                        return;
        }
}

/* ---- hello and connection-level frames ---- */

static int handle_hello(Session *s, const AgentFrame *f) {
        AgentHello h;
        if (agent_hello_parse(f->payload, f->len, &h) < 0 || h.version == 0) {
                session_error(s, EBADMSG, "malformed hello");
                return SESSION_CLOSE;
        }
        /* A hello starts over: on a stream it is how a new host session begins. */
        stream_close_all(s);
        if (h.version < AGENT_PROTOCOL_VERSION) {
                session_error(s, EPROTONOSUPPORT,
                              "this guest agent speaks protocol %u and the host only %u: upgrade banger on the host",
                              AGENT_PROTOCOL_VERSION, h.version);
                return SESSION_CLOSE;
        }
        s->hello_done = true;
        AgentHello reply = { .version = AGENT_PROTOCOL_VERSION,
                             .nonce = h.nonce,
                             .max_frame = AGENT_FRAME_MAX,
                             .window = AGENT_WINDOW_DEFAULT,
                             .max_streams = AGENT_MAX_STREAMS };
        snprintf(reply.caps, sizeof(reply.caps), "%s", CAPABILITIES);
        uint8_t *p = out_reserve(s, 512);
        if (p)
                s->out_len += agent_hello_reply_encode(&reply, p, 512);
        return SESSION_CONTINUE;
}

/* An unsolicited hello (nonce 0) tells a host already attached to a stream
 * transport that this is a new agent: its streams are gone. */
static void announce(Session *s) {
        AgentHello h = { .version = AGENT_PROTOCOL_VERSION,
                         .max_frame = AGENT_FRAME_MAX,
                         .window = AGENT_WINDOW_DEFAULT,
                         .max_streams = AGENT_MAX_STREAMS };
        snprintf(h.caps, sizeof(h.caps), "%s", CAPABILITIES);
        uint8_t *p = out_reserve(s, 512);
        if (p)
                s->out_len += agent_hello_reply_encode(&h, p, 512);
}

static int dispatch(Session *s, const AgentFrame *f) {
        if (f->type == AGENT_MSG_HELLO)
                return handle_hello(s, f);
        if (!s->hello_done) {
                session_error(s, EPROTO, "expected hello, got message type 0x%02x", f->type);
                return SESSION_CLOSE;
        }
        if (f->type == AGENT_MSG_ERROR) {
                log_debug("host reported an error");
                return SESSION_CONTINUE;
        }
        if (!agent_msg_is_stream(f->type)) {
                session_error(s, EBADMSG, "unexpected message type 0x%02x", f->type);
                return SESSION_CONTINUE;
        }
        AgentStreamFrame sf;
        if (agent_stream_frame_parse(f, &sf) < 0) {
                session_error(s, EBADMSG, "malformed %s frame", agent_msg_to_string(f->type));
                return SESSION_CONTINUE;
        }
        stream_frame(s, &sf);
        return SESSION_CONTINUE;
}

/* Handle a framing error: a connection is closed, a stream resynchronises. */
static int framing_error(Session *s, int err, const char *what) {
        session_error(s, err, "%s", what);
        stream_close_all(s);
        if (!s->opt.stream)
                return SESSION_CLOSE;
        s->resync = true;
        s->hello_done = false;
        return SESSION_CONTINUE;
}

static size_t process_frames(Session *s, int *ret) {
        size_t off = 0;
        int r = SESSION_CONTINUE;
        while (r == SESSION_CONTINUE && !s->peer_gone && !s->input_done) {
                if (s->resync) {
                        off += agent_stream_find_hello(s->in + off, s->in_len - off);
                        if (s->in_len - off < AGENT_HELLO_SYNC_SIZE)
                                break;
                        s->resync = false;
                }
                AgentFrame f;
                long n = agent_frame_parse(s->in + off, s->in_len - off, &f);
                if (n == 0)
                        break;
                if (n < 0 || (s->opt.stream && !s->hello_done && f.type != AGENT_MSG_HELLO)) {
                        r = framing_error(s, n < 0 ? EMSGSIZE : EPROTO,
                                          n < 0 ? "frame exceeds the size limit" : "expected hello");
                        off++; /* a stream skips past the bad header while resynchronising */
                        continue;
                }
                r = dispatch(s, &f);
                if (r == SESSION_CLOSE && s->opt.stream && !s->peer_gone)
                        r = framing_error(s, EBADMSG, "session reset");
                off += (size_t) n;
        }
        *ret = r;
        return off;
}

static int process_input(Session *s) {
        int r;
        size_t off = process_frames(s, &r);
        memmove(s->in, s->in + off, s->in_len - off);
        s->in_len -= off;
        /* The clock runs from the start of a frame, not from the last byte:
         * a trickle (a new host repeating its hello) must not keep a broken
         * frame alive. */
        if (s->in_len == 0)
                s->partial_since = 0;
        else if (off > 0 || s->partial_since == 0)
                s->partial_since = now_monotonic();
        return r;
}

static int read_input(Session *s) {
        size_t cap = AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX;
        ssize_t n = read(s->fd, s->in + s->in_len, cap - s->in_len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return SESSION_CONTINUE;
        if (n <= 0) {
                /* EOF, or EIO from a tty whose other side closed. */
                if (s->in_len > 0 && !s->resync && n == 0 && !s->opt.stream)
                        session_error(s, EBADMSG, "truncated frame: connection closed after %zu bytes", s->in_len);
                s->input_done = true;
                return SESSION_CLOSE;
        }
        s->in_len += (size_t) n;
        return process_input(s);
}

/* ---- timers: partial frames, poweroff ---- */

static int poll_timeout_ms(const Session *s) {
        usec_t now = now_monotonic(), end = USEC_INFINITY;
        if (s->in_len > 0 && !s->resync)
                end = s->partial_since + PARTIAL_FRAME_TIMEOUT;
        if (s->poweroff_at)
                end = MIN(end, s->poweroff_at);
        if (end == USEC_INFINITY)
                return -1;
        return now >= end ? 0 : (int) ((end - now) / USEC_PER_MSEC) + 1;
}

static int check_stall(Session *s) {
        if (s->in_len == 0 || s->resync || now_monotonic() < s->partial_since + PARTIAL_FRAME_TIMEOUT)
                return SESSION_CONTINUE;
        s->in_len = 0;
        s->partial_since = 0;
        return framing_error(s, ETIMEDOUT, "incomplete frame timed out");
}

static void maybe_poweroff(Session *s) {
        if (!s->poweroff_at || now_monotonic() < s->poweroff_at)
                return;
        flush_out_wait(s, POWEROFF_GRACE);
        stream_close_all(s);
        sync();
        log_info("powering off");
        if (reboot(RB_POWER_OFF) < 0)
                log_error_errno(errno, "reboot(RB_POWER_OFF) failed: %m");
        s->poweroff_at = 0;
}

/* ---- the loop ---- */

#define POLL_MAX (1 + 4 * AGENT_MAX_STREAMS)

static int session_step(Session *s) {
        static struct pollfd p[POLL_MAX];
        size_t n = 1 + stream_poll_count(s);
        size_t backlog = session_backlog(s);
        p[0] = (struct pollfd){ .fd = s->fd,
                                .events = (short) ((backlog < OUT_STOP_READ ? POLLIN : 0) | (backlog ? POLLOUT : 0)) };
        stream_poll_fill(s, p + 1);
        if (poll(p, n, poll_timeout_ms(s)) < 0)
                return errno == EINTR ? SESSION_CONTINUE : -errno;
        if (p[0].revents & POLLOUT)
                flush_out(s);
        /* Streams first: input may open or end streams and shift the set. */
        stream_poll_handle(s, p + 1);
        int r = SESSION_CONTINUE;
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
                r = read_input(s);
        stream_pump(s);
        flush_out(s);
        if (s->out_failed || s->peer_gone || s->input_done)
                return SESSION_CLOSE;
        if (r != SESSION_CONTINUE)
                return r;
        maybe_poweroff(s);
        return check_stall(s);
}

int agent_session_run(int fd, const SessionOptions *o) {
        Session s = { .fd = fd, .opt = *o };
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return -errno;
        s.in = malloc(AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX);
        if (!s.in)
                return -ENOMEM;
        if (o->stream)
                announce(&s);
        int r;
        do
                r = session_step(&s);
        while (r == SESSION_CONTINUE);
        /* Say why we end, when there is still someone to tell. */
        flush_out_wait(&s, USEC_PER_SEC);
        stream_close_all(&s);
        free(s.in);
        free(s.out);
        return r < 0 ? r : 0;
}

/* virtio-serial reports "host not connected" as POLLHUP (and read() = 0)
 * with no event for the reconnect, so poll for it at a modest rate. This
 * only runs while no host is attached: the daemon keeps its connection for
 * the VM's lifetime, so no command waits on it. */
static void wait_for_host(int fd) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 0) >= 0 && !(p.revents & (POLLHUP | POLLERR)))
                        return;
                (void) poll(NULL, 0, 250);
        }
}

int agent_stream_serve(int fd, const SessionOptions *o) {
        struct termios t;
        if (tcgetattr(fd, &t) == 0) { /* a tty transport: bytes must pass untouched */
                cfmakeraw(&t);
                (void) tcsetattr(fd, TCSANOW, &t);
        }
        for (;;) {
                wait_for_host(fd);
                log_debug("stream transport: host connected");
                int r = agent_session_run(fd, o);
                if (r == -ENOMEM)
                        return r;
        }
}
