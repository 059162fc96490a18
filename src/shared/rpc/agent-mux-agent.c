/* SPDX-License-Identifier: MIT */
/* The multiplexer's side of the agent transport: connecting (in a helper
 * thread), the hello (repeated until answered; stale bytes on a byte
 * stream skipped), reading and writing without blocking, and starting
 * over when the connection or the agent goes away. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "agent-mux-internal.h"
#include "log.h"

#define CONNECT_TIMEOUT (1 * USEC_PER_SEC)
#define HELLO_RESEND (1 * USEC_PER_SEC)
#define BACKOFF_MIN (100 * USEC_PER_MSEC)
#define BACKOFF_MAX (1 * USEC_PER_SEC)

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void arm_timer(AgentMux *m, usec_t after) {
        usec_t now;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (!m->timer) {
                if (sd_event_add_time(m->event, &m->timer, CLOCK_MONOTONIC, now + after, 10 * USEC_PER_MSEC, on_timer,
                                      m) < 0)
                        log_warning("agent mux %s: cannot arm a timer", m->name);
                return;
        }
        (void) sd_event_source_set_time(m->timer, now + after);
        (void) sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
}

/* ---- the connection ---- */

/* Answers held back for streams of a session that has ended. */
static void drop_lazy(AgentMux *m) {
        m->alazy.off = m->alazy.len = 0;
        if (m->lazy_timer)
                (void) sd_event_source_set_enabled(m->lazy_timer, SD_EVENT_OFF);
}

static void close_transport(AgentMux *m) {
        m->aio = sd_event_source_disable_unref(m->aio);
        m->afd = safe_close(m->afd);
        m->ain_len = 0;
        m->aout.off = m->aout.len = 0;
        drop_lazy(m);
}

static void retry_later(AgentMux *m) {
        m->state = AGENT_DOWN;
        m->backoff = m->backoff ? MIN(m->backoff * 2, BACKOFF_MAX) : BACKOFF_MIN;
        arm_timer(m, m->backoff);
}

static void connection_lost(AgentMux *m, const char *why) {
        log_info("agent mux %s: %s", m->name, why);
        close_transport(m);
        mux_agent_lost(m, why);
        retry_later(m);
}

static void send_hello(AgentMux *m) {
        uint8_t hello[AGENT_HELLO_FRAME_SIZE];
        if (getrandom(&m->nonce, sizeof(m->nonce), GRND_NONBLOCK) != sizeof(m->nonce))
                m->nonce = (uint32_t) now_monotonic();
        m->nonce |= 1; /* 0 is an agent's announcement */
        agent_hello_encode(hello, AGENT_PROTOCOL_VERSION, m->nonce);
        (void) mux_agent_send(m, hello, sizeof(hello));
        arm_timer(m, HELLO_RESEND);
}

static int flush(AgentMux *m) {
        while (m->aout.off < m->aout.len) {
                ssize_t n = write(m->afd, m->aout.data + m->aout.off, m->aout.len - m->aout.off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n < 0)
                        return -errno;
                m->aout.off += (size_t) n;
        }
        if (m->aout.off == m->aout.len) {
                m->aout.off = m->aout.len = 0;
                (void) sd_event_source_set_io_events(m->aio, EPOLLIN);
        }
        if (m->clients_paused && m->aout.len - m->aout.off < MUX_AGENT_OUT_HIGH / 2)
                mux_clients_resume(m);
        return 0;
}

/* What was held back goes first: an id is free for a new OPEN once our
 * CLOSE for it is queued, so that CLOSE must reach the agent before the
 * OPEN does. */
static int release_lazy(AgentMux *m) {
        if (m->alazy.off == m->alazy.len)
                return 0;
        int r = outbuf_append(&m->aout, m->alazy.data + m->alazy.off, m->alazy.len - m->alazy.off);
        if (r < 0)
                return r;
        drop_lazy(m);
        return 0;
}

int mux_agent_send(AgentMux *m, const void *p, size_t n) {
        if (!m->aio)
                return -ENOTCONN;
        int r = release_lazy(m);
        if (r >= 0)
                r = outbuf_append(&m->aout, p, n);
        if (r < 0)
                return r;
        return sd_event_source_set_io_events(m->aio, EPOLLIN | EPOLLOUT);
}

