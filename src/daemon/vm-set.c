/* SPDX-License-Identifier: MIT */
/* Changing a stopped VM's size (vCPUs, memory). */
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
