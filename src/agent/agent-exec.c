/* SPDX-License-Identifier: MIT */
#include "agent-exec.h"

#include <errno.h>
#include <sched.h>
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

#if defined(__SANITIZE_ADDRESS__)
#define AGENT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AGENT_ASAN 1
#endif
#endif
#ifdef AGENT_ASAN
#include <sanitizer/asan_interface.h>
#endif

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
 * the host sent, so search it here. Returns only on failure. A directory
 * that has no such file is skipped after a path lookup: a failed execve()
 * sets up a whole new address space (and copies the arguments and the
 * environment into it) before it finds that out, about a millisecond each
 * in a guest under TCG, and `true` is in the 6th directory of the default
 * PATH of a busybox image. */
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
                        if (access(path, F_OK) == 0 || (errno != ENOENT && errno != ENOTDIR))
                                execve(path, argv, env);
                        if (errno != ENOENT && errno != ENOTDIR)
                                err = errno;
                }
                p += n + (p[n] == ':');
        }
        return err;
}

/* In the child: die with the agent, default signals, own session. The
 * agent installs no handlers (its signals arrive through a signalfd), but
 * the dispositions go back to default before anything is unblocked all the
 * same: a command's child shares our memory until it execs. */
static int child_common(pid_t parent) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                return ESRCH;
        for (int sig = 1; sig < NSIG; sig++)
                (void) signal(sig, SIG_DFL); /* SIGPIPE was ignored by the agent; ignores survive exec */
        sigset_t all;
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
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

/* A command's child shares our memory (CLONE_VM) and we stay suspended
 * until it has exec'd or exited (CLONE_VFORK), as posix_spawn() does: no
 * page tables to copy and no copy-on-write faults in either process
 * afterwards, which is most of what a fork costs a guest under software
 * emulation (measured in a TCG guest: fork and _exit 2.2-2.8 ms, vfork
 * 0.25-0.5 ms). It runs on a stack of its own (the agent is
 * single-threaded and suspended meanwhile, so one static stack serves
 * every spawn) and leaves why its exec failed in err, in our memory. */
typedef struct ExecChild {
        const AgentExecSpec *spec;
        int in, out, err_fd;
        const char *slave_path;
        pid_t parent;
        int err;
} ExecChild;

#define EXEC_CHILD_STACK (128U * 1024U)
static uint8_t exec_child_stack[EXEC_CHILD_STACK] __attribute__((aligned(16)));

static int exec_child(void *arg) {
        ExecChild *x = arg;
        char *env[ENV_MAX];
        build_env(x->spec, env);
        int e = child_common(x->parent);
        if (e == 0)
                e = child_stdio(x->in, x->out, x->err_fd, x->slave_path);
        /* Keep only stdio across exec. */
        if (e == 0 && close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                e = errno;
        if (e == 0 && chdir(x->spec->cwd && x->spec->cwd[0] ? x->spec->cwd : "/") < 0)
                e = errno;
        if (e == 0) {
                umask(022);
                e = exec_search(x->spec->argv, env);
        }
        x->err = e > 0 ? e : EIO;
        _exit(127);
}

/* Start x's command; returns a pidfd for it (its pid in *ret_pid) or the
 * reason its exec failed. */
static int clone_exec(ExecChild *x, pid_t *ret_pid) {
        x->parent = getpid();
        x->err = 0;
#ifdef AGENT_ASAN
        /* The last child exec'd without returning: its frames' redzones are
         * still poisoned in the shadow of this memory. */
        ASAN_UNPOISON_MEMORY_REGION(exec_child_stack, sizeof(exec_child_stack));
#endif
        pid_t pid = clone(exec_child, exec_child_stack + sizeof(exec_child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, x);
        if (pid < 0)
                return -errno;
        int r = x->err ? -x->err : pidfd_open(pid, 0);
        if (r < 0 && !x->err)
                r = -errno;
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return r;
        }
        *ret_pid = pid;
        return r;
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
        _cleanup_close_ int master = -EBADF;
        int r = open_pty(spec, &master, slave, sizeof(slave));
        if (r < 0)
                return r;
        _cleanup_close_ int dup_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return -errno;
        pid_t pid = 0;
        int pidfd = clone_exec(&(ExecChild){ .spec = spec, .slave_path = slave }, &pid);
        if (pidfd < 0)
                return pidfd;
        *ret = (AgentChild){ .pid = pid,
                             .pidfd = pidfd,
                             .stdin_fd = TAKE_FD(dup_fd),
                             .stdout_fd = TAKE_FD(master),
                             .stderr_fd = -EBADF };
        return 0;
}

typedef struct Pipes {
        int in[2], out[2], err[2];
} Pipes;

static int pipes_open(Pipes *p) {
        *p = (Pipes){ { -EBADF, -EBADF }, { -EBADF, -EBADF }, { -EBADF, -EBADF } };
        int r = make_pipe(p->in, false);
        if (r >= 0)
                r = make_pipe(p->out, true);
        if (r >= 0)
                r = make_pipe(p->err, true);
        return r;
}

static void pipes_close(Pipes *p) {
        close_pair(p->in);
        close_pair(p->out);
        close_pair(p->err);
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

static int spawn_exec_piped(const AgentExecSpec *spec, AgentChild *ret) {
        Pipes p;
        pid_t pid = 0;
        int r = pipes_open(&p);
        if (r >= 0)
                r = clone_exec(&(ExecChild){ .spec = spec, .in = p.in[0], .out = p.out[1], .err_fd = p.err[1] }, &pid);
        if (r < 0) {
                pipes_close(&p);
                return r;
        }
        pipes_take(&p, pid, r, ret);
        return 0;
}

typedef struct Builtin {
        AgentBuiltinFn fn;
        const void *arg;
        int nice;
} Builtin;

static _noreturn_ void builtin_child(const Pipes *p, pid_t parent, const Builtin *b) {
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

/* A built-in runs agent code, not an exec: a real fork, a copy of our
 * memory (its argument may point into it). */
static int spawn_builtin(const Builtin *b, AgentChild *ret) {
        Pipes p;
        int r = pipes_open(&p);
        pid_t parent = getpid();
        pid_t pid = r >= 0 ? fork() : 0;
        if (r >= 0 && pid < 0)
                r = -errno;
        if (r >= 0 && pid == 0)
                builtin_child(&p, parent, b);
        if (r >= 0 && (r = pidfd_open(pid, 0)) < 0) {
                r = -errno;
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
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
        return spawn_exec_piped(spec, ret);
}

int agent_builtin_spawn(AgentBuiltinFn fn, const void *arg, int nice, AgentChild *ret) {
        return spawn_builtin(&(Builtin){ .fn = fn, .arg = arg, .nice = nice }, ret);
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
