/* SPDX-License-Identifier: MIT */
/* Changing a stopped VM's size (vCPUs, memory). */
#include <errno.h>

#include "error.h"
#include "vm-internal.h"

int vm_op_set(VmManager *m, Store *s, const char *id, unsigned vcpu, unsigned long long memory_mib) {
        VmLock *l = vm_lock(m, id);
        if (!l)
                return -ENOMEM;
        VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r >= 0 && vm.state != VM_STATE_STOPPED && vm.state != VM_STATE_CREATED && vm.state != VM_STATE_ERROR)
                r = error_setf(-EBUSY, "VM %s is %s; stop it first", vm.name, vm_state_to_string(vm.state));
        if (r >= 0) {
                if (vcpu)
                        vm.vcpus = vcpu;
                if (memory_mib)
                        vm.mem_mib = memory_mib;
                r = store_vm_update(s, &vm);
        }
        vm_record_done(&vm);
        vm_unlock(m, l);
        return r;
}