static int on_lazy_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        AgentMux *m = userdata;
        if (m->aio && release_lazy(m) >= 0)
                (void) sd_event_source_set_io_events(m->aio, EPOLLIN | EPOLLOUT);
        return 0;
}

int mux_agent_send_lazy(AgentMux *m, const void *p, size_t n) {
        if (!m->aio)
                return -ENOTCONN;
        bool armed = m->alazy.off < m->alazy.len;
        int r = outbuf_append(&m->alazy, p, n);
        if (r < 0 || armed)
                return r;
        usec_t now;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (!m->lazy_timer)
                r = sd_event_add_time(m->event, &m->lazy_timer, CLOCK_MONOTONIC, now + m->lazy_delay, 5 * USEC_PER_MSEC,
                                      on_lazy_timer, m);
        else if ((r = sd_event_source_set_time(m->lazy_timer, now + m->lazy_delay)) >= 0)
                r = sd_event_source_set_enabled(m->lazy_timer, SD_EVENT_ONESHOT);
        if (r < 0) /* no timer: send it now rather than never */
                r = release_lazy(m) < 0 ? -ENOMEM : sd_event_source_set_io_events(m->aio, EPOLLIN | EPOLLOUT);
        return r;
}

/* ---- what the agent says ---- */

/* Waiting for our hello's answer: skip what is not it. Returns the bytes
 * consumed; sets the state when found. */
static size_t scan_hello(AgentMux *m) {
        size_t off = 0;
        for (; off < m->ain_len; off++) {
                const uint8_t *p = m->ain + off;
                size_t avail = m->ain_len - off;
                if (p[0] != AGENT_MSG_HELLO ||
                    (avail > AGENT_FRAME_HEADER_SIZE && memcmp(p + AGENT_FRAME_HEADER_SIZE, AGENT_HELLO_MAGIC,
                                                               MIN(avail - AGENT_FRAME_HEADER_SIZE, (size_t) 4))))
                        continue;
                AgentFrame f;
                long n = agent_frame_parse(p, avail, &f);
                if (n == 0)
                        break;
                AgentHello h;
                if (n < 0 || agent_hello_parse(f.payload, f.len, &h) < 0 || h.nonce != m->nonce)
                        continue;
                if (h.version == 1)
                        m->state = AGENT_OUTDATED;
                else if (h.version == AGENT_PROTOCOL_VERSION && h.window > 0 && h.max_streams > 0)
                        m->state = AGENT_READY;
                else
                        continue;
                m->info = h;
                m->backoff = 0;
                (void) sd_event_source_set_enabled(m->timer, SD_EVENT_OFF);
                log_info("agent mux %s: the guest agent answered (protocol %u)", m->name, h.version);
                return off + (size_t) n;
        }
        return off;
}

static void agent_hello(AgentMux *m, const AgentFrame *f) {
        AgentHello h;
        if (agent_hello_parse(f->payload, f->len, &h) < 0 || h.nonce != 0)
                return; /* the answer to a repeated hello of ours */
        /* An agent's announcement: a new agent, whose streams are not ours. */
        drop_lazy(m);
        mux_agent_lost(m, "the guest agent restarted");
        m->state = AGENT_HELLO;
        send_hello(m);
}

/* Returns the bytes consumed; false in *ok when the connection must go. */
static size_t process_ready(AgentMux *m, bool *ok) {
        size_t off = 0;
        while (m->state == AGENT_READY) {
                AgentFrame f;
                long n = agent_frame_parse(m->ain + off, m->ain_len - off, &f);
                if (n == 0)
                        break;
                if (n < 0) {
                        *ok = false;
                        break;
                }
                if (f.type == AGENT_MSG_HELLO)
                        agent_hello(m, &f);
                else if (f.type == AGENT_MSG_ERROR)
                        log_debug("agent mux %s: the agent reported an error", m->name);
                else if (agent_msg_is_stream(f.type))
                        mux_route_from_agent(m, &f);
                off += (size_t) n;
        }
        return off;
}

static void consume(AgentMux *m, size_t n) {
        memmove(m->ain, m->ain + n, m->ain_len - n);
        m->ain_len -= n;
}

