/* SPDX-License-Identifier: MIT */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs-util.h"
#include "io-util.h"

static char *const default_env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL };

void spawn_options_init(SpawnOptions *o) {
        *o = (SpawnOptions){
                .stdin_fd = -EBADF,
                .stdout_fd = -EBADF,
                .stderr_fd = -EBADF,
                .umask = 077,
                .pidfile_dir_fd = -EBADF,
                .keep_fd = -EBADF,
        };
}

char *find_executable(const char *name) {
        if (!name || !*name)
                return NULL;
        if (strchr(name, '/'))
                return access(name, X_OK) == 0 ? strdup(name) : NULL;
        const char *path = getenv("PATH");
        if (!path)
                path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return NULL;
        char *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *p = path_join(dir, name);
                struct stat st;
                if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0)
                        return TAKE_PTR(p);
        }
        return NULL;
}

char *find_program_beside_self(const char *const *relative, size_t n) {
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (len <= 0)
                return NULL;
        self[len] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash)
                return NULL;
        *slash = '\0';
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *p = path_join(self, relative[i]);
                if (p && access(p, X_OK) == 0)
                        return TAKE_PTR(p);
        }
        return NULL;
}

/* "<prefix><n><suffix>" into buf, without stdio (async-signal-safe). */
static bool format_with_number(char *buf, size_t size, const char *prefix, unsigned long n, const char *suffix) {
        char digits[24];
        size_t nd = 0, len = 0;
        do
                digits[nd++] = (char) ('0' + n % 10);
        while ((n /= 10) > 0);
        for (const char *p = prefix; *p; p++)
                if (len + 1 < size)
                        buf[len++] = *p;
        while (nd > 0 && len + 1 < size)
                buf[len++] = digits[--nd];
        for (const char *p = suffix; *p; p++)
                if (len + 1 < size)
                        buf[len++] = *p;
        if (len + 1 >= size)
                return false;
        buf[len] = '\0';
        return true;
}

/* The child's first step: its pid under a temporary name, renamed onto the
 * final one, so a reader finds either nothing or the whole pid. */
static int child_write_pidfile(int dir_fd, const char *name) {
        char tmp[256], line[32];
        unsigned long pid = (unsigned long) getpid();
        if (strlen(name) > 200)
                return -ENAMETOOLONG;
        if (!format_with_number(tmp, sizeof(tmp), ".", pid, ".pid.tmp") ||
            !format_with_number(line, sizeof(line), "", pid, "\n"))
                return -ENAMETOOLONG;
        /* The temporary name is unique to this pid; the final one is the caller's. */
        char *t = tmp + strlen(tmp);
        *t++ = '-';
        strcpy(t, name);
        int fd = openat(dir_fd, tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, line, strlen(line));
        int r = n == (ssize_t) strlen(line) ? 0 : n < 0 ? -errno : -EIO;
        close(fd);
        if (r >= 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dir_fd, tmp, 0);
        return r;
}

/* Runs in the child between fork and exec: async-signal-safe calls only. */
_noreturn_ static void child_exec(const char *path, char *const argv[], const SpawnOptions *o, int devnull,
                                  int errpipe) {
        int fds[3] = { o->stdin_fd >= 0 ? o->stdin_fd : devnull, o->stdout_fd >= 0 ? o->stdout_fd : devnull,
                       o->stderr_fd >= 0 ? o->stderr_fd : devnull };
        int keep = -EBADF, err;

        if (o->pidfile_name) {
                int r = child_write_pidfile(o->pidfile_dir_fd, o->pidfile_name);
                if (r < 0) {
                        errno = -r;
                        goto fail;
                }
        }

        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int s = 1; s < _NSIG; s++)
                if (s != SIGKILL && s != SIGSTOP)
                        signal(s, SIG_DFL);

        /* The error pipe and the kept fd go above SPAWN_KEEP_FD, out of its way. */
        if (o->keep_fd >= 0) {
                int e = fcntl(errpipe, F_DUPFD_CLOEXEC, SPAWN_KEEP_FD + 1);
                if (e < 0 || (keep = fcntl(o->keep_fd, F_DUPFD_CLOEXEC, SPAWN_KEEP_FD + 1)) < 0)
                        goto fail;
                errpipe = e;
        }
        /* Move the fds above 2 first so dup2 onto 0..2 never clobbers a source. */
        for (int i = 0; i < 3; i++) {
                int n = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (n < 0)
                        goto fail;
                fds[i] = n;
        }
        for (int i = 0; i < 3; i++)
                if (dup2(fds[i], i) < 0)
                        goto fail;
        if (keep >= 0 && dup2(keep, SPAWN_KEEP_FD) < 0) /* dup2 leaves the copy without CLOEXEC */
                goto fail;
        if (o->new_session && setsid() < 0)
                goto fail;
        if (o->set_ids) {
                if (setgroups(0, NULL) < 0 || setresgid(o->gid, o->gid, o->gid) < 0 ||
                    setresuid(o->uid, o->uid, o->uid) < 0)
                        goto fail;
        }
        if (chdir(o->cwd ? o->cwd : "/") < 0)
                goto fail;
        umask(o->umask);
        /* Everything but stdio, the kept fd and the error pipe (itself CLOEXEC) goes. */
        unsigned low = keep >= 0 ? SPAWN_KEEP_FD + 1 : 3;
        if ((unsigned) errpipe > low)
                close_range(low, (unsigned) errpipe - 1, 0);
        close_range(MAX((unsigned) errpipe + 1, low), ~0U, 0);
        execve(path, argv, o->env ? o->env : default_env);
