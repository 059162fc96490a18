/* SPDX-License-Identifier: MIT */
/* When a VMM exits by itself: the guest powered off, crashed, or someone
 * killed it. One watcher per running VMM. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vm-internal.h"

typedef struct Watch {
        VmManager *m;
        char *id;
        int pidfd;
        unsigned generation;
} Watch;

/* A watcher saw the VMM exit: the guest powered off, crashed, or someone
 * killed it. Unless an operation already handled it, the VM is stopped. */
static int exit_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        unsigned generation = *(const unsigned *) userdata;
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        /* A boot in progress handles its own VMM's exit. */
        if (!rt || generation == 0 || rt->generation != generation || vm->state == VM_STATE_STARTING)
                return 0;
        log_info("vm %s: VMM exited; the VM is stopped", vm->name);
        (void) vmm_driver_get(vm->vmm)->wait_exit(&rt->inst, USEC_PER_SEC);
        vm_mark_stopped(m, s, vm);
        return 0;
}

static void vm_handle_exit(VmManager *m, const char *id, unsigned generation) {
        _cleanup_store_close_ Store *s = NULL;
        if (daemon_open_store(m->d, &s) >= 0)
                (void) vm_with_lock(m, s, id, 0, exit_locked, &generation);
}

static void *watch_main(void *p) {
        Watch *w = p;
        struct pollfd pfd = { .fd = w->pidfd, .events = POLLIN };
        while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
                ;
        safe_close(w->pidfd);
        if (!w->m->stopping)
                vm_handle_exit(w->m, w->id, w->generation);
        free(w->id);
        free(w);
        return NULL;
}

void vm_watch(VmManager *m, const char *id, VmRuntime *rt) {
        Watch *w = calloc(1, sizeof(*w));
        if (!w)
                return;
        *w = (Watch){ .m = m,
                      .id = strdup(id),
                      .pidfd = fcntl(rt->inst.proc.pidfd, F_DUPFD_CLOEXEC, 3),
                      .generation = rt->generation };
        if (!w->id || w->pidfd < 0) {
                safe_close(w->pidfd);
                free(w->id);
                free(w);
                return;
        }
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        if (pthread_create(&t, &attr, watch_main, w) != 0) {
                safe_close(w->pidfd);
                free(w->id);
                free(w);
        }
        pthread_attr_destroy(&attr);
}
