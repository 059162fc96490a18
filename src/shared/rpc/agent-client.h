/* SPDX-License-Identifier: MIT */
#pragma once

/* Host side of the banger-agent protocol, version 2 (docs/agent-protocol.md),
 * over a connected fd: the daemon's per-VM multiplexer socket (what the CLI
 * and the daemon's own workers use), or a transport straight to an agent
 * (the multiplexer itself, tests). Calls are sequential: each opens one
 * stream and runs it to its end. Every call takes a timeout and returns
 * -ETIMEDOUT when it passes; failures reported by the agent come back as
 * -errno with the agent's text recorded through error_setf(). Calls on one
 * client are not thread-safe. */

#include <stdbool.h>
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

/* Start a session. On a byte-stream transport stale bytes from an earlier
 * session are skipped and the hello is repeated until answered. An agent of
 * protocol version 1 (an image made before version 2) fails with
 * -EPROTONOSUPPORT and a message saying to rebuild or re-import the image. */
int agent_client_hello(AgentClient *c, usec_t timeout, AgentHello *ret_info);
/* What the agent announced (after a successful hello). */
const AgentHello *agent_client_info(const AgentClient *c);

/* The message for a version-1 agent, for callers that meet one elsewhere. */
#define AGENT_V1_MESSAGE                                                                                        \
        "the guest agent speaks protocol 1 (the image was made before banger's agent protocol 2): rebuild the " \
        "image (banger image build) or import it again (banger image import) to use exec, cp, ports and stats"

typedef struct AgentHealth {
        char *agent_version;
        char *boot_id;
        char *hostname;
        char *kernel;
        double uptime_sec;
        unsigned protocol;
        /* The work disk the guest's fstab names (NULL: none), and whether its
         * mount point is mounted. */
        char *work_disk_device, *work_disk_mount;
        bool work_disk_mounted;
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

/* The raw JSON reply of a health, ports or stats stream, for callers that
 * pass it on. */
int agent_client_query_json(AgentClient *c, AgentStreamKind kind, usec_t timeout, json_t **ret);

/* The same from the reply's bytes (what the guest sent, so fuzzed): a JSON
 * object, or -EBADMSG. The *_from_json() read one into C structures, taking
 * only what has the right type and size. */
int agent_query_reply_parse(const char *text, size_t len, json_t **ret);
int agent_health_from_json(json_t *j, AgentHealth *ret);
int agent_stats_from_json(json_t *j, AgentStats *ret);
int agent_ports_from_json(json_t *j, AgentPort **ret, size_t *ret_n);

/* Progress of a stream's data: bytes sent to and received from the agent. */
typedef void (*AgentProgressFn)(void *userdata, uint64_t sent, uint64_t received);

/* Output kept in memory: the first max bytes, the rest dropped (the command
 * runs on, as with a closed stdout) with truncated set. */
typedef struct AgentCapture {
        char *data; /* NUL-terminated; the caller frees it */
        size_t len, max;
        bool truncated;
} AgentCapture;

typedef struct AgentExecOptions {
        char *const *argv;   /* required; argv[0] is looked up in the command's PATH */
        char *const *env;    /* added to the agent's defaults (PATH, HOME; TERM with a PTY) */
        const char *cwd;     /* NULL: "/" */
        int stdin_fd;        /* < 0: the command sees EOF at once */
        int stdout_fd;       /* < 0: discarded */
        int stderr_fd;       /* < 0: discarded */
        bool pty;            /* a pseudo-terminal in the guest (stderr arrives on stdout) */
        unsigned rows, cols; /* its size (0: 24x80) */
        /* A signalfd (0 or -1: none): SIGWINCH sends tty_fd's new size, SIGINT,
         * SIGTERM, SIGHUP and SIGQUIT go to the command; a third SIGINT
         * gives up on it (it is killed). */
        int signal_fd;
        int tty_fd;
        AgentCapture *stdout_capture; /* stdout_fd < 0: keep stdout here */
        AgentCapture *stderr_capture; /* stderr_fd < 0: keep stderr here */
} AgentExecOptions;

typedef struct AgentExecResult {
        AgentExitKind kind; /* exited with code, or killed by signal code */
        int code;
        pid_t pid; /* guest pid */
} AgentExecResult;

/* Run a command in the guest, streaming stdio until it exits. On timeout the
 * command is killed and -ETIMEDOUT returned. A command that cannot be
 * started returns its exec errno (-ENOENT ...). */
int agent_client_exec(AgentClient *c, const AgentExecOptions *o, usec_t timeout, AgentExecResult *ret);

typedef struct AgentFilesOptions {
        AgentStreamKind kind; /* AGENT_STREAM_FILES_PUT or _GET */
        uint32_t flags;       /* AGENT_FILES_FLAG_* */
        const char *path;     /* absolute guest path: destination (put) or source (get) */
        int data_fd;          /* put: the tar stream is read from it; get: written to it */
        AgentProgressFn progress;
        void *userdata;
} AgentFilesOptions;

/* Move a tar stream to or from the guest. A failure in the guest returns
 * -EIO with the agent's reason in error_last_message(). */
int agent_client_files(AgentClient *c, const AgentFilesOptions *o, usec_t timeout);

/* A restored clone's identity (the request text of docs/agent-protocol.md:
 * network.conf's keys plus FROM_MAC, TIME_NS and ENTROPY): the agent steps
 * the clock, reseeds the kernel's random generator, renumbers the NIC, sets
 * the hostname and rewrites the guest's files. -EOPNOTSUPP (with what to
 * do) when the agent has no identity capability; -EIO with the agent's
 * reason when a part failed. */
int agent_client_identity(AgentClient *c, const char *request, usec_t timeout);

/* Ask the guest to sync and power off; returns once the agent acknowledged. */
int agent_client_poweroff(AgentClient *c, usec_t timeout);

/* Firecracker's host-initiated vsock handshake on its Unix socket: send
 * "CONNECT <port>\n", expect "OK <hostport>\n". A connection closed instead
 * means nothing listens on that port: -ECONNREFUSED. Reads byte by byte so
 * nothing after the line is consumed. */
int agent_vsock_handshake(int fd, unsigned port, usec_t timeout);
