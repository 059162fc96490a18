/* SPDX-License-Identifier: MIT */
/* Changing a stopped VM's size (vCPUs, memory), and any VM's idle settings. */
#include <errno.h>

#include "error.h"
#include "vm-internal.h"

typedef struct Size {
        unsigned vcpu;
        unsigned long long memory_mib;
} Size;

static int set_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        const Size *z = userdata;
        if (vm->state != VM_STATE_STOPPED && vm->state != VM_STATE_CREATED && vm->state != VM_STATE_ERROR)
                return error_setf(-EBUSY, "vm %s is %s; stop it first", vm->name, vm_state_to_string(vm->state));
        if (z->vcpu)
                vm->vcpus = z->vcpu;
        if (z->memory_mib)
                vm->mem_mib = z->memory_mib;
        return store_vm_update(s, vm);
}

int vm_op_set(VmManager *m, Store *s, const char *id, unsigned vcpu, unsigned long long memory_mib) {
        return vm_with_lock(m, s, id, 0, set_locked, &(Size){ vcpu, memory_mib });
}

typedef struct Idle {
        bool set;
        int64_t timeout_sec;
        int action;
} Idle;

static int set_idle_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        const Idle *z = userdata;
        if (z->set)
                vm->idle_timeout_sec = z->timeout_sec;
        if (z->action >= 0)
                vm->idle_action = (VmIdleAction) z->action;
        int r = store_vm_update(s, vm);
        if (r >= 0)
                vm_idle_kick(m);
        return r;
}

int vm_op_set_idle(VmManager *m, Store *s, const char *id, bool set, int64_t timeout_sec, int action) {
        return vm_with_lock(m, s, id, 0, set_idle_locked, &(Idle){ set, timeout_sec, action });
}
