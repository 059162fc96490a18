/* SPDX-License-Identifier: MIT */
/* One forwarded connection: the accepted TCP socket, a client connection of
 * the VM's multiplexer carrying one connect stream, and the bytes between
 * them within the stream's credit windows. The TCP peer's FIN becomes EOF
 * on the stream and the guest's EOF becomes a FIN; the agent's CLOSE ends
 * it, with a reset when the guest side failed (nothing listens on the
 * port: the host connection is reset at once, not left hanging). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-forward-internal.h"
#include "log.h"
#include "socket-util.h"

#define STREAM_ID 1U
#define FWD_WINDOW AGENT_WINDOW_DEFAULT
/* Until the agent answers the open: a VM still booting gets this long. */
#define FWD_OPEN_TIMEOUT (30 * USEC_PER_SEC)
/* Stop reading the peer while this much waits for the multiplexer. */
#define FWD_MUX_OUT_HIGH (256U * 1024U)
/* The largest frame the multiplexer sends us: DATA of one chunk. */
#define FWD_IN_MAX (AGENT_FRAME_HEADER_SIZE + 16U + AGENT_DATA_CHUNK + AGENT_ERROR_MAX_TEXT)

typedef enum FwdConnState {
        CONN_HELLO, /* hello sent to the multiplexer */
        CONN_OPEN,  /* OPEN sent; data flows */
} FwdConnState;

/* What a step asks of the connection. */
enum { CONN_KEEP = 0, CONN_DONE = 1, CONN_RESET = 2 };

static size_t pending(const OutBuf *b) {
        return b->len - b->off;
}

void fwd_conn_free(FwdConn *c) {
        AgentForwarder *f = c->f;
        for (FwdConn **pp = &f->conns; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        f->n_conns--;
                        break;
                }
        sd_event_source_disable_unref(c->tcp_src);
        sd_event_source_disable_unref(c->mux_src);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->tcp);
        safe_close(c->mux);
        free(c->in);
        outbuf_free(&c->mux_out);
        outbuf_free(&c->tcp_out);
        free(c);
        fwd_conns_changed(f);
}

