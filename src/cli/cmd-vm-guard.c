/* SPDX-License-Identifier: MIT */
/* Deleting a "vm run --rm" VM exactly once, also on signals. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "cmd-vm-guard.h"
#include "cmd-vm.h"
#include "macro.h"
#include "spawn.h"

extern char **environ;

struct VmRunGuard {
        Cli *cli;
        pthread_mutex_t lock;
        pthread_t thread;
        bool thread_running;
        int sigfd, stopfd;
        char *vm_id;
        bool created, deleted;
        int signal;
};

static void guard_signals(sigset_t *set) {
        sigemptyset(set);
        sigaddset(set, SIGINT);
        sigaddset(set, SIGTERM);
        sigaddset(set, SIGHUP);
}

/* Returns true for exactly one caller once the VM exists. */
static bool claim_delete(VmRunGuard *g) {
        pthread_mutex_lock(&g->lock);
        bool mine = g->created && g->vm_id && !g->deleted;
        if (mine)
                g->deleted = true;
        pthread_mutex_unlock(&g->lock);
        return mine;
}

static void delete_vm(VmRunGuard *g, RpcClient *c) {
        if (vm_delete_ref(g->cli, c, g->vm_id) >= 0 && !g->cli->json)
                fprintf(stderr, "banger: deleted VM %.12s\n", g->vm_id);
}

static void on_signal(VmRunGuard *g, int sig) {
        pthread_mutex_lock(&g->lock);
        if (!g->signal)
                g->signal = sig;
        bool created = g->created;
        pthread_mutex_unlock(&g->lock);
        fprintf(stderr, "\nbanger: %s: %s\n", strsignal(sig),
                created ? "deleting the VM" : "the VM will be deleted once its creation finishes");
        if (!claim_delete(g))
                return;
        /* The main thread's client may be busy in a call: use our own. */
        RpcClient *c = NULL;
        if (rpc_client_connect(g->cli->socket_path, &c) < 0) {
                fprintf(stderr, "banger: cannot reach the daemon to delete %s\n", g->vm_id);
                return;
        }
        delete_vm(g, c);
        rpc_client_free(c);
}

static void *watcher_main(void *userdata) {
        VmRunGuard *g = userdata;
        for (;;) {
                struct pollfd p[2] = { { .fd = g->sigfd, .events = POLLIN }, { .fd = g->stopfd, .events = POLLIN } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return NULL;
                }
                if (p[1].revents)
                        return NULL;
                struct signalfd_siginfo si;
                if (p[0].revents && read(g->sigfd, &si, sizeof(si)) == (ssize_t) sizeof(si))
                        on_signal(g, (int) si.ssi_signo);
        }
}

int vm_run_guard_new(Cli *cli, VmRunGuard **ret) {
        VmRunGuard *g = calloc(1, sizeof(VmRunGuard));
        if (!g)
                return -ENOMEM;
        g->cli = cli;
        g->sigfd = g->stopfd = -EBADF;
        pthread_mutex_init(&g->lock, NULL);
        sigset_t set;
        guard_signals(&set);
        if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
                goto fail;
        g->sigfd = signalfd(-1, &set, SFD_CLOEXEC);
        g->stopfd = eventfd(0, EFD_CLOEXEC);
        if (g->sigfd < 0 || g->stopfd < 0 || pthread_create(&g->thread, NULL, watcher_main, g) != 0)
                goto fail;
        g->thread_running = true;
        *ret = g;
        return 0;
fail:
        vm_run_guard_free(g);
        return -errno ?: -EIO;
}

void vm_run_guard_created(VmRunGuard *g, const char *vm_id) {
        pthread_mutex_lock(&g->lock);
        free(g->vm_id);
        g->vm_id = vm_id ? strdup(vm_id) : NULL;
        g->created = true;
        pthread_mutex_unlock(&g->lock);
}

bool vm_run_guard_interrupted(VmRunGuard *g) {
        if (!g)
                return false;
        pthread_mutex_lock(&g->lock);
        bool s = g->signal != 0;
        pthread_mutex_unlock(&g->lock);
        return s;
}

static void stop_watcher(VmRunGuard *g) {
        if (!g->thread_running)
                return;
        uint64_t one = 1;
        (void) !write(g->stopfd, &one, sizeof(one));
        pthread_join(g->thread, NULL); /* waits for a deletion in progress */
        g->thread_running = false;
}

int vm_run_guard_finish(VmRunGuard *g, RpcClient *c, int status) {
        stop_watcher(g);
        if (claim_delete(g))
                delete_vm(g, c);
        /* Signals stay blocked: any that arrive now are moot, the VM is gone. */
        return g->signal ? 128 + g->signal : status;
}

VmRunGuard *vm_run_guard_free(VmRunGuard *g) {
        if (!g)
                return NULL;
        stop_watcher(g);
        safe_close(g->sigfd);
        safe_close(g->stopfd);
        pthread_mutex_destroy(&g->lock);
        free(g->vm_id);
        free(g);
        return NULL;
}

int vm_run_guard_spawn_wait(char **argv) {
        SpawnOptions o;
        spawn_options_init(&o);
        o.stdin_fd = STDIN_FILENO;
        o.stdout_fd = STDOUT_FILENO;
        o.stderr_fd = STDERR_FILENO;
        o.umask = 022;
        o.env = environ;
        Process p = PROCESS_NULL;
        int r = spawn_process(argv, &o, &p);
        if (r < 0) {
                fprintf(stderr, "banger: cannot run %s: %s\n", argv[0], strerror(-r));
                return EXIT_FAIL;
        }
        int st = 0;
        r = process_wait(&p, USEC_INFINITY, &st);
        process_release(&p);
        if (r < 0)
                return EXIT_FAIL;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
