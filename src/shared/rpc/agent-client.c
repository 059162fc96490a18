/* SPDX-License-Identifier: MIT */
#include "agent-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"

/* On a stream transport the first hello can be swallowed by the tail of a
 * broken frame from an earlier session; the agent then resynchronises on
 * the next one. */
#define HELLO_RESEND_INTERVAL (500 * USEC_PER_MSEC) /* a guest agent that just came up answers within one interval */
#define EXEC_OUT_HIGH (2 * AGENT_DATA_CHUNK)

struct AgentClient {
        int fd;
        uint8_t *in;
        size_t in_len;
        size_t consumed; /* bytes of the frame handed out last, dropped on the next read */
        uint8_t *out;    /* exec: frames waiting to be written */
        size_t out_len, out_cap;
};

int agent_client_new(int fd, AgentClient **ret) {
        _cleanup_close_ int owned = fd;
        if (fd < 0)
                return -EBADF;
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return -errno;
        AgentClient *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->in = malloc(AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX);
        if (!c->in) {
                free(c);
                return -ENOMEM;
        }
        c->fd = TAKE_FD(owned);
        *ret = c;
        return 0;
}

AgentClient *agent_client_free(AgentClient *c) {
        if (!c)
                return NULL;
        safe_close(c->fd);
        free(c->in);
        free(c->out);
        free(c);
        return NULL;
}

static int remaining_ms(usec_t deadline) {
        if (deadline == USEC_INFINITY)
                return -1;
        usec_t now = now_monotonic();
        if (now >= deadline)
                return 0;
        usec_t ms = (deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC;
        return ms > 60000 ? 60000 : (int) ms;
}

static usec_t deadline_after(usec_t timeout) {
        return timeout == USEC_INFINITY ? USEC_INFINITY : now_monotonic() + timeout;
}

static int wait_fd(int fd, short events, usec_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int n = poll(&p, 1, remaining_ms(deadline));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n > 0)
                        return 0;
                if (deadline != USEC_INFINITY && now_monotonic() >= deadline)
                        return error_setf(-ETIMEDOUT, "timed out waiting for the guest agent");
        }
}

