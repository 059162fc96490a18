/* SPDX-License-Identifier: MIT */
/* A test-only LD_PRELOAD shim for bangerd that holds a VMM launch still at
 * one of the two moments a daemon killed then used to lose track of its VMM
 * (tests/integration/test_crash_spawn.py):
 *
 *   BANGER_STALL_MARK=PATH        written when the stall begins: the VMM's pid
 *   BANGER_STALL_AT=before-exec   the child, between fork and exec, waits
 *                                 BANGER_STALL_MS (default 2000) ms, then execs
 *   BANGER_STALL_AT=after-exec    the daemon, once the VMM has exec'd (its
 *                                 first pidfd_open of it), waits forever
 *
 * A VMM launch is told from other spawns by "--api-sock" (Firecracker) or
 * "-pidfile" (QEMU) in its argv. Only the first launch stalls. The variables are
 * read at load time: the forked child may call only async-signal-safe code. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int (*real_execve)(const char *, char *const[], char *const[]);
static int (*real_pidfd_open)(pid_t, unsigned);
static const char *mark, *at;
static long stall_ms = 2000;
static bool stalled;

__attribute__((constructor)) static void init(void) {
        real_execve = (int (*)(const char *, char *const[], char *const[])) dlsym(RTLD_NEXT, "execve");
        real_pidfd_open = (int (*)(pid_t, unsigned)) dlsym(RTLD_NEXT, "pidfd_open");
        mark = getenv("BANGER_STALL_MARK");
        at = getenv("BANGER_STALL_AT");
        if (getenv("BANGER_STALL_MS"))
                stall_ms = atol(getenv("BANGER_STALL_MS"));
}

static bool is_vmm_argv(char *const argv[]) {
        for (size_t i = 0; argv && argv[i]; i++)
                if (strcmp(argv[i], "--api-sock") == 0 || strcmp(argv[i], "-pidfile") == 0)
                        return true;
        return false;
}

/* The VMM's pid into the mark, whole or not at all (a temporary name renamed
 * over it); no stdio: the forked child calls this. */
static void set_mark(pid_t pid) {
        char tmp[4096], digits[16], line[20];
        size_t n = 0, len = strlen(mark);
        if (len + 5 > sizeof(tmp))
                return;
        memcpy(tmp, mark, len);
        memcpy(tmp + len, ".tmp", 5);
        do
                digits[n++] = (char) ('0' + pid % 10);
        while ((pid /= 10) > 0);
        for (len = 0; n > 0;)
                line[len++] = digits[--n];
        line[len++] = '\n';
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return;
        ssize_t w = write(fd, line, len);
        close(fd);
        if (w == (ssize_t) len)
                (void) rename(tmp, mark);
}

int execve(const char *path, char *const argv[], char *const envp[]) {
        if (mark && at && strcmp(at, "before-exec") == 0 && is_vmm_argv(argv) && access(mark, F_OK) < 0) {
                set_mark(getpid());
                struct timespec ts = { .tv_sec = stall_ms / 1000, .tv_nsec = (stall_ms % 1000) * 1000000L };
                while (nanosleep(&ts, &ts) < 0)
                        ;
        }
        return real_execve(path, argv, envp);
}

static bool pid_is_our_child(pid_t pid) {
        char path[64], buf[4096];
        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        const char *p = strstr(buf, "\nPPid:\t");
        return p && atoi(p + 7) == (int) getpid();
}

/* A VMM this daemon started (not one it re-attaches to). */
static bool pid_is_vmm(pid_t pid) {
        char path[64], buf[8192];
        if (!pid_is_our_child(pid))
                return false;
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        char *argv[1024];
        size_t k = 0;
        for (char *p = buf; p < buf + n && k < 1023; p += strlen(p) + 1)
                argv[k++] = p;
        argv[k] = NULL;
        return is_vmm_argv(argv);
}

int pidfd_open(pid_t pid, unsigned flags) {
        if (mark && at && strcmp(at, "after-exec") == 0 && !stalled && pid_is_vmm(pid)) {
                stalled = true;
                set_mark(pid);
                for (;;)
                        pause();
        }
        return real_pidfd_open(pid, flags);
}
