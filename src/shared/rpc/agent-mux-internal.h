/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by agent-mux.c (clients and routing) and agent-mux-agent.c (the
 * agent connection). Everything here runs on the mux's loop. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent-mux.h"
#include "agent-protocol.h"

/* Stop reading clients while this much waits for the agent transport. */
#define MUX_AGENT_OUT_HIGH (512U * 1024U)
/* How long an answer to the agent's CLOSE may wait for company, unless
 * AgentMuxOptions says otherwise. */
#define MUX_LAZY_DELAY (50 * USEC_PER_MSEC)

typedef struct OutBuf {
        uint8_t *data;
        size_t off, len, cap;
} OutBuf;

typedef struct MuxClient MuxClient;

typedef struct MuxStream {
        uint32_t mux_id;    /* on the agent connection */
        uint32_t client_id; /* as the client named it */
        MuxClient *client;  /* NULL once the client is gone */
        bool host_close_sent, agent_close_seen;
        bool client_close_sent, client_close_seen;
        uint64_t to_client_credit; /* what the agent may still send */
        uint64_t to_agent_credit;  /* what the client may still send */
        uint32_t window0;          /* the window the client opened it with */
        uint8_t kind;
        struct MuxStream *next;
} MuxStream;

typedef enum AgentState {
        AGENT_DOWN,       /* waiting to connect again */
        AGENT_CONNECTING, /* the helper thread is connecting */
        AGENT_HELLO,      /* hello sent, waiting for the answer */
        AGENT_READY,
        AGENT_OUTDATED, /* a protocol-1 agent: refused by name */
} AgentState;

struct AgentMux {
        sd_event *event;
        char *path, *name;
        int (*connect)(void *userdata, usec_t timeout);
        void *userdata;
        int listen_fd;
        sd_event_source *listen_src;

        /* the agent connection */
        AgentState state;
        int afd;
        sd_event_source *aio, *timer;
        uint8_t *ain;
        size_t ain_len;
        OutBuf aout;
        /* Our answers to the agent's CLOSEs, held back (at most
         * lazy_delay) to leave with the next frame to the agent: each
         * write that reaches a guest over virtio-serial costs it an
         * interrupt and a turn of the agent's loop. */
        OutBuf alazy;
        sd_event_source *lazy_timer;
        usec_t lazy_delay;
        uint32_t nonce;
        AgentHello info;
        usec_t backoff;
        pthread_t connector;
        bool connector_running;
        int conn_pipe[2];
        sd_event_source *conn_src;

        MuxStream *streams;
        unsigned n_streams;
        uint32_t next_id;
        MuxClient *clients;
        unsigned n_clients;
        bool clients_paused;
        /* For agent_mux_usage() from other threads: n_clients, and when a
         * client last came or went (realtime). */
        _Atomic unsigned usage_clients;
        _Atomic uint64_t usage_last;
};

/* agent-mux.c */
int outbuf_append(OutBuf *b, const void *p, size_t n);
void outbuf_free(OutBuf *b);
/* The agent is ready (or outdated): answer the clients waiting for a hello. */
void mux_agent_ready(AgentMux *m);
/* The agent connection is gone: every stream fails, every client is told. */
void mux_agent_lost(AgentMux *m, const char *why);
/* A frame from the agent for a stream. */
void mux_route_from_agent(AgentMux *m, const AgentFrame *f);
/* The agent's output queue drained below the mark: read clients again. */
void mux_clients_resume(AgentMux *m);

/* agent-mux-agent.c */
int mux_agent_start(AgentMux *m);
void mux_agent_stop(AgentMux *m);
/* Queue bytes for the agent (and watch for writability), after what
 * mux_agent_send_lazy() holds back. */
int mux_agent_send(AgentMux *m, const void *p, size_t n);
/* Queue bytes the agent needs soon, not at once: they leave with the next
 * mux_agent_send() or after lazy_delay. */
int mux_agent_send_lazy(AgentMux *m, const void *p, size_t n);
