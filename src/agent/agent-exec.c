/* SPDX-License-Identifier: MIT */
#include "agent-exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <linux/close_range.h>

#include "macro.h"

#define ENV_MAX (AGENT_EXEC_MAX_ENV + 4)

static const char *env_get(char *const *env, const char *name) {
        size_t n = strlen(name);
        for (size_t i = 0; env && env[i]; i++)
                if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
                        return env[i] + n + 1;
        return NULL;
}

/* The request's environment plus defaults for what it leaves out. */
static void build_env(const AgentExecSpec *spec, char **out) {
        size_t n = 0;
        for (size_t i = 0; spec->env && spec->env[i] && n < AGENT_EXEC_MAX_ENV; i++)
                out[n++] = spec->env[i];
        if (!env_get(spec->env, "PATH"))
                out[n++] = (char *) "PATH=" AGENT_DEFAULT_PATH;
        if (!env_get(spec->env, "HOME"))
                out[n++] = (char *) "HOME=/root";
        if ((spec->flags & AGENT_EXEC_FLAG_PTY) && !env_get(spec->env, "TERM"))
                out[n++] = (char *) "TERM=xterm";
        out[n] = NULL;
}

/* execvpe() searches the agent's own PATH; the command's PATH is the one
 * the host sent, so search it here. Returns only on failure. */
static int exec_search(char *const *argv, char *const *env) {
        if (strchr(argv[0], '/')) {
                execve(argv[0], argv, env);
                return errno;
        }
        int err = ENOENT;
        const char *p = env_get(env, "PATH");
        while (p && *p) {
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

/* In the child: die with the agent, default signals, own session. */
static int child_common(pid_t parent) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                return ESRCH;
        sigset_t all;
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                (void) signal(sig, SIG_DFL); /* SIGPIPE was ignored by the agent; ignores survive exec */
        return setsid() < 0 ? errno : 0;
}

/* stdio from in/out/err, or all three from the PTY slave at slave_path. */
static int child_stdio(int in, int out, int err, const char *slave_path) {
        if (slave_path) {
                int fd = open(slave_path, O_RDWR); /* a session leader's first tty: its controlling terminal */
                if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0)
                        return errno;
                in = out = err = fd;
        }
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
                return errno;
        return 0;
}

typedef struct ChildSetup {
        int in, out, err, errfd;
        const char *slave_path;
        pid_t parent;
} ChildSetup;

