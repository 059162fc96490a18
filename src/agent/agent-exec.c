/* SPDX-License-Identifier: MIT */
#include "agent-exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/close_range.h>

#include "macro.h"

static const char *env_path(char *const *env) {
        for (size_t i = 0; env && env[i]; i++)
                if (strncmp(env[i], "PATH=", 5) == 0)
                        return env[i] + 5;
        return AGENT_DEFAULT_PATH;
}

/* execvpe() searches the agent's own PATH; the command's PATH is the one
 * the host sent, so search it here. Returns only on failure. */
static int exec_search(char *const *argv, char *const *env) {
        if (strchr(argv[0], '/')) {
                execve(argv[0], argv, env);
                return errno;
        }
        int err = ENOENT;
        const char *p = env_path(env);
        while (*p) {
                size_t n = strcspn(p, ":");
                char path[4096];
                if (n > 0 && n + strlen(argv[0]) + 2 <= sizeof(path)) {
                        snprintf(path, sizeof(path), "%.*s/%s", (int) n, p, argv[0]);
                        execve(path, argv, env);
                        if (errno != ENOENT && errno != ENOTDIR)
                                err = errno;
                }
                p += n + (p[n] == ':');
        }
        return err;
}

static _noreturn_ void child_run(const AgentExecSpec *spec, char *const *env, int in, int out, int err, int errfd,
                                 pid_t parent) {
        /* The command dies with its session (a daemon it forks does not). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(127);
        sigset_t all;
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                (void) signal(sig, SIG_DFL); /* SIGPIPE was ignored by the agent; ignores survive exec */
        (void) setsid();
        int e = 0;
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
                e = errno;
        /* Keep only stdio and the error pipe (close-on-exec) across exec. */
        if (e == 0 && close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                e = errno;
        if (e == 0 && chdir(spec->cwd && spec->cwd[0] ? spec->cwd : "/") < 0)
                e = errno;
        if (e == 0) {
                umask(022);
                e = exec_search(spec->argv, env);
        }
        (void) !write(errfd, &e, sizeof(e));
        _exit(127);
}

static int make_pipe(int p[2], bool parent_reads) {
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        int ours = parent_reads ? p[0] : p[1];
        if (fcntl(ours, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

static void close_pair(int p[2]) {
        p[0] = safe_close(p[0]);
        p[1] = safe_close(p[1]);
}

static int wait_exec_result(pid_t pid, int errfd) {
        int e = 0;
        ssize_t n;
        do
                n = read(errfd, &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t) sizeof(e)) {
                (void) waitpid(pid, NULL, 0);
                return -(e > 0 ? e : EIO);
        }
        return 0; /* EOF: exec succeeded and closed the pipe */
}

int agent_exec_spawn(const AgentExecSpec *spec, AgentChild *ret) {
        static char *const default_env[] = { "PATH=" AGENT_DEFAULT_PATH, "HOME=/root", NULL };
        char *const *env = spec->env && spec->env[0] ? spec->env : default_env;
        int in[2] = { -EBADF, -EBADF }, out[2] = { -EBADF, -EBADF }, err[2] = { -EBADF, -EBADF },
            ep[2] = { -EBADF, -EBADF };
        int r = make_pipe(in, false);
        if (r >= 0)
                r = make_pipe(out, true);
        if (r >= 0)
                r = make_pipe(err, true);
        if (r >= 0 && pipe2(ep, O_CLOEXEC) < 0)
                r = -errno;
        pid_t parent = getpid();
        pid_t pid = r >= 0 ? fork() : 0;
        if (r >= 0 && pid < 0)
                r = -errno;
        if (r >= 0 && pid == 0)
                child_run(spec, env, in[0], out[1], err[1], ep[1], parent);
        if (r >= 0) {
                ep[1] = safe_close(ep[1]);
                r = wait_exec_result(pid, ep[0]);
        }
        int pidfd = r >= 0 ? pidfd_open(pid, 0) : -EBADF;
        if (r >= 0 && pidfd < 0) {
                r = -errno;
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
        }
        close_pair(ep);
        in[0] = safe_close(in[0]);
        out[1] = safe_close(out[1]);
        err[1] = safe_close(err[1]);
        if (r < 0) {
                close_pair(in);
                close_pair(out);
                close_pair(err);
                return r;
        }
        *ret = (AgentChild){ .pid = pid, .pidfd = pidfd, .stdin_fd = in[1], .stdout_fd = out[0], .stderr_fd = err[0] };
        return 0;
}

int agent_child_signal(AgentChild *c, int sig) {
        if (c->pid <= 0)
                return -ESRCH;
        if (kill(-c->pid, sig) < 0 && pidfd_send_signal(c->pidfd, sig, NULL, 0) < 0)
                return -errno;
        return 0;
}

int agent_child_reap(AgentChild *c, int *ret_status) {
        int status = 0;
        pid_t p;
        do
                p = waitpid(c->pid, &status, 0);
        while (p < 0 && errno == EINTR);
        if (p < 0)
                return -errno;
        c->pid = 0;
        *ret_status = status;
        return 0;
}

void agent_child_done(AgentChild *c) {
        c->pidfd = safe_close(c->pidfd);
        c->stdin_fd = safe_close(c->stdin_fd);
        c->stdout_fd = safe_close(c->stdout_fd);
        c->stderr_fd = safe_close(c->stderr_fd);
        c->pid = 0;
}

void agent_child_kill(AgentChild *c) {
        if (c->pid > 0) {
                int st;
                (void) agent_child_signal(c, SIGKILL);
                (void) agent_child_reap(c, &st);
        }
        agent_child_done(c);
}
