/* SPDX-License-Identifier: MIT */
#include "agent-session.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent-exec.h"
#include "agent-info.h"
#include "agent-protocol.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

/* A frame that stops arriving half way is dropped after this long. */
#define PARTIAL_FRAME_TIMEOUT (5 * USEC_PER_SEC)
/* Stop reading requests while this much stdin is queued for the command. */
#define STDIN_QUEUE_HIGH (1024U * 1024U)
/* After answering poweroff, give the host this long to read the reply. */
#define POWEROFF_GRACE (1 * USEC_PER_SEC)

typedef struct Session {
        int fd;
        SessionOptions opt;
        bool hello_done;
        bool resync; /* stream only: discarding input until a hello */
        bool peer_gone;
        uint8_t *in;
        size_t in_len;
        usec_t partial_since;

        AgentChild child;
        bool child_running;
        uint8_t *q; /* stdin queued for the command */
        size_t q_len, q_cap;
        bool stdin_eof;
} Session;

typedef enum {
        SESSION_CONTINUE = 0,
        SESSION_CLOSE = 1, /* the connection cannot continue */
} SessionStep;

static int send_frame(Session *s, uint8_t type, const void *payload, size_t len) {
        uint8_t hdr[AGENT_FRAME_HEADER_SIZE];
        agent_frame_header_encode(hdr, type, (uint32_t) len);
        struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *) payload, len } };
        size_t total = sizeof(hdr) + len, done = 0;
        while (done < total) {
                ssize_t n = writev(s->fd, iov, 2);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        s->peer_gone = true;
                        return -errno;
                }
                done += (size_t) n;
                for (size_t i = 0; i < 2; i++) {
                        size_t k = MIN((size_t) n, iov[i].iov_len);
                        iov[i].iov_base = (uint8_t *) iov[i].iov_base + k;
                        iov[i].iov_len -= k;
                        n -= (ssize_t) k;
                }
        }
        return 0;
}

static _printf_(3, 4) int send_error(Session *s, int err, const char *fmt, ...) {
        uint8_t buf[4 + AGENT_ERROR_MAX_TEXT];
        agent_put_u32(buf, (uint32_t) (err < 0 ? -err : err));
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf((char *) buf + 4, AGENT_ERROR_MAX_TEXT, fmt, ap);
        va_end(ap);
        n = MAX(0, MIN(n, (int) AGENT_ERROR_MAX_TEXT - 1));
        log_debug("error reply: %s", (char *) buf + 4);
        return send_frame(s, AGENT_MSG_ERROR, buf, 4 + (size_t) n);
}

static void session_reset_exec(Session *s) {
        if (s->child_running || s->child.pidfd >= 0)
                agent_child_kill(&s->child);
        s->child_running = false;
        s->q_len = 0;
        s->stdin_eof = false;
}

static int reply_json(Session *s, uint8_t type, const AgentFrame *f) {
        if (f->len != 0)
                return send_error(s, EINVAL, "%s takes no payload", agent_msg_to_string(type));
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        int r = type == AGENT_MSG_HEALTH ? agent_health_json(&json, &len)
                : type == AGENT_MSG_STATS ? agent_stats_json(&json, &len)
                                          : agent_ports_json(s->opt.proc_root, &json, &len);
        if (r < 0)
                return send_error(s, r, "%s: %s", agent_msg_to_string(type), strerror(-r));
        return send_frame(s, type, json, len);
}

/* Wait (bounded) for the host to read our reply and hang up, then power off. */
static void do_poweroff(Session *s) {
        (void) shutdown(s->fd, SHUT_WR);
        usec_t deadline = now_monotonic() + POWEROFF_GRACE;
        for (usec_t now; (now = now_monotonic()) < deadline;) {
                struct pollfd p = { .fd = s->fd, .events = POLLIN };
                if (poll(&p, 1, (int) ((deadline - now) / USEC_PER_MSEC) + 1) <= 0)
                        break;
                uint8_t junk[512];
                ssize_t n = read(s->fd, junk, sizeof(junk));
                if (n <= 0 || (p.revents & POLLHUP))
                        break;
        }
        sync();
        if (reboot(RB_POWER_OFF) < 0)
                log_error_errno(errno, "reboot(RB_POWER_OFF) failed: %m");
}

