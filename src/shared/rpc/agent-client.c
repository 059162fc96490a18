/* SPDX-License-Identifier: MIT */
#include "agent-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client-internal.h"
#include "error.h"
#include "fs-util.h"
#include "io-util.h"

/* On a stream transport the first hello can be swallowed by the tail of a
 * broken frame from an earlier session; the agent then resynchronises on
 * the next one. A guest agent that just came up answers within one interval. */
#define HELLO_RESEND_INTERVAL (500 * USEC_PER_MSEC)
#define QUERY_REPLY_MAX (1024U * 1024U)

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
        struct stat st;
        c->byte_stream = fstat(fd, &st) == 0 && !S_ISSOCK(st.st_mode);
        c->fd = TAKE_FD(owned);
        c->next_id = 1;
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

const AgentHello *agent_client_info(const AgentClient *c) {
        return c->hello_done ? &c->info : NULL;
}

int agent_wait_fd(int fd, short events, usec_t deadline) {
        int r = fd_wait_until(fd, events, deadline);
        if (r == -ETIMEDOUT)
                return error_setf(r, "timed out waiting for the guest agent");
        return r < 0 ? r : 0;
}

/* ---- output queue ---- */

static int queue_bytes(AgentClient *c, const void *p, size_t n) {
        if (c->out_off == c->out_len)
                c->out_off = c->out_len = 0;
        if (c->out_len + n > c->out_cap) {
                size_t cap = MAX(c->out_len + n, c->out_cap * 2);
                uint8_t *b = realloc(c->out, cap);
                if (!b)
                        return -ENOMEM;
                c->out = b;
                c->out_cap = cap;
        }
        memcpy(c->out + c->out_len, p, n);
        c->out_len += n;
        return 0;
}

int agent_client_queue(AgentClient *c, const AgentStreamFrame *f) {
        uint8_t stackbuf[256];
        size_t n = agent_stream_frame_size(f);
        uint8_t *buf = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
        if (!buf)
                return -ENOMEM;
        agent_stream_frame_encode(f, buf);
        int r = queue_bytes(c, buf, n);
        if (buf != stackbuf)
                free(buf);
        return r;
}

int agent_client_flush(AgentClient *c) {
        while (c->out_off < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
                if (n < 0 && errno == ENOTSOCK)
                        n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off); /* a tty in tests */
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0)
                        return error_setf(-errno, "writing to the guest agent: %s", strerror(errno));
                c->out_off += (size_t) n;
        }
        return 0;
}