static _noreturn_ void child_exec(const AgentExecSpec *spec, const ChildSetup *cs) {
        char *env[ENV_MAX];
        build_env(spec, env);
        int e = child_common(cs->parent);
        if (e == 0)
                e = child_stdio(cs->in, cs->out, cs->err, cs->slave_path);
        /* Keep only stdio and the error pipe (close-on-exec) across exec. */
        if (e == 0 && close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                e = errno;
        if (e == 0 && chdir(spec->cwd && spec->cwd[0] ? spec->cwd : "/") < 0)
                e = errno;
        if (e == 0) {
                umask(022);
                e = exec_search(spec->argv, env);
        }
        (void) !write(cs->errfd, &e, sizeof(e));
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

/* After fork: collect the exec result and open a pidfd. */
static int finish_spawn(pid_t pid, int errfd) {
        int r = wait_exec_result(pid, errfd);
        if (r < 0)
                return r;
        int pidfd = pidfd_open(pid, 0);
        if (pidfd < 0) {
                r = -errno;
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        return pidfd;
}

static int open_pty(const AgentExecSpec *spec, int *ret_master, char *slave, size_t slave_len) {
        _cleanup_close_ int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, slave_len) != 0)
                return -errno;
        struct winsize ws = { .ws_row = spec->rows ? spec->rows : 24, .ws_col = spec->cols ? spec->cols : 80 };
        if (ioctl(m, TIOCSWINSZ, &ws) < 0 || fcntl(m, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        *ret_master = TAKE_FD(m);
        return 0;
}

static int spawn_pty(const AgentExecSpec *spec, AgentChild *ret) {
        char slave[128];
        int master = -EBADF, ep[2] = { -EBADF, -EBADF };
        int r = open_pty(spec, &master, slave, sizeof(slave));
        pid_t parent = getpid();
        if (r >= 0 && pipe2(ep, O_CLOEXEC) < 0)
                r = -errno;
        pid_t pid = r >= 0 ? fork() : 0;
        if (r >= 0 && pid < 0)
                r = -errno;
        if (r >= 0 && pid == 0)
                child_exec(spec, &(ChildSetup){ .errfd = ep[1], .slave_path = slave, .parent = parent });
        int pidfd = -EBADF, dup_fd = -EBADF;
        if (r >= 0) {
                ep[1] = safe_close(ep[1]);
                r = pidfd = finish_spawn(pid, ep[0]);
        }
        if (r >= 0 && (dup_fd = fcntl(master, F_DUPFD_CLOEXEC, 3)) < 0) {
                r = -errno;
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                safe_close(pidfd);
        }
        close_pair(ep);
        if (r < 0) {
                safe_close(master);
                return r;
        }
        *ret = (AgentChild){ .pid = pid, .pidfd = pidfd, .stdin_fd = dup_fd, .stdout_fd = master, .stderr_fd = -EBADF };
        return 0;
}

typedef struct Pipes {
        int in[2], out[2], err[2], ep[2];
} Pipes;

static int pipes_open(Pipes *p) {
        *p = (Pipes){ { -EBADF, -EBADF }, { -EBADF, -EBADF }, { -EBADF, -EBADF }, { -EBADF, -EBADF } };
        int r = make_pipe(p->in, false);
        if (r >= 0)
                r = make_pipe(p->out, true);
        if (r >= 0)
                r = make_pipe(p->err, true);
        if (r >= 0 && pipe2(p->ep, O_CLOEXEC) < 0)
                r = -errno;
        return r;
}

static void pipes_close(Pipes *p) {
        close_pair(p->in);
        close_pair(p->out);
        close_pair(p->err);
        close_pair(p->ep);
}

/* The parent's side after a successful spawn. */
static void pipes_take(Pipes *p, pid_t pid, int pidfd, AgentChild *ret) {
        *ret = (AgentChild){ .pid = pid,
                             .pidfd = pidfd,
                             .stdin_fd = TAKE_FD(p->in[1]),
                             .stdout_fd = TAKE_FD(p->out[0]),
                             .stderr_fd = TAKE_FD(p->err[0]) };
        pipes_close(p);
}

/* What a piped child runs after fork(); never returns. */
typedef void (*PipedChildFn)(const Pipes *p, pid_t parent, const void *data);

static _noreturn_ void exec_child(const Pipes *p, pid_t parent, const void *data) {
        child_exec(data,
                   &(ChildSetup){
                           .in = p->in[0], .out = p->out[1], .err = p->err[1], .errfd = p->ep[1], .parent = parent });
}

typedef struct Builtin {
        AgentBuiltinFn fn;
        const void *arg;
        int nice;
} Builtin;

static _noreturn_ void builtin_child(const Pipes *p, pid_t parent, const void *data) {
        const Builtin *b = data;
        int e = child_common(parent);
        if (e == 0)
                e = child_stdio(p->in[0], p->out[1], p->err[1], NULL);
        if (e != 0 || close_range(3, ~0U, 0) < 0)
                _exit(127);
        if (b->nice != 0)
                (void) setpriority(PRIO_PROCESS, 0, b->nice);
        umask(022);
        _exit(b->fn(b->arg));
}

/* Fork child with stdin/stdout/stderr pipes. With exec, the error pipe tells
 * whether its exec worked (finish_spawn); a built-in has nothing to exec. */
static int spawn_piped(PipedChildFn child, const void *data, bool exec, AgentChild *ret) {
        Pipes p;
        int r = pipes_open(&p);
        pid_t parent = getpid();
        pid_t pid = r >= 0 ? fork() : 0;
        if (r >= 0 && pid < 0)
                r = -errno;
        if (r >= 0 && pid == 0)
                child(&p, parent, data);
        if (r >= 0) {
                p.ep[1] = safe_close(p.ep[1]);
                r = exec ? finish_spawn(pid, p.ep[0]) : pidfd_open(pid, 0);
                if (!exec && r < 0) {
                        r = -errno;
                        (void) kill(pid, SIGKILL);
                        (void) waitpid(pid, NULL, 0);
                }
        }
        if (r < 0) {
                pipes_close(&p);
                return r;
        }
        pipes_take(&p, pid, r, ret);
        return 0;
}

int agent_exec_spawn(const AgentExecSpec *spec, AgentChild *ret) {
        if (spec->flags & AGENT_EXEC_FLAG_PTY)
                return spawn_pty(spec, ret);
        return spawn_piped(exec_child, spec, true, ret);
}

int agent_builtin_spawn(AgentBuiltinFn fn, const void *arg, int nice, AgentChild *ret) {
        return spawn_piped(builtin_child, &(Builtin){ .fn = fn, .arg = arg, .nice = nice }, false, ret);
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