static int write_all(AgentClient *c, const void *data, size_t len, usec_t deadline) {
        const uint8_t *p = data;
        while (len > 0) {
                ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == ENOTSOCK)
                        n = write(c->fd, p, len); /* a tty or char device in tests */
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        int r = wait_fd(c->fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0)
                        return error_setf(-errno, "writing to the guest agent: %s", strerror(errno));
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static int send_frame(AgentClient *c, uint8_t type, const void *payload, size_t len, usec_t deadline) {
        uint8_t hdr[AGENT_FRAME_HEADER_SIZE];
        agent_frame_header_encode(hdr, type, (uint32_t) len);
        int r = write_all(c, hdr, sizeof(hdr), deadline);
        if (r >= 0 && len > 0)
                r = write_all(c, payload, len, deadline);
        return r;
}

static void drop_consumed(AgentClient *c) {
        if (c->consumed == 0)
                return;
        memmove(c->in, c->in + c->consumed, c->in_len - c->consumed);
        c->in_len -= c->consumed;
        c->consumed = 0;
}

/* One non-blocking read into the input buffer: 1 data, 0 nothing yet. */
static int fill(AgentClient *c) {
        drop_consumed(c);
        size_t cap = AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX;
        if (c->in_len == cap)
                return error_setf(-EBADMSG, "guest agent sent an oversized frame");
        ssize_t n = read(c->fd, c->in + c->in_len, cap - c->in_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n < 0)
                return error_setf(-errno, "reading from the guest agent: %s", strerror(errno));
        if (n == 0)
                return error_setf(-ECONNRESET, "the guest agent closed the connection");
        c->in_len += (size_t) n;
        return 1;
}

/* A complete frame from the buffer: 1 and *f, 0 when more bytes are needed. */
static int take_frame(AgentClient *c, AgentFrame *f) {
        drop_consumed(c);
        long n = agent_frame_parse(c->in, c->in_len, f);
        if (n < 0)
                return error_setf(-EBADMSG, "guest agent sent an oversized frame");
        if (n > 0)
                c->consumed = (size_t) n;
        return n > 0;
}

static int read_frame(AgentClient *c, usec_t deadline, AgentFrame *f) {
        for (;;) {
                int r = take_frame(c, f);
                if (r != 0)
                        return r;
                r = fill(c);
                if (r < 0)
                        return r;
                if (r == 0 && (r = wait_fd(c->fd, POLLIN, deadline)) < 0)
                        return r;
        }
}

static int agent_error(const AgentFrame *f) {
        _cleanup_free_ char *text = NULL;
        int e;
        if (agent_error_parse(f->payload, f->len, &e, &text) < 0)
                return error_setf(-EBADMSG, "guest agent sent a malformed error");
        return error_setf(-e, "guest agent: %s", text);
}

/* Read until a frame of the wanted type; stray hellos (a repeated hello's
 * answer) are skipped, an error frame becomes the return value. */
static int read_reply(AgentClient *c, uint8_t want, usec_t deadline, AgentFrame *f) {
        for (;;) {
                int r = read_frame(c, deadline, f);
                if (r < 0)
                        return r;
                if (f->type == want)
                        return 0;
                if (f->type == AGENT_MSG_ERROR)
                        return agent_error(f);
                if (f->type != AGENT_MSG_HELLO)
                        return error_setf(-EBADMSG, "guest agent sent unexpected %s frame",
                                          agent_msg_to_string(f->type) ?: "unknown");
        }
}

/* Look for our hello's answer anywhere in the buffer: 1 found (and the
 * stream is in sync from there), 0 not yet. */
static int scan_hello_reply(AgentClient *c, uint32_t nonce, uint32_t *ret_version) {
        drop_consumed(c);
        size_t off = 0;
        while (off < c->in_len) {
                off += agent_stream_find_hello(c->in + off, c->in_len - off);
                if (c->in_len - off < AGENT_HELLO_FRAME_SIZE)
                        break;
                uint32_t v, n;
                if (agent_hello_parse(c->in + off + AGENT_FRAME_HEADER_SIZE, AGENT_HELLO_PAYLOAD_SIZE, &v, &n) == 0 &&
                    n == nonce) {
                        c->consumed = off + AGENT_HELLO_FRAME_SIZE;
                        *ret_version = v;
                        return 1;
                }
                off++;
        }
        /* Keep a possible partial match; drop what can never be one. */
        c->consumed = off;
        return 0;
}

int agent_client_hello(AgentClient *c, usec_t timeout, uint32_t *ret_version) {
        usec_t deadline = deadline_after(timeout);
        uint32_t nonce;
        if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
                return -errno;
        uint8_t hello[AGENT_HELLO_FRAME_SIZE];
        agent_hello_encode(hello, AGENT_PROTOCOL_VERSION, nonce);
        for (;;) {
                int r = write_all(c, hello, sizeof(hello), deadline);
                if (r < 0)
                        return r;
                usec_t resend = MIN(deadline, now_monotonic() + HELLO_RESEND_INTERVAL);
                uint32_t version;
                for (;;) {
                        r = scan_hello_reply(c, nonce, &version);
                        if (r > 0) {
                                if (version < AGENT_PROTOCOL_VERSION)
                                        return error_setf(-EPROTONOSUPPORT, "guest agent speaks protocol %u, need %u",
                                                          version, AGENT_PROTOCOL_VERSION);
                                if (ret_version)
                                        *ret_version = version;
                                return 0;
                        }
                        r = fill(c);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                continue;
                        r = wait_fd(c->fd, POLLIN, resend);
                        if (r == -ETIMEDOUT && resend < deadline)
                                break; /* say hello again */
                        if (r < 0)
                                return r;
                }
        }
}

int agent_client_query_json(AgentClient *c, AgentMsg type, usec_t timeout, json_t **ret) {
        if (type != AGENT_MSG_HEALTH && type != AGENT_MSG_PORTS && type != AGENT_MSG_STATS)
                return -EINVAL;
        usec_t deadline = deadline_after(timeout);
        int r = send_frame(c, type, NULL, 0, deadline);
        AgentFrame f;
        if (r >= 0)
                r = read_reply(c, type, deadline, &f);
        if (r < 0)
                return r;
        json_error_t err;
        json_t *j = json_loadb((const char *) f.payload, f.len, 0, &err);
        if (!j || !json_is_object(j)) {
                json_decref(j);
                return error_setf(-EBADMSG, "guest agent sent invalid JSON: %s", err.text);
        }
        *ret = j;
        return 0;
}


static char *json_strdup(json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return strdup(s ? s : "");
}

void agent_health_done(AgentHealth *h) {
        free(h->agent_version);
        free(h->boot_id);
        free(h->hostname);
        free(h->kernel);
        *h = (AgentHealth){};
}

int agent_client_health(AgentClient *c, usec_t timeout, AgentHealth *ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r = agent_client_query_json(c, AGENT_MSG_HEALTH, timeout, &j);
        if (r < 0)
                return r;
        AgentHealth h = {
                .agent_version = json_strdup(j, "agent_version"),
                .boot_id = json_strdup(j, "boot_id"),
                .hostname = json_strdup(j, "hostname"),
                .kernel = json_strdup(j, "kernel"),
                .uptime_sec = json_number_value(json_object_get(j, "uptime_sec")),
                .protocol = (unsigned) json_integer_value(json_object_get(j, "protocol")),
        };
        if (!h.agent_version || !h.boot_id || !h.hostname || !h.kernel) {
                agent_health_done(&h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

static uint64_t json_u64(json_t *o, const char *key) {
        json_int_t v = json_integer_value(json_object_get(o, key));
        return v < 0 ? 0 : (uint64_t) v;
}

int agent_client_stats(AgentClient *c, usec_t timeout, AgentStats *ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r = agent_client_query_json(c, AGENT_MSG_STATS, timeout, &j);
        if (r < 0)
                return r;
        if (!json_is_integer(json_object_get(j, "mem_total_kib")) || !json_is_number(json_object_get(j, "load1")))
                return error_setf(-EBADMSG, "guest agent stats lack mem_total_kib/load1");
        *ret = (AgentStats){
                .mem_total_kib = json_u64(j, "mem_total_kib"),
                .mem_free_kib = json_u64(j, "mem_free_kib"),
                .mem_available_kib = json_u64(j, "mem_available_kib"),
                .buffers_kib = json_u64(j, "buffers_kib"),
                .cached_kib = json_u64(j, "cached_kib"),
                .swap_total_kib = json_u64(j, "swap_total_kib"),
                .swap_free_kib = json_u64(j, "swap_free_kib"),
                .load1 = json_number_value(json_object_get(j, "load1")),
                .load5 = json_number_value(json_object_get(j, "load5")),
                .load15 = json_number_value(json_object_get(j, "load15")),
                .procs_running = (unsigned) json_u64(j, "procs_running"),
                .procs_total = (unsigned) json_u64(j, "procs_total"),
        };
        return 0;
}

void agent_ports_free(AgentPort *p, size_t n) {
        for (size_t i = 0; p && i < n; i++)
                free(p[i].process);
        free(p);
}

static int port_from_json(json_t *e, AgentPort *p) {
        const char *proto = json_string_value(json_object_get(e, "proto"));
        const char *addr = json_string_value(json_object_get(e, "address"));
        json_int_t port = json_integer_value(json_object_get(e, "port"));
        if (!proto || !addr || strlen(proto) >= sizeof(p->proto) || strlen(addr) >= sizeof(p->address) || port <= 0 ||
            port > 65535)
                return error_setf(-EBADMSG, "guest agent sent a malformed port entry");
        snprintf(p->proto, sizeof(p->proto), "%s", proto);
        snprintf(p->address, sizeof(p->address), "%s", addr);
        p->port = (unsigned) port;
        p->pid = (int) json_integer_value(json_object_get(e, "pid"));
        p->process = json_strdup(e, "process");
        return p->process ? 0 : -ENOMEM;
}

int agent_client_ports(AgentClient *c, usec_t timeout, AgentPort **ret, size_t *ret_n) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r = agent_client_query_json(c, AGENT_MSG_PORTS, timeout, &j);
        if (r < 0)
                return r;
        json_t *arr = json_object_get(j, "ports");
        if (!json_is_array(arr))
                return error_setf(-EBADMSG, "guest agent ports reply has no ports array");
        size_t n = json_array_size(arr);
        AgentPort *v = calloc(n ? n : 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = port_from_json(json_array_get(arr, i), &v[i]);
                if (r < 0) {
                        agent_ports_free(v, n);
                        return r;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int agent_client_poweroff(AgentClient *c, usec_t timeout) {
        usec_t deadline = deadline_after(timeout);
        int r = send_frame(c, AGENT_MSG_POWEROFF, NULL, 0, deadline);
        AgentFrame f;
        if (r >= 0)
                r = read_reply(c, AGENT_MSG_OK, deadline, &f);
        return r;
}

/* exec: frames to the agent are queued and written without blocking, so
 * that stdin flowing in can never stall output flowing out (the agent
 * stops reading while its stdin queue is full but keeps sending). */
static int queue_frame(AgentClient *c, uint8_t type, const void *payload, size_t len) {
        size_t need = c->out_len + AGENT_FRAME_HEADER_SIZE + len;
        if (need > c->out_cap) {
                size_t cap = MAX(need, c->out_cap * 2);
                uint8_t *n = realloc(c->out, cap);
                if (!n)
                        return -ENOMEM;
                c->out = n;
                c->out_cap = cap;
        }
        agent_frame_header_encode(c->out + c->out_len, type, (uint32_t) len);
        if (len > 0)
                memcpy(c->out + c->out_len + AGENT_FRAME_HEADER_SIZE, payload, len);
        c->out_len = need;
        return 0;
}

static int flush_out(AgentClient *c) {
        while (c->out_len > 0) {
                ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
                if (n < 0 && errno == ENOTSOCK)
                        n = write(c->fd, c->out, c->out_len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0)
                        return error_setf(-errno, "writing to the guest agent: %s", strerror(errno));
                memmove(c->out, c->out + n, c->out_len - (size_t) n);
                c->out_len -= (size_t) n;
        }
        return 0;
}

/* Finish writing queued frames so the stream stays framed for the next call. */
static int drain_out(AgentClient *c, usec_t deadline) {
        int r = write_all(c, c->out, c->out_len, deadline);
        c->out_len = 0;
        return r;
}

static void write_output(int fd, const AgentFrame *f) {
        if (fd >= 0)
                (void) loop_write(fd, f->payload, f->len); /* a closed stdout must not end the command */
}

/* Handle one frame during exec: 1 when the command has exited. */
static int exec_frame(AgentClient *c, const AgentExecOptions *o, const AgentFrame *f, AgentExecResult *res) {
        switch (f->type) {
        case AGENT_MSG_EXEC_STDOUT:
                write_output(o->stdout_fd, f);
                return 0;
        case AGENT_MSG_EXEC_STDERR:
                write_output(o->stderr_fd, f);
                return 0;
        case AGENT_MSG_EXEC_EXIT:
                if (agent_exit_parse(f->payload, f->len, &res->kind, &res->code) < 0)
                        return error_setf(-EBADMSG, "guest agent sent a malformed exit frame");
                return 1;
        case AGENT_MSG_ERROR:
                return agent_error(f);
        case AGENT_MSG_HELLO:
                return 0;
        default:
                return error_setf(-EBADMSG, "guest agent sent unexpected %s frame during exec",
                                  agent_msg_to_string(f->type) ?: "unknown");
        }
}

static int forward_stdin(AgentClient *c, int fd, bool *open) {
        static uint8_t buf[AGENT_DATA_CHUNK];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return 0;
        if (n > 0)
                return queue_frame(c, AGENT_MSG_EXEC_STDIN, buf, (size_t) n);
        *open = false; /* EOF or an unreadable stdin: either way no more input */
        return queue_frame(c, AGENT_MSG_EXEC_STDIN_EOF, NULL, 0);
}

/* Kill the command and wait (briefly) for its exit frame, so the session
 * can carry on with the next request. */
static int exec_kill(AgentClient *c, const AgentExecOptions *o) {
        uint8_t p[4];
        agent_put_u32(p, SIGKILL);
        usec_t deadline = now_monotonic() + 2 * USEC_PER_SEC;
        int r = queue_frame(c, AGENT_MSG_EXEC_SIGNAL, p, sizeof(p));
        if (r >= 0)
                r = drain_out(c, deadline);
        AgentFrame f;
        AgentExecResult res;
        while (r == 0 && (r = read_frame(c, deadline, &f)) > 0)
                r = exec_frame(c, o, &f, &res);
        return error_setf(-ETIMEDOUT, "command timed out in the guest and was killed");
}

static int exec_start(AgentClient *c, const AgentExecOptions *o, usec_t deadline, pid_t *ret_pid) {
        AgentExecSpec spec = { .cwd = o->cwd, .argv = (char **) o->argv, .env = (char **) o->env };
        _cleanup_free_ uint8_t *payload = NULL;
        size_t len;
        int r = agent_exec_spec_encode(&spec, &payload, &len);
        if (r < 0)
                return error_setf(r, "command line too large for the guest agent");
        r = send_frame(c, AGENT_MSG_EXEC_START, payload, len, deadline);
        AgentFrame f;
        if (r >= 0)
                r = read_reply(c, AGENT_MSG_EXEC_STARTED, deadline, &f);
        if (r < 0)
                return r;
        if (f.len != 4)
                return error_setf(-EBADMSG, "guest agent sent a malformed exec-started frame");
        *ret_pid = (pid_t) agent_get_u32(f.payload);
        return 0;
}

static int exec_loop(AgentClient *c, const AgentExecOptions *o, usec_t deadline, AgentExecResult *res) {
        bool stdin_open = o->stdin_fd >= 0;
        int r = stdin_open ? 0 : queue_frame(c, AGENT_MSG_EXEC_STDIN_EOF, NULL, 0);
        while (r >= 0) {
                AgentFrame f;
                while ((r = take_frame(c, &f)) > 0)
                        if ((r = exec_frame(c, o, &f, res)) != 0)
                                return r < 0 ? r : drain_out(c, now_monotonic() + USEC_PER_SEC);
                if (r < 0 || (r = flush_out(c)) < 0)
                        return r;
                struct pollfd p[2] = {
                        { .fd = c->fd, .events = POLLIN | (c->out_len > 0 ? POLLOUT : 0) },
                        { .fd = stdin_open && c->out_len < EXEC_OUT_HIGH ? o->stdin_fd : -1, .events = POLLIN },
                };
                int n = poll(p, 2, remaining_ms(deadline));
                if (n < 0 && errno != EINTR)
                        return -errno;
                if (n == 0 && deadline != USEC_INFINITY && now_monotonic() >= deadline)
                        return exec_kill(c, o);
                if (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
                        r = fill(c);
                if (r >= 0 && n > 0 && p[1].revents)
                        r = forward_stdin(c, o->stdin_fd, &stdin_open);
        }
        return r;
}

int agent_client_exec(AgentClient *c, const AgentExecOptions *o, usec_t timeout, AgentExecResult *ret) {
        if (!o->argv || !o->argv[0])
                return -EINVAL;
        usec_t deadline = deadline_after(timeout);
        AgentExecResult res = {};
        int r = exec_start(c, o, deadline, &res.pid);
        if (r < 0)
                return r;
        r = exec_loop(c, o, deadline, &res);
        c->out_len = 0;
        if (r < 0)
                return r;
        *ret = res;
        return 0;
}

/* Poll first: the fd may be blocking, and the deadline must hold anyway. */
static int read_byte(int fd, usec_t deadline, char *ret) {
        for (;;) {
                int r = wait_fd(fd, POLLIN, deadline);
                if (r < 0)
                        return r;
                ssize_t n = read(fd, ret, 1);
                if (n == 1)
                        return 0;
                if (n == 0)
                        return -ECONNRESET;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
        }
}

int agent_vsock_handshake(int fd, unsigned port, usec_t timeout) {
        usec_t deadline = deadline_after(timeout);
        char line[64];
        int len = snprintf(line, sizeof(line), "CONNECT %u\n", port);
        size_t done = 0;
        while (done < (size_t) len) {
                ssize_t n = send(fd, line + done, (size_t) len - done, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        int r = wait_fd(fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0)
                        return error_setf(-errno, "vsock handshake: %s", strerror(errno));
                done += (size_t) n;
        }
        size_t n = 0;
        for (;;) {
                int r = read_byte(fd, deadline, &line[n]);
                if (r == -ECONNRESET || r == -EPIPE)
                        return error_setf(-ECONNREFUSED, "nothing listens on guest vsock port %u", port);
                if (r < 0)
                        return r == -ETIMEDOUT ? r : error_setf(r, "vsock handshake: %s", strerror(-r));
                if (line[n] == '\n')
                        break;
                if (++n >= sizeof(line) - 1)
                        return error_setf(-EPROTO, "vsock handshake: reply line too long");
        }
        line[n] = 0;
        unsigned host_port;
        char extra;
        if (sscanf(line, "OK %u%c", &host_port, &extra) != 1)
                return error_setf(-EPROTO, "vsock handshake: unexpected reply \"%s\"", line);
        return 0;
}
