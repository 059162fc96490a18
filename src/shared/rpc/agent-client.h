/* SPDX-License-Identifier: MIT */
#pragma once

/* Host side of the banger-agent protocol (docs/agent-protocol.md), over a
 * connected fd from a VMM driver's connect_agent (or a Unix socket in
 * tests). Every call takes a timeout and returns -ETIMEDOUT when it passes;
 * failures reported by the agent come back as -errno with the agent's text
 * recorded through error_setf(). Calls on one client are not thread-safe. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "agent-protocol.h"
#include "macro.h"
#include "time-util.h"

typedef struct AgentClient AgentClient;

/* Takes ownership of fd in all cases (it is closed on failure). */
int agent_client_new(int fd, AgentClient **ret);
AgentClient *agent_client_free(AgentClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentClient *, agent_client_free);

/* Start (or restart) a session. On a byte-stream transport any stale bytes
 * from an earlier session are skipped; the hello is repeated every couple of
 * seconds in case the agent was still discarding a broken frame. Fails with
 * -EPROTONOSUPPORT when the agent speaks an older protocol. */
int agent_client_hello(AgentClient *c, usec_t timeout, uint32_t *ret_version);

typedef struct AgentHealth {
        char *agent_version;
        char *boot_id;
        char *hostname;
        char *kernel;
        double uptime_sec;
        unsigned protocol;
} AgentHealth;
void agent_health_done(AgentHealth *h);
int agent_client_health(AgentClient *c, usec_t timeout, AgentHealth *ret);

typedef struct AgentPort {
        char proto[8];    /* tcp, tcp6, udp, udp6 */
        char address[48]; /* local address as text */
        unsigned port;
        int pid;       /* 0: owner unknown */
        char *process; /* comm of the owner, "" when unknown */
} AgentPort;
void agent_ports_free(AgentPort *p, size_t n);
int agent_client_ports(AgentClient *c, usec_t timeout, AgentPort **ret, size_t *ret_n);

typedef struct AgentStats {
        uint64_t mem_total_kib, mem_free_kib, mem_available_kib, buffers_kib, cached_kib;
        uint64_t swap_total_kib, swap_free_kib;
        double load1, load5, load15;
        unsigned procs_running, procs_total;
} AgentStats;
int agent_client_stats(AgentClient *c, usec_t timeout, AgentStats *ret);

/* The raw JSON reply of health/ports/stats (type AGENT_MSG_HEALTH, ...),
 * for callers that pass it on. */
int agent_client_query_json(AgentClient *c, AgentMsg type, usec_t timeout, json_t **ret);

typedef struct AgentExecOptions {
        char *const *argv;   /* required; argv[0] is looked up in the command's PATH */
        char *const *env;    /* NULL or empty: PATH and HOME defaults of the agent */
        const char *cwd;     /* NULL: "/" */
        int stdin_fd;        /* < 0: the command sees EOF at once */
        int stdout_fd;       /* < 0: discarded */
        int stderr_fd;       /* < 0: discarded */
} AgentExecOptions;

typedef struct AgentExecResult {
        AgentExitKind kind; /* exited with code, or killed by signal code */
        int code;
        pid_t pid; /* guest pid */
} AgentExecResult;

/* Run a command in the guest, streaming stdio until it exits. On timeout the
 * command is killed (SIGKILL to its process group) and -ETIMEDOUT returned.
 * A command that cannot be started returns its exec errno (-ENOENT ...). */
int agent_client_exec(AgentClient *c, const AgentExecOptions *o, usec_t timeout, AgentExecResult *ret);

/* Ask the guest to sync and power off; returns once the agent acknowledged.
 * The caller should close the client then. */
int agent_client_poweroff(AgentClient *c, usec_t timeout);

/* Firecracker's host-initiated vsock handshake on its Unix socket: send
 * "CONNECT <port>\n", expect "OK <hostport>\n". A connection closed instead
 * means nothing listens on that port: -ECONNREFUSED. Reads byte by byte so
 * nothing after the line is consumed. */
int agent_vsock_handshake(int fd, unsigned port, usec_t timeout);
