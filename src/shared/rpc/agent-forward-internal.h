/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by agent-forward.c (the thread, its listeners and commands) and
 * agent-forward-conn.c (one forwarded connection). Everything here runs on
 * the forwarder's loop. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "agent-forward.h"
#include "agent-mux-internal.h" /* OutBuf */

typedef struct FwdConn {
        struct AgentForwarder *f;
        uint64_t key; /* of the listener that accepted it */
        uint16_t guest_port;
        int tcp, mux;
        sd_event_source *tcp_src, *mux_src, *timer;
        int state; /* FwdConnState, agent-forward-conn.c */
        uint32_t nonce;
        uint8_t *in; /* from the multiplexer */
        size_t in_len;
        OutBuf mux_out;    /* frames for the multiplexer */
        OutBuf tcp_out;    /* bytes for the TCP peer */
        uint64_t credit;   /* DATA we may still send to the agent */
        uint64_t granted;  /* DATA the agent may still send us */
        uint64_t unacked;  /* written to the peer, not yet returned with WINDOW */
        bool tcp_eof;      /* the peer sent FIN: EOF queued for the agent */
        bool agent_eof;    /* the guest's end of data: FIN to the peer once tcp_out is out */
        bool agent_closed; /* the agent's CLOSE 0: flush tcp_out, then close */
        struct FwdConn *next;
} FwdConn;

typedef struct FwdListener {
        AgentForwarder *f;
        uint64_t key;
        uint16_t guest_port;
        int fd;
        sd_event_source *src;
        struct FwdListener *next;
} FwdListener;

typedef struct FwdCommand FwdCommand;

struct AgentForwarder {
        sd_event *event;
        char *mux_path, *name;
        FwdListener *listeners;
        unsigned n_listeners;
        FwdConn *conns;
        unsigned n_conns;
        bool accept_paused;

        pthread_t thread;
        bool running;
        int wake_fd; /* eventfd: commands are queued, or stop */
        sd_event_source *wake_src;
        pthread_mutex_t lock; /* guards the fields below */
        pthread_cond_t done;
        FwdCommand *commands;
        bool stop;
        unsigned n_conns_shared; /* n_conns, readable from other threads */
};

/* agent-forward-conn.c */
/* Take over an accepted connection: connect to the multiplexer, say hello,
 * open a connect stream to port. Closes tcp_fd on failure. */
int fwd_conn_new(AgentForwarder *f, const FwdListener *l, int tcp_fd);
/* Close it at once (its stream ends with the multiplexer connection). */
void fwd_conn_free(FwdConn *c);

/* agent-forward.c: the number of connections changed (accepting may pause
 * or resume). */
void fwd_conns_changed(AgentForwarder *f);