static int handle_poweroff(Session *s, const AgentFrame *f) {
        if (f->len != 0)
                return send_error(s, EINVAL, "poweroff takes no payload");
        if (!s->opt.allow_poweroff)
                return send_error(s, EPERM, "poweroff is disabled: --listen-unix mode and not PID 1 of a PID namespace");
        log_info("poweroff requested by the host");
        sync();
        int r = send_frame(s, AGENT_MSG_OK, NULL, 0);
        do_poweroff(s);
        return r < 0 ? r : SESSION_CLOSE;
}

static int handle_exec_start(Session *s, const AgentFrame *f) {
        if (s->child_running)
                return send_error(s, EBUSY, "a command is already running in this session");
        AgentExecSpec spec = {};
        int r = agent_exec_spec_parse(f->payload, f->len, &spec);
        if (r < 0)
                return send_error(s, r, "malformed exec request: %s", strerror(-r));
        session_reset_exec(s);
        r = agent_exec_spawn(&spec, &s->child);
        if (r < 0) {
                int e = send_error(s, r, "%s: %s", spec.argv[0], strerror(-r));
                agent_exec_spec_done(&spec);
                return e;
        }
        log_debug("exec %s: pid %d", spec.argv[0], (int) s->child.pid);
        agent_exec_spec_done(&spec);
        s->child_running = true;
        uint8_t pid[4];
        agent_put_u32(pid, (uint32_t) s->child.pid);
        return send_frame(s, AGENT_MSG_EXEC_STARTED, pid, sizeof(pid));
}

static int queue_stdin(Session *s, const AgentFrame *f) {
        /* Input for a command that is gone (or whose stdin is closed) is dropped. */
        if (!s->child_running || s->child.stdin_fd < 0 || s->stdin_eof)
                return 0;
        if (s->q_len + f->len > s->q_cap) {
                size_t cap = MAX(s->q_cap * 2, s->q_len + f->len);
                uint8_t *n = realloc(s->q, cap);
                if (!n)
                        return send_error(s, ENOMEM, "out of memory queueing stdin");
                s->q = n;
                s->q_cap = cap;
        }
        memcpy(s->q + s->q_len, f->payload, f->len);
        s->q_len += f->len;
        return 0;
}

static int handle_signal(Session *s, const AgentFrame *f) {
        if (f->len != 4)
                return send_error(s, EINVAL, "exec-signal takes a 4-byte signal number");
        uint32_t sig = agent_get_u32(f->payload);
        if (sig == 0 || sig >= (uint32_t) NSIG)
                return send_error(s, EINVAL, "invalid signal %u", sig);
        if (s->child_running)
                (void) agent_child_signal(&s->child, (int) sig);
        return 0;
}

static int handle_hello(Session *s, const AgentFrame *f) {
        uint32_t version, nonce;
        if (agent_hello_parse(f->payload, f->len, &version, &nonce) < 0 || version == 0) {
                (void) send_error(s, EBADMSG, "malformed hello");
                return SESSION_CLOSE;
        }
        /* A hello starts over: on a stream it is how a new host session begins. */
        session_reset_exec(s);
        s->hello_done = true;
        uint8_t out[AGENT_HELLO_FRAME_SIZE];
        agent_hello_encode(out, AGENT_PROTOCOL_VERSION, nonce);
        return send_frame(s, AGENT_MSG_HELLO, out + AGENT_FRAME_HEADER_SIZE, AGENT_HELLO_PAYLOAD_SIZE);
}

