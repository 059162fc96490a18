/* SPDX-License-Identifier: MIT */
/* Pausing and resuming a VM: the VMM's own pause (QMP stop/cont, Firecracker
 * PATCH /vm). The state is recorded before the VMM is asked, and put back
 * when the VMM refuses. */
#include <errno.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "vm-internal.h"

static int pause_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        bool pause = *(const bool *) userdata;
        VmState from = pause ? VM_STATE_RUNNING : VM_STATE_PAUSED, to = pause ? VM_STATE_PAUSED : VM_STATE_RUNNING;
        if (vm->state == to)
                return 0;
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        if (vm->state != from || !rt || rt->inst.proc.pidfd < 0)
                return error_setf(-EBUSY, "VM %s is %s; only a %s VM can be %s", vm->name,
                                  vm_state_to_string(vm->state), pause ? "running" : "paused",
                                  pause ? "paused" : "resumed");
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        vm->state = to;
        int r = vm_save(s, vm);
        if (r < 0)
                return r;
        r = pause ? drv->pause(&rt->inst) : drv->resume(&rt->inst);
        if (r < 0) {
                r = error_setf(r, "cannot %s VM %s: %s", pause ? "pause" : "resume", vm->name,
                               error_last_message() ? error_last_message() : strerror(-r));
                vm->state = from;
                (void) vm_save(s, vm);
                return r;
        }
        log_info("vm %s %s", vm->name, pause ? "paused" : "resumed");
        return 0;
}

int vm_op_pause(VmManager *m, Store *s, const char *id, bool pause) {
        return vm_with_lock(m, s, id, 0, pause_locked, &pause);
}
