/* SPDX-License-Identifier: MIT */
/* The multiplexer's clients: the listening socket, each client's hello,
 * the mapping of stream ids both ways, the window checks and the CLOSE
 * bookkeeping that frees an id on each side. */
#include "agent-mux.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-mux-internal.h"
#include "log.h"
#include "socket-util.h"

/* A client's unread output beyond the windows it granted: only control
 * frames can put it there, so this much means it does not read at all. */
#define CLIENT_OUT_SLACK (256U * 1024U)

typedef enum ClientState {
        CLIENT_NEW,     /* its first frame must be a hello */
        CLIENT_WAITING, /* said hello; the agent has not answered ours yet */
        CLIENT_READY,
} ClientState;

struct MuxClient {
        AgentMux *m;
        int fd;
        sd_event_source *io;
        uint8_t *in;
        size_t in_len, in_cap;
        OutBuf out;
        ClientState state;
        uint32_t nonce;
        unsigned n_streams;
        uint64_t granted; /* sum of the windows it granted: what the agent may put in out */
        bool closing;     /* flush what is queued, then close */
        MuxClient *next;
};

/* ---- buffers ---- */

int outbuf_append(OutBuf *b, const void *p, size_t n) {
        if (b->off > 0 && b->off == b->len)
                b->off = b->len = 0;
        if (b->len + n > b->cap && b->off > 0) {
                memmove(b->data, b->data + b->off, b->len - b->off);
                b->len -= b->off;
                b->off = 0;
        }
        if (b->len + n > b->cap) {
                size_t cap = MAX(b->cap * 2, b->len + n);
                uint8_t *d = realloc(b->data, cap);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
}

void outbuf_free(OutBuf *b) {
        free(b->data);
        *b = (OutBuf){};
}

/* ---- clients: output ---- */

static void client_free(MuxClient *c);

static void client_update_events(MuxClient *c) {
        uint32_t ev = (c->closing || c->m->clients_paused ? 0 : EPOLLIN) | (c->out.off < c->out.len ? EPOLLOUT : 0);
        (void) sd_event_source_set_io_events(c->io, ev);
}

static int client_send(MuxClient *c, const void *p, size_t n) {
        int r = outbuf_append(&c->out, p, n);
        if (r < 0) {
                c->closing = true; /* out of memory: this client goes */
                c->out.off = c->out.len = 0;
        }
        client_update_events(c);
        return r;
}

static void client_send_frame(MuxClient *c, const AgentStreamFrame *f) {
        uint8_t buf[AGENT_FRAME_HEADER_SIZE + 16 + AGENT_ERROR_MAX_TEXT];
        if (agent_stream_frame_size(f) <= sizeof(buf))
                client_send(c, buf, agent_stream_frame_encode(f, buf));
}

static void client_error(MuxClient *c, int err, const char *fmt, ...) _printf_(3, 4);
static void client_error(MuxClient *c, int err, const char *fmt, ...) {
        char text[AGENT_ERROR_MAX_TEXT];
        uint8_t buf[AGENT_FRAME_HEADER_SIZE + 4 + AGENT_ERROR_MAX_TEXT];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        client_send(c, buf, agent_error_encode(buf, sizeof(buf), err, text));
}

static void client_close_stream(MuxClient *c, uint32_t id, int err, const char *text) {
        client_send_frame(c, &(AgentStreamFrame){ .type = AGENT_MSG_CLOSE,
                                                  .id = id,
                                                  .value = (uint32_t) err,
                                                  .data = (const uint8_t *) text,
                                                  .len = strlen(text) });
}

static void client_answer_hello(MuxClient *c) {
        AgentMux *m = c->m;
        if (m->state == AGENT_OUTDATED) {
                client_error(c, EPROTONOSUPPORT, "vm %s: %s", m->name, AGENT_V1_MESSAGE);
                c->closing = true;
                client_update_events(c);
                return;
        }
        AgentHello h = m->info;
        h.nonce = c->nonce;
        h.max_streams = MIN(h.max_streams, AGENT_MUX_CLIENT_STREAMS);
        uint8_t buf[AGENT_FRAME_HEADER_SIZE + AGENT_HELLO_V2_FIXED + AGENT_CAPS_MAX];
        client_send(c, buf, agent_hello_reply_encode(&h, buf, sizeof(buf)));
        c->state = CLIENT_READY;
}

void mux_agent_ready(AgentMux *m) {
        for (MuxClient *c = m->clients; c; c = c->next)
                if (c->state == CLIENT_WAITING)
                        client_answer_hello(c);
}

/* ---- streams ---- */

static MuxStream *stream_by_mux_id(AgentMux *m, uint32_t id) {
        for (MuxStream *s = m->streams; s; s = s->next)
                if (s->mux_id == id && !(s->host_close_sent && s->agent_close_seen))
                        return s;
        return NULL;
}

static MuxStream *stream_by_client_id(MuxClient *c, uint32_t id) {
        for (MuxStream *s = c->m->streams; s; s = s->next)
                if (s->client == c && s->client_id == id && !(s->client_close_sent && s->client_close_seen))
                        return s;
        return NULL;
}

static void client_forget_stream(MuxClient *c, const MuxStream *s) {
        c->n_streams--;
        c->granted -= s->window0;
}

/* Free streams whose ids are released on both sides. */
static void streams_collect(AgentMux *m) {
        for (MuxStream **pp = &m->streams; *pp;) {
                MuxStream *s = *pp;
                bool agent_done = s->host_close_sent && s->agent_close_seen;
                bool client_done = !s->client || (s->client_close_sent && s->client_close_seen);
                if (agent_done && client_done) {
                        if (s->client)
                                client_forget_stream(s->client, s);
                        *pp = s->next;
                        m->n_streams--;
                        free(s);
                        continue;
                }
                pp = &s->next;
        }
}

static void send_agent_close(AgentMux *m, MuxStream *s, int err) {
        if (s->host_close_sent)
                return;
        s->host_close_sent = true;
        uint8_t buf[64];
        AgentStreamFrame f = { .type = AGENT_MSG_CLOSE, .id = s->mux_id, .value = (uint32_t) err };
        if (mux_agent_send(m, buf, agent_stream_frame_encode(&f, buf)) < 0)
                s->agent_close_seen = true; /* no connection: nothing more will come */
}

/* A broken promise about a window: the stream ends on both sides. */
static void stream_violation(AgentMux *m, MuxStream *s, const char *who) {
        log_warning("agent mux %s: %s exceeded its window on a stream; closing it", m->name, who);
        send_agent_close(m, s, EPROTO);
        if (s->client && !s->client_close_sent) {
                s->client_close_sent = true;
                client_close_stream(s->client, s->client_id, EPROTO, "flow control window exceeded");
        }
}

/* Send a frame (whose bytes start at frame) to the other side under id. */
static void forward(AgentMux *m, MuxClient *to_client, const AgentFrame *f, uint32_t id) {
        size_t n = AGENT_FRAME_HEADER_SIZE + f->len;
        const uint8_t *start = f->payload - AGENT_FRAME_HEADER_SIZE;
        if (to_client) {
                /* Appended last (the buffer may have been compacted on the way). */
                if (client_send(to_client, start, n) >= 0)
                        agent_stream_frame_set_id(to_client->out.data + to_client->out.len - n, id);
                return;
        }
        uint8_t *copy = malloc(n);
        if (!copy)
                return;
        memcpy(copy, start, n);
        agent_stream_frame_set_id(copy, id);
        (void) mux_agent_send(m, copy, n);
        free(copy);
}

/* Our answer to a CLOSE the agent sent: the agent has let the stream go
 * and only needs the answer before the id comes back, which
 * mux_agent_send() sees to. A poweroff waits for it: not held back. */
static void answer_close_lazily(AgentMux *m, const AgentFrame *f, uint32_t id) {
        uint8_t buf[AGENT_FRAME_HEADER_SIZE + 8 + AGENT_ERROR_MAX_TEXT];
        size_t n = AGENT_FRAME_HEADER_SIZE + f->len;
        if (n > sizeof(buf)) {
                forward(m, NULL, f, id);
                return;
        }
        memcpy(buf, f->payload - AGENT_FRAME_HEADER_SIZE, n);
        agent_stream_frame_set_id(buf, id);
        (void) mux_agent_send_lazy(m, buf, n);
}

void mux_route_from_agent(AgentMux *m, const AgentFrame *f) {
        AgentStreamFrame s;
        if (agent_stream_frame_parse(f, &s) < 0)
                return;
        MuxStream *st = stream_by_mux_id(m, s.id);
        if (!st || st->agent_close_seen)
                return; /* late, for a stream already gone */
        MuxClient *c = st->client;
        switch (s.type) {
        case AGENT_MSG_DATA:
                if (s.len > st->to_client_credit) {
                        stream_violation(m, st, "the guest agent");
                        return;
                }
                st->to_client_credit -= s.len;
                break;
        case AGENT_MSG_WINDOW:
                st->to_agent_credit += s.value;
                break;
        case AGENT_MSG_CLOSE:
                st->agent_close_seen = true;
                if (c && st->client_close_sent)
                        c = NULL; /* it had its CLOSE from us already */
                if (c)
                        st->client_close_sent = true;
                if (!st->client)
                        send_agent_close(m, st, 0);
                break;
        case AGENT_MSG_OPENED:
        case AGENT_MSG_EXIT:
        case AGENT_MSG_EOF: /* a connect stream: the guest's end of data */
                break;
        default:
                return; /* not frames an agent sends */
        }
        if (c && !(s.type != AGENT_MSG_CLOSE && st->client_close_sent))
                forward(m, c, f, st->client_id);
        streams_collect(m);
}

void mux_agent_lost(AgentMux *m, const char *why) {
        for (MuxStream *s = m->streams; s; s = s->next) {
                if (s->client && !s->client_close_sent) {
                        s->client_close_sent = true;
                        client_close_stream(s->client, s->client_id, ECONNRESET, why);
                }
                s->host_close_sent = s->agent_close_seen = true;
        }
        streams_collect(m);
}

/* ---- clients: input ---- */

static void client_open(MuxClient *c, const AgentFrame *f, const AgentStreamFrame *s) {
        AgentMux *m = c->m;
        if (stream_by_client_id(c, s->id)) {
                client_error(c, EEXIST, "stream %u is already open", s->id);
                return;
        }
        if (m->state != AGENT_READY) {
                client_close_stream(c, s->id, ENOTCONN, "the guest agent is not connected");
                return;
        }
        if (c->n_streams >= AGENT_MUX_CLIENT_STREAMS || m->n_streams >= m->info.max_streams) {
                client_close_stream(c, s->id, EMFILE, "too many streams open on this VM's agent");
                return;
        }
        MuxStream *st = calloc(1, sizeof(*st));
        if (!st) {
                client_close_stream(c, s->id, ENOMEM, "out of memory");
                return;
        }
        do
                m->next_id = m->next_id >= 0x7ffffffdU ? 1 : m->next_id + 2;
        while (stream_by_mux_id(m, m->next_id));
        *st = (MuxStream){ .mux_id = m->next_id,
                           .client_id = s->id,
                           .client = c,
                           .to_client_credit = s->value,
                           .to_agent_credit = m->info.window,
                           .window0 = s->value,
                           .kind = s->kind,
                           .next = m->streams };
        m->streams = st;
        m->n_streams++;
        c->n_streams++;
        c->granted += s->value;
        forward(m, NULL, f, st->mux_id);
}

static void client_stream_frame(MuxClient *c, const AgentFrame *f) {
        AgentStreamFrame s;
        if (agent_stream_frame_parse(f, &s) < 0) {
                client_error(c, EBADMSG, "malformed %s frame", agent_msg_to_string(f->type));
                return;
        }
        if (s.type == AGENT_MSG_OPEN) {
                client_open(c, f, &s);
                return;
        }
        MuxStream *st = stream_by_client_id(c, s.id);
        if (!st || st->client_close_seen)
                return; /* late, for a stream that ended */
        switch (s.type) {
        case AGENT_MSG_DATA:
                if (s.len > st->to_agent_credit) {
                        stream_violation(c->m, st, "a client");
                        return;
                }
                st->to_agent_credit -= s.len;
                break;
        case AGENT_MSG_WINDOW:
                st->to_client_credit += s.value;
                if (st->to_client_credit > AGENT_WINDOW_MAX) {
                        stream_violation(c->m, st, "a client");
                        return;
                }
                break;
        case AGENT_MSG_CLOSE:
                st->client_close_seen = true;
                if (st->host_close_sent) {
                        streams_collect(c->m);
                        return;
                }
                st->host_close_sent = true;
                if (st->agent_close_seen && st->kind != AGENT_STREAM_POWEROFF) {
                        answer_close_lazily(c->m, f, st->mux_id);
                        streams_collect(c->m);
                        return;
                }
                break;
        case AGENT_MSG_EOF:
        case AGENT_MSG_SIGNAL:
        case AGENT_MSG_RESIZE:
                break;
        default:
                client_error(c, EBADMSG, "%s is not a host frame", agent_msg_to_string(s.type));
                return;
        }
        if (!(st->host_close_sent && s.type != AGENT_MSG_CLOSE))
                forward(c->m, NULL, f, st->mux_id);
        streams_collect(c->m);
}

static void client_hello(MuxClient *c, const AgentFrame *f) {
        AgentHello h;
        if (agent_hello_parse(f->payload, f->len, &h) < 0 || h.version < AGENT_PROTOCOL_VERSION) {
                client_error(c, EPROTONOSUPPORT, "this multiplexer speaks agent protocol %u", AGENT_PROTOCOL_VERSION);
                c->closing = true;
                return;
        }
        c->nonce = h.nonce;
        if (c->m->state == AGENT_READY || c->m->state == AGENT_OUTDATED)
                client_answer_hello(c);
        else
                c->state = CLIENT_WAITING;
}

/* agent_client_hello() says hello again every 500 ms until answered (a
 * byte stream may have lost it): the same hello again, while we wait for the
 * agent or after our answer crossed it, is not an error. */
static bool hello_again(const MuxClient *c, const AgentFrame *f) {
        AgentHello h;
        return c->state != CLIENT_NEW && agent_hello_parse(f->payload, f->len, &h) >= 0 && h.nonce == c->nonce;
}

/* Returns false when the client must go. */
static bool client_frame(MuxClient *c, const AgentFrame *f) {
        if (f->type == AGENT_MSG_HELLO && c->state == CLIENT_NEW) {
                client_hello(c, f);
                return true;
        }
        if (f->type == AGENT_MSG_HELLO && hello_again(c, f))
                return true;
        if (c->state != CLIENT_READY) {
                client_error(c, EPROTO, "expected hello");
                return false;
        }
        if (agent_msg_is_stream(f->type))
                client_stream_frame(c, f);
        else if (f->type != AGENT_MSG_ERROR)
                client_error(c, EBADMSG, "unexpected message type 0x%02x", f->type);
        return true;
}

static bool client_process(MuxClient *c) {
        size_t off = 0;
        bool ok = true;
        while (ok && !c->closing && !c->m->clients_paused) {
                AgentFrame f;
                long n = agent_frame_parse(c->in + off, c->in_len - off, &f);
                if (n == 0)
                        break;
                if (n < 0) {
                        client_error(c, EMSGSIZE, "frame exceeds the size limit");
                        return false;
                }
                ok = client_frame(c, &f);
                off += (size_t) n;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        if (c->m->aout.len - c->m->aout.off >= MUX_AGENT_OUT_HIGH && !c->m->clients_paused) {
                c->m->clients_paused = true; /* the transport is the bottleneck: everyone waits */
                for (MuxClient *x = c->m->clients; x; x = x->next)
                        client_update_events(x);
        }
        return ok;
}

void mux_clients_resume(AgentMux *m) {
        m->clients_paused = false;
        for (MuxClient *c = m->clients; c; c = c->next) {
                client_update_events(c);
                if (c->in_len > 0 && !client_process(c))
                        c->closing = true;
        }
}

static int client_read(MuxClient *c) {
        size_t need = c->in_len + AGENT_DATA_CHUNK + 64;
        if (need > c->in_cap) {
                size_t cap = MIN(MAX(need, c->in_cap * 2), (size_t) AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX);
                if (cap <= c->in_len)
                        return -EMSGSIZE;
                uint8_t *n = realloc(c->in, cap);
                if (!n)
                        return -ENOMEM;
                c->in = n;
                c->in_cap = cap;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0)
                return -ECONNRESET;
        c->in_len += (size_t) n;
        return client_process(c) ? 0 : -EPROTO;
}

static int client_flush(MuxClient *c) {
        while (c->out.off < c->out.len) {
                ssize_t n = send(c->fd, c->out.data + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n < 0)
                        return -errno;
                c->out.off += (size_t) n;
        }
        if (c->out.off == c->out.len)
                c->out.off = c->out.len = 0;
        return 0;
}

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        MuxClient *c = userdata;
        int r = 0;
        if (revents & EPOLLOUT)
                r = client_flush(c);
        if (r >= 0 && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->closing)
                r = client_read(c);
        if (r >= 0 && c->out.len - c->out.off > c->granted + CLIENT_OUT_SLACK)
                r = -ENOBUFS; /* it does not read what it asked for */
        if (r < 0 || (c->closing && c->out.off == c->out.len)) {
                if (r < 0 && r != -ECONNRESET)
                        (void) client_flush(c);
                client_free(c);
                return 0;
        }
        client_update_events(c);
        return 0;
}

static void client_free(MuxClient *c) {
        AgentMux *m = c->m;
        log_debug("agent mux %s: a client leaves (%u streams)", m->name, c->n_streams);
        for (MuxStream *s = m->streams; s; s = s->next) {
                if (s->client != c)
                        continue;
                send_agent_close(m, s, 0); /* the agent kills what still runs */
                s->client = NULL;
                client_forget_stream(c, s);
        }
        streams_collect(m);
        for (MuxClient **pp = &m->clients; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        m->n_clients--;
                        m->usage_clients = m->n_clients;
                        m->usage_last = now_realtime();
                        break;
                }
        sd_event_source_disable_unref(c->io);
        safe_close(c->fd);
        free(c->in);
        outbuf_free(&c->out);
        free(c);
}

/* ---- the socket ---- */

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AgentMux *m = userdata;
        int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
                return 0;
        if (m->n_clients >= AGENT_MUX_MAX_CLIENTS) {
                log_warning("agent mux %s: refusing a client: %u connected already", m->name, m->n_clients);
                safe_close(cfd);
                return 0;
        }
        MuxClient *c = calloc(1, sizeof(*c));
        if (!c || sd_event_add_io(m->event, &c->io, cfd, EPOLLIN, on_client_io, c) < 0) {
                free(c);
                safe_close(cfd);
                return 0;
        }
        c->m = m;
        c->fd = cfd;
        c->next = m->clients;
        m->clients = c;
        m->n_clients++;
        m->usage_clients = m->n_clients;
        m->usage_last = now_realtime();
        client_update_events(c);
        return 0;
}