int agent_client_drain(AgentClient *c, usec_t deadline) {
        for (;;) {
                int r = agent_client_flush(c);
                if (r < 0 || c->out_off == c->out_len)
                        return r;
                r = agent_wait_fd(c->fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
}

/* ---- input ---- */

static void drop_consumed(AgentClient *c) {
        if (c->consumed == 0)
                return;
        memmove(c->in, c->in + c->consumed, c->in_len - c->consumed);
        c->in_len -= c->consumed;
        c->consumed = 0;
}

int agent_client_fill(AgentClient *c) {
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

int agent_client_take_frame(AgentClient *c, AgentFrame *f) {
        drop_consumed(c);
        long n = agent_frame_parse(c->in, c->in_len, f);
        if (n < 0)
                return error_setf(-EBADMSG, "guest agent sent an oversized frame");
        if (n > 0)
                c->consumed = (size_t) n;
        return n > 0;
}

int agent_client_error_frame(const AgentFrame *f) {
        _cleanup_free_ char *text = NULL;
        int e;
        if (agent_error_parse(f->payload, f->len, &e, &text) < 0)
                return error_setf(-EBADMSG, "guest agent sent a malformed error");
        return error_setf(-e, "%s", text);
}

/* ---- hello ---- */

/* Look for our hello's answer anywhere in the buffer: 1 found (and the
 * stream is in sync from there), 0 not yet, < 0 an error frame in its place. */
static int scan_hello_reply(AgentClient *c, uint32_t nonce, AgentHello *ret) {
        drop_consumed(c);
        size_t off = 0;
        AgentFrame f;
        /* A multiplexer or a direct connection answers a refused hello with
         * an ERROR frame right away; on a byte stream it may be stale. */
        long n = agent_frame_parse(c->in, c->in_len, &f);
        if (n > 0 && f.type == AGENT_MSG_ERROR && !c->byte_stream) {
                c->consumed = (size_t) n;
                return agent_client_error_frame(&f);
        }
        for (; off < c->in_len; off++) {
                size_t avail = c->in_len - off;
                const uint8_t *p = c->in + off;
                /* A hello frame: type 1, length, "BNGR". */
                if (p[0] != AGENT_MSG_HELLO ||
                    (avail > AGENT_FRAME_HEADER_SIZE && memcmp(p + AGENT_FRAME_HEADER_SIZE, AGENT_HELLO_MAGIC,
                                                               MIN(avail - AGENT_FRAME_HEADER_SIZE, (size_t) 4)) != 0))
                        continue;
                n = agent_frame_parse(p, avail, &f);
                if (n == 0)
                        break; /* maybe the start of our answer: keep it */
                AgentHello h;
                if (n > 0 && agent_hello_parse(f.payload, f.len, &h) == 0 && h.nonce == nonce) {
                        c->consumed = off + (size_t) n;
                        *ret = h;
                        return 1;
                }
        }
        c->consumed = off;
        return 0;
}

static int check_version(AgentClient *c, const AgentHello *h) {
        if (h->version == 1)
                return error_setf(-EPROTONOSUPPORT, AGENT_V1_MESSAGE);
        if (h->version != AGENT_PROTOCOL_VERSION || h->window == 0)
                return error_setf(-EPROTONOSUPPORT, "the guest agent speaks protocol %u; this banger speaks %u",
                                  h->version, AGENT_PROTOCOL_VERSION);
        c->info = *h;
        c->hello_done = true;
        return 0;
}

static int await_hello(AgentClient *c, uint32_t nonce, usec_t until, AgentHello *ret) {
        for (;;) {
                int r = scan_hello_reply(c, nonce, ret);
                if (r != 0)
                        return r;
                r = agent_client_fill(c);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                r = agent_wait_fd(c->fd, POLLIN, until);
                if (r < 0)
                        return r;
        }
}

int agent_client_hello(AgentClient *c, usec_t timeout, AgentHello *ret_info) {
        usec_t deadline = deadline_from_timeout(timeout);
        uint32_t nonce;
        if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
                return -errno;
        nonce |= 1; /* never 0: that is an agent's unsolicited announcement */
        uint8_t hello[AGENT_HELLO_FRAME_SIZE];
        agent_hello_encode(hello, AGENT_PROTOCOL_VERSION, nonce);
        for (;;) {
                int r = queue_bytes(c, hello, sizeof(hello));
                if (r >= 0)
                        r = agent_client_drain(c, deadline);
                if (r < 0)
                        return r;
                AgentHello h;
                usec_t resend = MIN(deadline, now_monotonic() + HELLO_RESEND_INTERVAL);
                r = await_hello(c, nonce, resend, &h);
                if (r == -ETIMEDOUT && resend < deadline)
                        continue; /* say hello again */
                if (r < 0)
                        return r;
                r = check_version(c, &h);
                if (r >= 0 && ret_info)
                        *ret_info = h;
                return r;
        }
}

/* ---- queries ---- */

int agent_client_query_json(AgentClient *c, AgentStreamKind kind, usec_t timeout, json_t **ret) {
        if (kind != AGENT_STREAM_HEALTH && kind != AGENT_STREAM_PORTS && kind != AGENT_STREAM_STATS)
                return -EINVAL;
        _cleanup_free_ char *out = NULL;
        size_t len = 0;
        AgentStreamIo io = { .in_fd = -EBADF,
                             .out_fd = -EBADF,
                             .err_fd = -EBADF,
                             .out_capture = &out,
                             .out_capture_len = &len,
                             .window = QUERY_REPLY_MAX,
                             .signal_fd = -EBADF,
                             .tty_fd = -EBADF };
        int r = agent_client_run(c, kind, NULL, 0, &io, deadline_from_timeout(timeout), NULL);
        if (r < 0)
                return r;
        return agent_query_reply_parse(out ? out : "", len, ret);
}

int agent_query_reply_parse(const char *text, size_t len, json_t **ret) {
        json_error_t err;
        json_t *j = json_loadb(text, len, 0, &err);
        if (!j || !json_is_object(j)) {
                json_decref(j);
                return error_setf(-EBADMSG, "guest agent sent invalid JSON: %s", j ? "not an object" : err.text);
        }
        *ret = j;
        return 0;
}

int agent_client_poweroff(AgentClient *c, usec_t timeout) {
        AgentStreamIo io = { .in_fd = -EBADF,
                             .out_fd = -EBADF,
                             .err_fd = -EBADF,
                             .window = AGENT_WINDOW_DEFAULT,
                             .signal_fd = -EBADF,
                             .tty_fd = -EBADF };
        return agent_client_run(c, AGENT_STREAM_POWEROFF, NULL, 0, &io, deadline_from_timeout(timeout), NULL);
}