static bool process_input(AgentMux *m) {
        bool ok = true;
        for (AgentState before = AGENT_DOWN; ok && m->ain_len > 0 && before != m->state;) {
                before = m->state;
                if (m->state == AGENT_HELLO) {
                        consume(m, scan_hello(m));
                        if (m->state != AGENT_HELLO)
                                mux_agent_ready(m);
                }
                if (m->state == AGENT_READY)
                        consume(m, process_ready(m, &ok));
                if (m->state == AGENT_OUTDATED)
                        m->ain_len = 0;
        }
        return ok;
}

static int on_agent_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AgentMux *m = userdata;
        if ((revents & EPOLLOUT) && flush(m) < 0) {
                connection_lost(m, "writing to the guest agent failed");
                return 0;
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        size_t cap = AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX;
        ssize_t n = read(fd, m->ain + m->ain_len, cap - m->ain_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                connection_lost(m,
                                n == 0 ? "the guest agent's transport closed" : "reading from the guest agent failed");
                return 0;
        }
        m->ain_len += (size_t) n;
        if (!process_input(m) || m->ain_len == cap)
                connection_lost(m, "the guest agent sent a malformed frame");
        return 0;
}

/* ---- connecting ---- */

static void *connector_main(void *p) {
        AgentMux *m = p;
        int fd = m->connect(m->userdata, CONNECT_TIMEOUT);
        (void) !write(m->conn_pipe[1], &fd, sizeof(fd));
        return NULL;
}

static void attach(AgentMux *m, int fd) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
            sd_event_add_io(m->event, &m->aio, fd, EPOLLIN, on_agent_io, m) < 0) {
                safe_close(fd);
                retry_later(m);
                return;
        }
        m->afd = fd;
        m->state = AGENT_HELLO;
        send_hello(m);
}

static int on_connected(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AgentMux *m = userdata;
        int result = -EIO;
        if (read(fd, &result, sizeof(result)) != (ssize_t) sizeof(result))
                return 0;
        (void) pthread_join(m->connector, NULL);
        m->connector_running = false;
        if (result < 0) {
                log_debug("agent mux %s: cannot reach the guest agent yet: %s", m->name, strerror(-result));
                retry_later(m);
        } else
                attach(m, result);
        return 0;
}

static void start_connect(AgentMux *m) {
        m->state = AGENT_CONNECTING;
        if (pthread_create(&m->connector, NULL, connector_main, m) != 0) {
                retry_later(m);
                return;
        }
        m->connector_running = true;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        AgentMux *m = userdata;
        if (m->state == AGENT_DOWN)
                start_connect(m);
        else if (m->state == AGENT_HELLO && m->aout.off == m->aout.len)
                send_hello(m); /* unanswered: the agent may not be up yet, or missed it */
        else if (m->state == AGENT_HELLO)
                arm_timer(m, HELLO_RESEND);
        return 0;
}

int mux_agent_start(AgentMux *m) {
        m->ain = malloc(AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX);
        if (!m->ain)
                return -ENOMEM;
        if (pipe2(m->conn_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        int r = sd_event_add_io(m->event, &m->conn_src, m->conn_pipe[0], EPOLLIN, on_connected, m);
        if (r < 0)
                return r;
        start_connect(m);
        return 0;
}

void mux_agent_stop(AgentMux *m) {
        if (m->connector_running) {
                /* Bounded by the connect timeout. */
                (void) pthread_join(m->connector, NULL);
                m->connector_running = false;
                int fd;
                if (read(m->conn_pipe[0], &fd, sizeof(fd)) == (ssize_t) sizeof(fd) && fd >= 0)
                        safe_close(fd);
        }
        close_transport(m);
        m->conn_src = sd_event_source_disable_unref(m->conn_src);
        m->timer = sd_event_source_disable_unref(m->timer);
        m->lazy_timer = sd_event_source_disable_unref(m->lazy_timer);
        m->conn_pipe[0] = safe_close(m->conn_pipe[0]);
        m->conn_pipe[1] = safe_close(m->conn_pipe[1]);
        outbuf_free(&m->aout);
        outbuf_free(&m->alazy);
        free(m->ain);
        m->ain = NULL;
}