static int dispatch(Session *s, const AgentFrame *f) {
        if (f->type == AGENT_MSG_HELLO)
                return handle_hello(s, f);
        if (!s->hello_done) {
                (void) send_error(s, EPROTO, "expected hello, got message type 0x%02x", f->type);
                return SESSION_CLOSE;
        }
        switch (f->type) {
        case AGENT_MSG_HEALTH:
        case AGENT_MSG_PORTS:
        case AGENT_MSG_STATS:
                return reply_json(s, f->type, f);
        case AGENT_MSG_POWEROFF:
                return handle_poweroff(s, f);
        case AGENT_MSG_EXEC_START:
                return handle_exec_start(s, f);
        case AGENT_MSG_EXEC_STDIN:
                return queue_stdin(s, f);
        case AGENT_MSG_EXEC_STDIN_EOF:
                if (s->child_running)
                        s->stdin_eof = true;
                return 0;
        case AGENT_MSG_EXEC_SIGNAL:
                return handle_signal(s, f);
        default:
                return send_error(s, EBADMSG, "unexpected message type 0x%02x", f->type);
        }
}

/* Handle a framing error: a connection is closed, a stream resynchronises. */
static int framing_error(Session *s, int err, const char *what) {
        (void) send_error(s, err, "%s", what);
        if (!s->opt.stream)
                return SESSION_CLOSE;
        s->resync = true;
        s->hello_done = false;
        return SESSION_CONTINUE;
}

static int process_input(Session *s) {
        size_t off = 0;
        int r = 0;
        while (r == SESSION_CONTINUE && !s->peer_gone) {
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
                if (n < 0) {
                        r = framing_error(s, EMSGSIZE, "frame exceeds the size limit");
                        off++; /* a stream skips past the bad header while resynchronising */
                        continue;
                }
                if (s->opt.stream && !s->hello_done && f.type != AGENT_MSG_HELLO) {
                        r = framing_error(s, EPROTO, "expected hello");
                        off++;
                        continue;
                }
                r = dispatch(s, &f);
                if (r < 0)
                        r = SESSION_CLOSE; /* could not write: the peer is gone */
                else if (r == SESSION_CLOSE && s->opt.stream && !s->peer_gone)
                        r = framing_error(s, EBADMSG, "session reset");
                off += (size_t) n;
        }
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
                        (void) send_error(s, EBADMSG, "truncated frame: connection closed after %zu bytes", s->in_len);
                s->peer_gone = true;
                return SESSION_CLOSE;
        }
        s->in_len += (size_t) n;
        return process_input(s);
}

static int forward_output(Session *s, int *fd, uint8_t type) {
        static uint8_t buf[AGENT_DATA_CHUNK];
        for (;;) {
                ssize_t n = read(*fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n <= 0) {
                        *fd = safe_close(*fd);
                        return 0;
                }
                int r = send_frame(s, type, buf, (size_t) n);
                if (r < 0)
                        return r;
                if ((size_t) n < sizeof(buf))
                        return 0; /* let other events in between large outputs */
        }
}

static void flush_stdin(Session *s) {
        while (s->q_len > 0 && s->child.stdin_fd >= 0) {
                ssize_t n = write(s->child.stdin_fd, s->q, s->q_len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n < 0) { /* EPIPE: the command stopped reading */
                        s->child.stdin_fd = safe_close(s->child.stdin_fd);
                        s->q_len = 0;
                        return;
                }
                memmove(s->q, s->q + n, s->q_len - (size_t) n);
                s->q_len -= (size_t) n;
        }
        if (s->q_len == 0 && s->stdin_eof)
                s->child.stdin_fd = safe_close(s->child.stdin_fd);
}

/* The command exited: everything it wrote is already in the pipes, so drain
 * them without blocking (a background grandchild keeping them open must not
 * hold up the exit report), then report. */
