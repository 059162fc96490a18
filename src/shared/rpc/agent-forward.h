/* SPDX-License-Identifier: MIT */
#pragma once

/* Port forwarding through the guest agent: listening TCP sockets on the
 * host whose connections are carried, each as a connect stream
 * (docs/agent-protocol.md), through the VM's agent multiplexer to
 * 127.0.0.1:PORT in the guest. No route to the guest and no NAT is needed,
 * only the agent. One forwarder per VM runs on a thread and an sd-event
 * loop of its own, like the multiplexer: accepting, the hello and the
 * splicing never block, and a busy forward adds no latency to the daemon's
 * RPC loop. Each connection is one client connection of the multiplexer
 * (so the multiplexer's limits apply: at most AGENT_FORWARD_MAX_CONNECTIONS
 * at once per VM; more wait in the listen backlog). TCP only. */

#include <stdint.h>

#include "macro.h"

#define AGENT_FORWARD_MAX_CONNECTIONS 32U
#define AGENT_FORWARD_MAX_LISTENERS 64U

typedef struct AgentForwarder AgentForwarder;

/* Start the thread; mux_path is the VM's multiplexer socket, name the VM as
 * the user knows it (for the log). */
int agent_forwarder_start(const char *mux_path, const char *name, AgentForwarder **ret);
/* Close every listener and connection, join the thread. NULL is fine. */
void agent_forwarder_stop(AgentForwarder *f);

/* Hand over a listening TCP socket (taken in all cases): its connections go
 * to guest_port. key names it for agent_forwarder_remove(). Thread-safe;
 * returns once the forwarder's loop serves it. */
int agent_forwarder_add(AgentForwarder *f, uint64_t key, int listen_fd, uint16_t guest_port);
/* Close the listener named key and the connections it accepted; -ENOENT
 * when there is none. Thread-safe; returns once it is closed. */
int agent_forwarder_remove(AgentForwarder *f, uint64_t key);
/* Connections open now (for tests and `vm ports`). */
unsigned agent_forwarder_connections(AgentForwarder *f);

/* A listening TCP socket on address:port (IPv4 or IPv6 text), SO_REUSEADDR,
 * non-blocking. -EADDRINUSE, -EACCES (a privileged port),
 * -EADDRNOTAVAIL (no such local address) or -EINVAL (not an address). */
int agent_forward_listen(const char *address, uint16_t port);
