/* SPDX-License-Identifier: MIT */
/* When a VMM exits by itself: the guest powered off, crashed, or someone
 * killed it. Each running VMM's pidfd is watched on the event loop
 * (exit-watch.c); the loop hands the exit to a worker, which takes the VM's
 * lock (a stop may hold it for a while) and, unless an operation already
 * dealt with it, records the VM stopped and releases its host resources. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exit-watch.h"
#include "log.h"
#include "vm-internal.h"

typedef struct Watch {
        VmManager *m;
        char *id;
        unsigned generation; /* of the launch watched: a newer one is not this exit's */
} Watch;

static void watch_free(void *p) {
        Watch *w = p;
        free(w->id);
        free(w);
}

static int exit_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        unsigned generation = *(const unsigned *) userdata;
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        /* A boot in progress handles its own VMM's exit; a stop, kill or
         * delete set the generation to 0. */
        if (!rt || generation == 0 || rt->generation != generation || vm->state == VM_STATE_STARTING)
                return 0;
        log_info("vm %s: VMM exited; the VM is stopped", vm->name);
        (void) vmm_driver_get(vm->vmm)->wait_exit(&rt->inst, USEC_PER_SEC);
        vm_mark_stopped(m, s, vm);
        return 0;
}

/* In a worker. */
static void handle_exit(void *p) {
        Watch *w = p;
        _cleanup_store_close_ Store *s = NULL;
        if (daemon_open_store(w->m->d, &s) >= 0)
                (void) vm_with_lock(w->m, s, w->id, 0, exit_locked, &w->generation);
}

/* On the loop: nothing here may block. */
static void on_vmm_exit(void *p) {
        Watch *w = p;
        int r = workers_start(w->m->d->workers, handle_exit, watch_free, w, WORKER_UNLIMITED);
        if (r < 0) {
                log_warning_errno(r, "vm %s: its VMM exited, but no worker could record it: %m", w->id);
                watch_free(w);
        }
}

void vm_watch(VmManager *m, const char *id, VmRuntime *rt) {
        Watch *w = calloc(1, sizeof(*w));
        if (!w || !(w->id = strdup(id))) {
                free(w);
                log_warning("vm %s: out of memory for its exit watch", id);
                return;
        }
        w->m = m;
        w->generation = rt->generation;
        int r = exit_watch_add(m->d->exits, rt->inst.proc.pidfd, on_vmm_exit, w, watch_free);
        if (r < 0) {
                log_warning_errno(r, "vm %s: cannot watch its VMM: %m", id);
                watch_free(w);
        }
}
