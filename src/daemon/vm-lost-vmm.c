/* SPDX-License-Identifier: MIT */
/* The VMM of a VM in state error: recovery marks a VM so when a process holds
 * its liveness lock (vmm.lock) but could not be identified as its VMM in
 * time, so that VMM may still run. Stop, kill and delete look for it again
 * before they act on the VM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "console-stream.h"
#include "error.h"
#include "log.h"
#include "vm-internal.h"

/* How long stop, kill or delete waits for a VMM whose liveness lock is held
 * to become identifiable (recovery already waited for it once). */
#define LOST_ATTACH_TIMEOUT (2 * USEC_PER_SEC)

/* Through the driver when the VM's configuration can be built (it names the
 * sockets and pidfile to identify the VMM by), else by the lock alone. */
static int attach_lost(VmManager *m, Store *s, const VmRecord *vm, const char *run, VmmInstance *ret) {
        VmLaunchSpec spec = {};
        int r = vm_launch_spec_build(m, s, vm, &spec);
        if (r >= 0)
                r = vmm_attach_wait(vmm_driver_get(vm->vmm), &spec.cfg, LOST_ATTACH_TIMEOUT, ret);
        else {
                int held = vmm_lock_held(run);
                r = held < 0 ? held : held ? -EBUSY : -ESRCH;
        }
        vm_launch_spec_done(&spec);
        return r == -ENOENT ? -ESRCH : r;
}

/* What to do about a VMM that may run but cannot be found: end it, then ask
 * again (a delete may also go on without it). */
static int lost_error(const VmRecord *vm, const char *run, const char *verb, int r) {
        char advice[128] = "";
        if (verb && strcmp(verb, "delete") == 0)
                snprintf(advice, sizeof(advice), "; end it, or delete with --force to leave it running");
        else if (verb)
                snprintf(advice, sizeof(advice), "; end it (fuser -v names it), then %s the VM again", verb);
        if (r == -EBUSY)
                return error_setf(
                        r, "vm %s may still be running: a process holds %s/%s but cannot be identified as its VMM%s",
                        vm->name, run, VMM_LOCK_FILE, advice);
        return error_setf(r, "cannot tell whether the VMM of vm %s still runs in %s (%s)%s", vm->name, run,
                          strerror(-r), advice);
}

int vm_lost_vmm_find(VmManager *m, Store *s, const VmRecord *vm, const char *verb, VmRuntime **ret) {
        _cleanup_free_ char *run = vm_run_dir(m, vm->id);
        vm_runtime_drop(m, vm->id); /* one without a VMM: attached afresh */
        VmRuntime *rt = run ? vm_runtime_get(m, vm->id, true) : NULL;
        if (!rt)
                return -ENOMEM;
        int r = attach_lost(m, s, vm, run, &rt->inst);
        if (r < 0) {
                vm_runtime_drop(m, vm->id);
                console_stream_close(m->d->consoles, vm->id);
                return r == -ESRCH ? r : lost_error(vm, run, verb, r);
        }
        rt->generation = 0; /* no exit watcher: the caller ends it */
        log_info("vm %s: found its %s pid %d, which outlived an earlier failure", vm->name,
                 vmm_driver_get(vm->vmm)->name, (int) rt->inst.proc.pid);
        *ret = rt;
        return 0;
}
