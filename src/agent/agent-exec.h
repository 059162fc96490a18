/* SPDX-License-Identifier: MIT */
#pragma once

/* Start one command for an exec request: its own session and process group,
 * stdio on pipes (the agent's ends non-blocking), a clean signal state, the
 * requested cwd and environment. exec failures (ENOENT, EACCES) come back
 * as the return value through a close-on-exec error pipe. */

#include <sys/types.h>

#include "agent-protocol.h"

typedef struct AgentChild {
        pid_t pid;
        int pidfd;
        int stdin_fd;  /* we write the command's stdin here */
        int stdout_fd; /* we read its stdout */
        int stderr_fd; /* we read its stderr */
} AgentChild;

#define AGENT_CHILD_NULL \
        ((AgentChild){ .pid = 0, .pidfd = -EBADF, .stdin_fd = -EBADF, .stdout_fd = -EBADF, .stderr_fd = -EBADF })

#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int agent_exec_spawn(const AgentExecSpec *spec, AgentChild *ret);

/* Signal the command's whole process group (it is the group leader and
 * not yet reaped, so the id cannot have been reused). */
int agent_child_signal(AgentChild *c, int sig);

/* Reap the exited child; returns the wait status. */
int agent_child_reap(AgentChild *c, int *ret_status);

/* Kill the group with SIGKILL, reap, close everything. */
void agent_child_kill(AgentChild *c);

/* Close all fds (after reaping). */
void agent_child_done(AgentChild *c);