static void conn_end(FwdConn *c, int how) {
        if (how == CONN_RESET && c->tcp >= 0) {
                /* A reset tells the peer at once that nothing answered. */
                struct linger lg = { .l_onoff = 1, .l_linger = 0 };
                (void) setsockopt(c->tcp, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        fwd_conn_free(c);
}

static void conn_update(FwdConn *c) {
        bool read = c->state == CONN_OPEN && !c->tcp_eof && !c->agent_closed && c->credit > 0 &&
                    pending(&c->mux_out) < FWD_MUX_OUT_HIGH;
        uint32_t ev = (read ? EPOLLIN : 0) | (pending(&c->tcp_out) > 0 ? EPOLLOUT : 0);
        /* Disabled rather than watched for nothing: a hung-up socket would
         * report EPOLLHUP forever. */
        if (ev)
                (void) sd_event_source_set_io_events(c->tcp_src, ev);
        (void) sd_event_source_set_enabled(c->tcp_src, ev ? SD_EVENT_ON : SD_EVENT_OFF);
        if (c->mux_src)
                (void) sd_event_source_set_io_events(c->mux_src, EPOLLIN | (pending(&c->mux_out) > 0 ? EPOLLOUT : 0));
}

static int queue_frame(FwdConn *c, const AgentStreamFrame *fr) {
        uint8_t buf[AGENT_FRAME_HEADER_SIZE + 16 + AGENT_DATA_CHUNK];
        size_t n = agent_stream_frame_size(fr);
        if (n > sizeof(buf))
                return -E2BIG;
        return outbuf_append(&c->mux_out, buf, agent_stream_frame_encode(fr, buf)) < 0 ? -ENOMEM : 0;
}

/* Write what b holds without blocking; adds what went to *sent. */
static int outbuf_send(int fd, OutBuf *b, uint64_t *sent) {
        while (fd >= 0 && pending(b) > 0) {
                ssize_t n = send(fd, b->data + b->off, pending(b), MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n < 0)
                        return -errno;
                b->off += (size_t) n;
                *sent += (uint64_t) n;
        }
        return 0;
}

/* ---- toward the TCP peer ---- */

static int tcp_flush(FwdConn *c) {
        if (outbuf_send(c->tcp, &c->tcp_out, &c->unacked) < 0)
                return CONN_RESET; /* the peer is gone */
        /* Credit back in batches, or all of it once the buffer ran empty. */
        if (c->unacked > 0 && !c->agent_closed && (c->unacked >= FWD_WINDOW / 4 || pending(&c->tcp_out) == 0)) {
                if (queue_frame(c, &(AgentStreamFrame){ .type = AGENT_MSG_WINDOW,
                                                        .id = STREAM_ID,
                                                        .value = (uint32_t) c->unacked }) < 0)
                        return CONN_RESET;
                c->granted += c->unacked;
                c->unacked = 0;
        }
        if (pending(&c->tcp_out) > 0)
                return CONN_KEEP;
        if (c->agent_closed)
                return CONN_DONE;
        if (c->agent_eof)
                (void) shutdown(c->tcp, SHUT_WR);
        return CONN_KEEP;
}

/* ---- from the TCP peer ---- */

static int tcp_read(FwdConn *c) {
        uint8_t buf[AGENT_DATA_CHUNK];
        size_t max = (size_t) MIN(c->credit, (uint64_t) sizeof(buf));
        ssize_t n = read(c->tcp, buf, max);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return CONN_KEEP;
        if (n < 0)
                return CONN_RESET;
        if (n == 0) {
                c->tcp_eof = true;
                return queue_frame(c, &(AgentStreamFrame){ .type = AGENT_MSG_EOF,
                                                           .id = STREAM_ID,
                                                           .channel = AGENT_CHANNEL_STDIN }) < 0
                               ? CONN_RESET
                               : CONN_KEEP;
        }
        c->credit -= (uint64_t) n;
        return queue_frame(c, &(AgentStreamFrame){ .type = AGENT_MSG_DATA,
                                                   .id = STREAM_ID,
                                                   .channel = AGENT_CHANNEL_STDIN,
                                                   .data = buf,
                                                   .len = (size_t) n }) < 0
                       ? CONN_RESET
                       : CONN_KEEP;
}

static int mux_flush(FwdConn *c) {
        uint64_t sent = 0;
        return outbuf_send(c->mux, &c->mux_out, &sent) < 0 ? CONN_RESET : CONN_KEEP;
}

/* After an event: push what is queued for the multiplexer, then end the
 * connection or watch for what it waits on now. */
static int conn_settle(FwdConn *c, int how) {
        if (how == CONN_KEEP)
                how = mux_flush(c);
        if (how != CONN_KEEP)
                conn_end(c, how);
        else
                conn_update(c);
        return 0;
}

static int on_tcp_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        FwdConn *c = userdata;
        int how = CONN_KEEP;
        if (revents & (EPOLLOUT | EPOLLERR))
                how = tcp_flush(c);
        if (how == CONN_KEEP && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state == CONN_OPEN && !c->tcp_eof &&
            c->credit > 0)
                how = tcp_read(c);
        return conn_settle(c, how);
}

/* ---- from the multiplexer ---- */

static int on_hello(FwdConn *c, const AgentFrame *fr) {
        AgentHello h;
        if (c->state != CONN_HELLO || agent_hello_parse(fr->payload, fr->len, &h) < 0 || h.nonce != c->nonce)
                return CONN_KEEP; /* not the answer to ours */
        if (h.version != AGENT_PROTOCOL_VERSION || !agent_hello_has_cap(&h, "connect")) {
                log_warning("vm %s: the guest agent cannot forward ports (protocol %u, no \"connect\"): rebuild "
                            "the image (banger image build) or import it again",
                            c->f->name, h.version);
                return CONN_RESET;
        }
        uint8_t req[AGENT_CONNECT_REQUEST_SIZE];
        agent_connect_spec_encode(&(AgentConnectSpec){ .port = c->guest_port }, req);
        c->state = CONN_OPEN;
        c->credit = h.window; /* data may follow the OPEN at once */
        c->granted = FWD_WINDOW;
        return queue_frame(c, &(AgentStreamFrame){ .type = AGENT_MSG_OPEN,
                                                   .id = STREAM_ID,
                                                   .kind = AGENT_STREAM_CONNECT,
                                                   .value = FWD_WINDOW,
                                                   .data = req,
                                                   .len = sizeof(req) }) < 0
                       ? CONN_RESET
                       : CONN_KEEP;
}

static int on_close(FwdConn *c, const AgentStreamFrame *s) {
        if (s->value != 0) {
                log_debug("vm %s: forward to guest port %u: %.*s", c->f->name, c->guest_port, (int) s->len,
                          (const char *) s->data);
                return CONN_RESET;
        }
        /* Done on the guest's side: what is buffered still goes to the peer. */
        c->agent_closed = true;
        c->mux_src = sd_event_source_disable_unref(c->mux_src);
        c->mux = safe_close(c->mux);
        return tcp_flush(c);
}

static int on_stream_frame(FwdConn *c, const AgentFrame *fr) {
        AgentStreamFrame s;
        if (c->state != CONN_OPEN || agent_stream_frame_parse(fr, &s) < 0 || s.id != STREAM_ID)
                return CONN_RESET;
        switch (s.type) {
        case AGENT_MSG_OPENED:
                c->timer = sd_event_source_disable_unref(c->timer);
                return CONN_KEEP;
        case AGENT_MSG_DATA:
                if (s.channel != AGENT_CHANNEL_STDOUT || s.len > c->granted)
                        return CONN_RESET;
                c->granted -= s.len;
                if (c->agent_eof)
                        return CONN_RESET;
                return outbuf_append(&c->tcp_out, s.data, s.len) < 0 ? CONN_RESET : CONN_KEEP;
        case AGENT_MSG_EOF:
                c->agent_eof = true;
                return pending(&c->tcp_out) == 0 ? tcp_flush(c) : CONN_KEEP;
        case AGENT_MSG_WINDOW:
                c->credit += s.value;
                return c->credit > AGENT_WINDOW_MAX ? CONN_RESET : CONN_KEEP;
        case AGENT_MSG_CLOSE:
                return on_close(c, &s);
        default:
                return CONN_KEEP;
        }
}

static int on_frame(FwdConn *c, const AgentFrame *fr) {
        if (fr->type == AGENT_MSG_HELLO)
                return on_hello(c, fr);
        if (fr->type == AGENT_MSG_ERROR) {
                _cleanup_free_ char *text = NULL;
                int e = 0;
                (void) agent_error_parse(fr->payload, fr->len, &e, &text);
                log_warning("vm %s: forward to guest port %u: %s", c->f->name, c->guest_port,
                            text ? text : "error from the guest agent");
                return CONN_RESET;
        }
        return agent_msg_is_stream(fr->type) ? on_stream_frame(c, fr) : CONN_RESET;
}

static int mux_read(FwdConn *c) {
        ssize_t n = read(c->mux, c->in + c->in_len, FWD_IN_MAX - c->in_len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return CONN_KEEP;
        if (n <= 0)
                return CONN_RESET; /* the multiplexer went away (the VM stops) */
        c->in_len += (size_t) n;
        size_t off = 0;
        int how = CONN_KEEP;
        while (how == CONN_KEEP && c->mux >= 0) {
                AgentFrame fr;
                long k = agent_frame_parse(c->in + off, c->in_len - off, &fr);
                if (k == 0 && c->in_len - off == FWD_IN_MAX)
                        how = CONN_RESET; /* a frame larger than any we expect */
                if (k <= 0) {
                        how = k < 0 ? CONN_RESET : how;
                        break;
                }
                how = on_frame(c, &fr);
                off += (size_t) k;
        }
        if (how == CONN_KEEP && c->in) {
                memmove(c->in, c->in + off, c->in_len - off);
                c->in_len -= off;
        }
        return how;
}

static int on_mux_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        FwdConn *c = userdata;
        int how = CONN_KEEP;
        if (revents & EPOLLOUT)
                how = mux_flush(c);
        if (how == CONN_KEEP && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                how = mux_read(c);
        return conn_settle(c, how);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        FwdConn *c = userdata;
        log_warning("vm %s: forward to guest port %u: the guest agent did not answer in time", c->f->name,
                    c->guest_port);
        conn_end(c, CONN_RESET);
        return 0;
}

static int conn_start(FwdConn *c) {
        uint32_t nonce;
        if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
                return -errno;
        c->nonce = nonce | 1;
        uint8_t hello[AGENT_HELLO_FRAME_SIZE];
        agent_hello_encode(hello, AGENT_PROTOCOL_VERSION, c->nonce);
        int r = outbuf_append(&c->mux_out, hello, sizeof(hello));
        if (r < 0)
                return r;
        sd_event *e = c->f->event;
        r = sd_event_add_io(e, &c->tcp_src, c->tcp, 0, on_tcp_io, c);
        if (r >= 0)
                r = sd_event_add_io(e, &c->mux_src, c->mux, EPOLLIN | EPOLLOUT, on_mux_io, c);
        if (r >= 0)
                r = sd_event_add_time_relative(e, &c->timer, CLOCK_MONOTONIC, FWD_OPEN_TIMEOUT, 0, on_timeout, c);
        return r;
}

int fwd_conn_new(AgentForwarder *f, const FwdListener *l, int tcp_fd) {
        FwdConn *c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(tcp_fd);
                return -ENOMEM;
        }
        *c = (FwdConn){ .f = f, .key = l->key, .guest_port = l->guest_port, .tcp = tcp_fd, .mux = -EBADF };
        c->next = f->conns;
        f->conns = c;
        f->n_conns++;
        int one = 1;
        (void) setsockopt(c->tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->in = malloc(FWD_IN_MAX);
        /* A Unix socket connects at once or not at all: this never blocks. */
        c->mux = c->in ? unix_connect(f->mux_path, SOCK_NONBLOCK) : -ENOMEM;
        int r = c->mux < 0 ? c->mux : conn_start(c);
        if (r < 0) {
                conn_end(c, CONN_RESET);
                return r;
        }
        conn_update(c);
        fwd_conns_changed(f);
        return 0;
}
