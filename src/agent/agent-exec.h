/* SPDX-License-Identifier: MIT */
#pragma once

/* Start one process for a stream: a command (its own session and process
 * group, a clean signal state, the requested cwd and environment) on pipes
 * or on a pseudo-terminal, or a built-in function of the agent run in a
 * forked child on pipes (file transfers). A command's child shares the
 * agent's memory until it execs (CLONE_VM | CLONE_VFORK, as posix_spawn()
 * does: much cheaper than a fork under software emulation), and its exec
 * failure (ENOENT, EACCES) comes back as the return value. */

#include <sys/types.h>

#include "agent-protocol.h"

typedef struct AgentChild {
        pid_t pid;
        int pidfd;
        int stdin_fd;  /* we write the process's stdin here (PTY: a duplicate of the master) */
        int stdout_fd; /* we read its stdout (PTY: the master) */
        int stderr_fd; /* we read its stderr (-EBADF with a PTY) */
} AgentChild;

#define AGENT_CHILD_NULL \
        ((AgentChild){ .pid = 0, .pidfd = -EBADF, .stdin_fd = -EBADF, .stdout_fd = -EBADF, .stderr_fd = -EBADF })

#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* spec->flags may ask for a PTY (AGENT_EXEC_FLAG_PTY) of spec->rows x spec->cols. */
int agent_exec_spawn(const AgentExecSpec *spec, AgentChild *ret);

/* Run fn(arg) in a forked child with stdin/stdout/stderr on pipes, at the
 * given nice value (0: the agent's own); the child exits with fn's return
 * value. */
typedef int (*AgentBuiltinFn)(const void *arg);
int agent_builtin_spawn(AgentBuiltinFn fn, const void *arg, int nice, AgentChild *ret);

/* Signal the process's whole group (it is the group leader and not yet
 * reaped, so the id cannot have been reused). */
int agent_child_signal(AgentChild *c, int sig);

/* Reap the exited child; returns the wait status. */
int agent_child_reap(AgentChild *c, int *ret_status);

/* Kill the group with SIGKILL, reap, close everything. */
void agent_child_kill(AgentChild *c);

/* Close all fds (after reaping). */
void agent_child_done(AgentChild *c);