static int listen_private(const char *path) {
        struct sockaddr_un sa;
        int r = sockaddr_un_set(&sa, path, NULL);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void) unlink(path); /* left by an earlier daemon */
        /* fchmod before bind applies to the socket file: 0600 from birth. */
        if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int agent_mux_new(sd_event *e, const AgentMuxOptions *o, AgentMux **ret) {
        _cleanup_(agent_mux_freep) AgentMux *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        *m = (AgentMux){ .event = sd_event_ref(e),
                         .path = strdup(o->socket_path),
                         .name = strdup(o->name),
                         .connect = o->connect,
                         .userdata = o->userdata,
                         .lazy_delay = o->lazy_delay ? o->lazy_delay : MUX_LAZY_DELAY,
                         .listen_fd = -EBADF,
                         .afd = -EBADF,
                         .conn_pipe = { -EBADF, -EBADF } };
        if (!m->path || !m->name)
                return -ENOMEM;
        m->usage_last = now_realtime();
        m->listen_fd = listen_private(o->socket_path);
        if (m->listen_fd < 0)
                return m->listen_fd;
        int r = sd_event_add_io(e, &m->listen_src, m->listen_fd, EPOLLIN, on_accept, m);
        if (r < 0)
                return r;
        r = mux_agent_start(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

void agent_mux_usage(AgentMux *m, unsigned *ret_clients, usec_t *ret_last) {
        *ret_clients = m->usage_clients;
        *ret_last = m->usage_last;
}

AgentMux *agent_mux_free(AgentMux *m) {
        if (!m)
                return NULL;
        while (m->clients)
                client_free(m->clients);
        while (m->streams) {
                MuxStream *s = m->streams;
                m->streams = s->next;
                free(s);
        }
        mux_agent_stop(m);
        m->listen_src = sd_event_source_disable_unref(m->listen_src);
        if (m->listen_fd >= 0 && m->path)
                (void) unlink(m->path);
        safe_close(m->listen_fd);
        sd_event_unref(m->event);
        free(m->path);
        free(m->name);
        free(m);
        return NULL;
}