fail:
        err = errno;
        (void) !write(errpipe, &err, sizeof(err));
        _exit(127);
}

int spawn_process(char *const argv[], const SpawnOptions *o, Process *ret) {
        SpawnOptions def;
        if (!o) {
                spawn_options_init(&def);
                o = &def;
        }
        if (!argv || !argv[0])
                return -EINVAL;
        _cleanup_free_ char *path = find_executable(argv[0]);
        if (!path)
                return -ENOENT;

        _cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0)
                return -errno;
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        _cleanup_close_ int rd = p[0], wr = p[1];

        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_exec(path, argv, o, devnull, wr);

        wr = safe_close(wr);
        int child_err = 0;
        ssize_t n = loop_read(rd, &child_err, sizeof(child_err));
        int pidfd = pidfd_open(pid, 0);
        if (n == (ssize_t) sizeof(child_err)) {
                (void) waitpid(pid, NULL, 0);
                safe_close(pidfd);
                if (o->pidfile_name) /* it may have written it before it failed */
                        (void) unlinkat(o->pidfile_dir_fd, o->pidfile_name, 0);
                return -child_err;
        }
        if (pidfd < 0) {
                int r = -errno;
                kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        *ret = (Process){ .pid = pid, .pidfd = pidfd };
        return 0;
}

int process_wait(Process *p, usec_t timeout, int *ret_status) {
        if (!p || p->pid <= 0 || p->pidfd < 0)
                return -ESRCH;
        usec_t deadline = deadline_from_timeout(timeout);
        int r = fd_wait_until(p->pidfd, POLLIN, deadline);
        if (r < 0)
                return r;
        siginfo_t si = {};
        if (waitid(P_PIDFD, (id_t) p->pidfd, &si, WEXITED) < 0) {
                if (errno != ECHILD)
                        return -errno;
                /* Not our child (re-attached): the pidfd said it exited. */
                if (ret_status)
                        *ret_status = 0;
                return 0;
        }
        if (ret_status)
                *ret_status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status;
        return 0;
}

int process_signal(Process *p, int sig) {
        if (!p || p->pidfd < 0)
                return -ESRCH;
        return pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

void process_release(Process *p) {
        if (!p)
                return;
        p->pidfd = safe_close(p->pidfd);
        p->pid = 0;
}

void process_kill_and_reap(Process *p) {
        if (!p || p->pidfd < 0)
                return;
        (void) process_signal(p, SIGKILL);
        (void) process_wait(p, 5 * USEC_PER_SEC, NULL);
        process_release(p);
}

void process_group_kill_and_reap(Process *p) {
        if (!p || p->pidfd < 0 || p->pid <= 0)
                return;
        (void) kill(-p->pid, SIGKILL); /* ESRCH: the group is gone already */
        process_kill_and_reap(p);
}

int spawn_run_capture(char *const argv[], usec_t timeout, size_t max_out, bool merge_stderr, char **ret_out) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        _cleanup_close_ int rd = p[0], wr = p[1];

        SpawnOptions o;
        spawn_options_init(&o);
        o.stdout_fd = wr;
        if (merge_stderr)
                o.stderr_fd = wr;
        Process proc = PROCESS_NULL;
        int r = spawn_process(argv, &o, &proc);
        if (r < 0)
                return r;
        wr = safe_close(wr);

        _cleanup_free_ char *buf = malloc(max_out + 1);
        size_t len = 0;
        if (!buf) {
                process_kill_and_reap(&proc);
                return -ENOMEM;
        }
        usec_t deadline = deadline_from_timeout(timeout);
        for (;;) {
                r = fd_wait_until(rd, POLLIN, deadline);
                if (r < 0) {
                        process_kill_and_reap(&proc);
                        return r;
                }
                char chunk[4096];
                ssize_t n = read(rd, chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                size_t take = MIN((size_t) n, max_out - len);
                memcpy(buf + len, chunk, take);
                len += take;
        }
        buf[len] = '\0';
        int status = 0;
        usec_t now = now_monotonic();
        r = process_wait(&proc, now >= deadline ? 0 : deadline - now, &status);
        if (r < 0) {
                process_kill_and_reap(&proc);
                return r;
        }
        process_release(&proc);
        if (ret_out)
                *ret_out = TAKE_PTR(buf);
        if (!WIFEXITED(status))
                return -ECHILD;
        return WEXITSTATUS(status);
}
