/* SPDX-License-Identifier: MIT */
#pragma once

/* The per-VM agent multiplexer: the only holder of a VM's agent transport
 * (the virtio-serial chardev, the vsock, or a Unix socket in tests). It keeps
 * one protocol-2 session with the agent for as long as it lives and serves a
 * private Unix socket where every client connection speaks protocol 2 too:
 * the mux answers each client's hello with the agent's, and maps each
 * client's stream ids onto ids of its own on the agent connection. Credit
 * windows are end to end; the mux checks both directions against them, so
 * what it buffers is bounded by the windows: a client that stops reading
 * stalls only its own streams, and an agent that ignores its window loses
 * the stream. It runs on an sd-event loop and never blocks: connecting to
 * the transport (which may need a handshake) happens in a short-lived helper
 * thread. See docs/agent-protocol.md, "the multiplexer". */

#include <systemd/sd-event.h>

#include "macro.h"
#include "time-util.h"

#define AGENT_MUX_MAX_CLIENTS 64U
#define AGENT_MUX_CLIENT_STREAMS 32U

typedef struct AgentMux AgentMux;

typedef struct AgentMuxOptions {
        const char *socket_path; /* where clients connect: created 0600, replaced if stale */
        const char *name;        /* the VM as the user knows it, for messages */
        /* Connect to the agent's transport; returns a connected fd (any
         * handshake done) or -errno. Called in a helper thread, never on the
         * loop; it must honour the timeout. */
        int (*connect)(void *userdata, usec_t timeout);
        void *userdata;
        /* How long our answer to a CLOSE of the agent may wait to leave
         * with the next frame to it (0: 50 ms). */
        usec_t lazy_delay;
} AgentMuxOptions;

/* Creates the socket (the path must fit sun_path: -ENAMETOOLONG) and starts
 * connecting to the agent; clients that say hello before the agent answers
 * wait for it. */
int agent_mux_new(sd_event *e, const AgentMuxOptions *o, AgentMux **ret);
/* Any thread: the clients connected now, and when one last came or went
 * (realtime; the mux's creation before the first). What a VM's idle check
 * counts as use. */
void agent_mux_usage(AgentMux *m, unsigned *ret_clients, usec_t *ret_last);
/* Closes everything and removes the socket. */
AgentMux *agent_mux_free(AgentMux *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentMux *, agent_mux_free);

/* The mux on a thread and an sd-event loop of its own (how the daemon runs
 * one per VM: a busy copy on one VM adds no latency to the daemon's RPC
 * loop or to other VMs). The socket exists when this returns. */
typedef struct AgentMuxThread AgentMuxThread;
int agent_mux_thread_start(const AgentMuxOptions *o, AgentMuxThread **ret);
/* agent_mux_usage() of the thread's mux (any thread). */
void agent_mux_thread_usage(AgentMuxThread *t, unsigned *ret_clients, usec_t *ret_last);
/* Stop the loop, join the thread, free the mux. NULL is fine. */
void agent_mux_thread_stop(AgentMuxThread *t);