static int finish_child(Session *s) {
        int status = 0, r;
        if (s->child.stdout_fd >= 0 && (r = forward_output(s, &s->child.stdout_fd, AGENT_MSG_EXEC_STDOUT)) < 0)
                return r;
        if (s->child.stderr_fd >= 0 && (r = forward_output(s, &s->child.stderr_fd, AGENT_MSG_EXEC_STDERR)) < 0)
                return r;
        r = agent_child_reap(&s->child, &status);
        agent_child_done(&s->child);
        s->child_running = false;
        s->q_len = 0;
        s->stdin_eof = false;
        if (r < 0)
                return send_error(s, r, "waitpid: %s", strerror(-r));
        uint8_t p[5];
        p[0] = WIFSIGNALED(status) ? AGENT_EXIT_SIGNAL : AGENT_EXIT_CODE;
        agent_put_u32(p + 1, (uint32_t) (WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)));
        return send_frame(s, AGENT_MSG_EXEC_EXIT, p, sizeof(p));
}

static int poll_timeout_ms(const Session *s) {
        if (s->in_len == 0 || s->resync)
                return -1;
        usec_t now = now_monotonic(), end = s->partial_since + PARTIAL_FRAME_TIMEOUT;
        return now >= end ? 0 : (int) ((end - now) / USEC_PER_MSEC) + 1;
}

static int check_stall(Session *s) {
        if (s->in_len == 0 || s->resync || now_monotonic() < s->partial_since + PARTIAL_FRAME_TIMEOUT)
                return SESSION_CONTINUE;
        s->in_len = 0;
        s->partial_since = 0;
        return framing_error(s, ETIMEDOUT, "incomplete frame timed out");
}

enum { POLL_CONN, POLL_STDOUT, POLL_STDERR, POLL_STDIN, POLL_PIDFD, _POLL_MAX };

static int session_step(Session *s) {
        struct pollfd p[_POLL_MAX] = {
                [POLL_CONN] = { .fd = s->q_len < STDIN_QUEUE_HIGH ? s->fd : -1, .events = POLLIN },
                [POLL_STDOUT] = { .fd = s->child.stdout_fd, .events = POLLIN },
                [POLL_STDERR] = { .fd = s->child.stderr_fd, .events = POLLIN },
                [POLL_STDIN] = { .fd = s->q_len > 0 ? s->child.stdin_fd : -1, .events = POLLOUT },
                [POLL_PIDFD] = { .fd = s->child_running ? s->child.pidfd : -1, .events = POLLIN },
        };
        if (poll(p, _POLL_MAX, poll_timeout_ms(s)) < 0)
                return errno == EINTR ? SESSION_CONTINUE : -errno;
        int r = 0;
        if (p[POLL_STDOUT].revents)
                r = forward_output(s, &s->child.stdout_fd, AGENT_MSG_EXEC_STDOUT);
        if (r >= 0 && p[POLL_STDERR].revents)
                r = forward_output(s, &s->child.stderr_fd, AGENT_MSG_EXEC_STDERR);
        if (r >= 0 && p[POLL_STDIN].revents)
                flush_stdin(s);
        if (r >= 0 && p[POLL_PIDFD].revents)
                r = finish_child(s);
        if (r < 0)
                return SESSION_CLOSE;
        if (p[POLL_CONN].revents) {
                r = read_input(s);
                if (r != SESSION_CONTINUE)
                        return r;
                flush_stdin(s);
        }
        return check_stall(s);
}

int agent_session_run(int fd, const SessionOptions *o) {
        Session s = { .fd = fd, .opt = *o, .child = AGENT_CHILD_NULL };
        s.in = malloc(AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX);
        if (!s.in)
                return -ENOMEM;
        int r;
        do
                r = session_step(&s);
        while (r == SESSION_CONTINUE);
        session_reset_exec(&s);
        free(s.in);
        free(s.q);
        return r < 0 ? r : 0;
}

/* virtio-serial reports "host not connected" as POLLHUP (and read() = 0)
 * with no event for the reconnect, so poll for it at a modest rate. */
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
