/* SPDX-License-Identifier: MIT */
/* Stopping a VM (the agent powers the guest off; the VMM is killed when that
 * does not work in time) and sending its VMM a signal. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "vm-internal.h"

void vm_mark_stopped(VmManager *m, Store *s, VmRecord *vm) {
        vm_runtime_drop(m, vm->id);
        vm->state = VM_STATE_STOPPED;
        vm->pid = 0;
        vm_set_runtime(vm, false, false);
        /* Recorded first: the NAT table is regenerated from the database. */
        (void) vm_save(s, vm);
        vm_release_host(m, s, vm);
}

/* Ask the guest to power off (through its agent, else the VMM), then wait
 * for the VMM until the timeout; < 0: it is to be killed. A VMM found again
 * after an error (lost) has no agent connection of ours: only the VMM is
 * asked, and one that cannot be asked is killed at once. */
static int stop_gracefully(VmManager *m, const VmRecord *vm, VmRuntime *rt, usec_t timeout, bool lost) {
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        /* One deadline for the whole stop, the agent's part included. */
        usec_t deadline = now_monotonic() + timeout;
        int r = lost ? -ENOTCONN : vm_agent_poweroff(m, vm->id, deadline);
        if (r < 0 && !lost) {
                log_info("vm %s: agent poweroff failed (%s); asking the VMM", vm->name, strerror(-r));
                (void) drv->request_shutdown(&rt->inst);
        } else if (r < 0 && (r = drv->request_shutdown(&rt->inst)) < 0) {
                log_info("vm %s: its %s takes no shutdown request (%s); killing it", vm->name, drv->name, strerror(-r));
                return r;
        }
        usec_t now = now_monotonic();
        r = drv->wait_exit(&rt->inst, now < deadline ? deadline - now : 0);
        if (r == -ETIMEDOUT)
                log_warning("vm %s: did not stop within %llu s; killing it", vm->name,
                            (unsigned long long) (timeout / USEC_PER_SEC));
        return r;
}

int vm_stop_locked(VmManager *m, Store *s, VmRecord *vm, usec_t timeout, bool force) {
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        bool lost = false;
        if (vm->state == VM_STATE_SUSPENDED)
                return vm_suspend_discard(m, s, vm);
        if ((!rt || rt->inst.proc.pidfd < 0) && vm->state == VM_STATE_ERROR) {
                int r = vm_lost_vmm_find(m, s, vm, force ? "kill" : "stop", &rt);
                if (r < 0 && r != -ESRCH)
                        return r;
                lost = r >= 0;
        }
        if (!rt || rt->inst.proc.pidfd < 0) {
                if (!vm_state_is_live(vm->state))
                        return 1; /* nothing to do: "already stopped" */
                vm_mark_stopped(m, s, vm);
                return 0;
        }
        /* A paused guest cannot power off: let it run again first. */
        if (vm->state == VM_STATE_PAUSED && !force)
                (void) drv->resume(&rt->inst);
        vm->state = VM_STATE_STOPPING;
        (void) vm_save(s, vm);
        rt->generation = 0;
        int r = force ? 0 : stop_gracefully(m, vm, rt, timeout, lost);
        if (force || r < 0)
                (void) drv->kill(&rt->inst);
        vm_mark_stopped(m, s, vm);
        return 0;
}

typedef struct StopArgs {
        usec_t timeout;
        bool force;
} StopArgs;

static int stop_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        const StopArgs *a = userdata;
        return vm_stop_locked(m, s, vm, a->timeout, a->force);
}

int vm_op_stop(VmManager *m, Store *s, const char *id, usec_t timeout) {
        return vm_with_lock(m, s, id, VM_LOCK_PREEMPT, stop_locked, &(StopArgs){ .timeout = timeout });
}

static int kill_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        int sig = *(const int *) userdata;
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        if (vm->state == VM_STATE_SUSPENDED && sig == SIGKILL)
                return vm_suspend_discard(m, s, vm);
        if (vm->state == VM_STATE_SUSPENDED)
                return error_setf(-ESRCH, "vm %s is suspended: it has no VMM process to signal", vm->name);
        bool lost = false;
        if ((!rt || rt->inst.proc.pidfd < 0) && vm->state == VM_STATE_ERROR) {
                int r = vm_lost_vmm_find(m, s, vm, "kill", &rt);
                if (r < 0 && r != -ESRCH)
                        return r;
                lost = r >= 0;
        }
        if (!rt || rt->inst.proc.pidfd < 0)
                return error_setf(-ESRCH, "vm %s is not running", vm->name);
        if (sig == SIGKILL)
                return vm_stop_locked(m, s, vm, 0, true);
        int r = process_signal(&rt->inst.proc, sig);
        /* A fatal signal ends the VMM; a harmless one leaves it running. */
        if (r >= 0 && vmm_driver_get(vm->vmm)->wait_exit(&rt->inst, 5 * USEC_PER_SEC) == 0) {
                rt->generation = 0;
                vm_mark_stopped(m, s, vm);
        } else if (lost)
                vm_runtime_drop(m, vm->id); /* still in error, as it was found */
        return r < 0 ? r : 0;
}

int vm_op_kill(VmManager *m, Store *s, const char *id, int sig) {
        return vm_with_lock(m, s, id, sig == SIGKILL ? VM_LOCK_PREEMPT : 0, kill_locked, &sig);
}
