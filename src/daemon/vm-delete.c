/* SPDX-License-Identifier: MIT */
/* Deleting a VM: its VMM, host resources, files, address and record. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "spawn.h"
#include "vm-internal.h"

int vm_op_delete(VmManager *m, Store *s, const char *id, int flags) {
        /* prune must not interrupt anything; an explicit delete may. */
        VmLock *l = (flags & VM_DELETE_ONLY_IDLE) ? vm_lock(m, id) : vm_lock_preempt(m, id);
        if (!l)
                return -ENOMEM;
        VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r >= 0 && (flags & VM_DELETE_ONLY_IDLE) && vm.state != VM_STATE_STOPPED && vm.state != VM_STATE_CREATED &&
            vm.state != VM_STATE_ERROR)
                r = error_setf(-EBUSY, "VM %s is %s now", vm.name, vm_state_to_string(vm.state));
        VmRuntime *rt = r >= 0 ? vm_runtime_get(m, id, false) : NULL;
        if (rt && rt->inst.proc.pidfd >= 0) {
                rt->generation = 0;
                int k = vmm_driver_get(vm.vmm)->kill(&rt->inst);
                if (k < 0 && k != -ESRCH) {
                        /* Never take disks and network from under a live VMM. */
                        r = error_setf(k, "cannot kill the VMM of %s: %s", vm.name, strerror(-k));
                        (void) store_vm_set_state(s, id, VM_STATE_ERROR, error_last_message());
                }
        }
        if (r >= 0) {
                vm_runtime_drop(m, id);
                bool nat = vm.nat;
                vm.nat = false; /* so the NAT sync below no longer sees it */
                vm.state = VM_STATE_STOPPED;
                (void) store_vm_update(s, &vm);
                vm.nat = nat;
                vm_release_host(m, s, &vm);
                vm_remove_files(m, id);
                if (vm.ip && m->known_hosts && access(m->known_hosts, F_OK) == 0) {
                        /* Both names a host key is kept under: the address ('vm ssh')
                         * and NAME.vm (plain ssh through 'banger ssh-config'). */
                        _cleanup_free_ char *host = NULL;
                        char *argv[] = { "ssh-keygen", "-R", vm.ip, "-f", m->known_hosts, NULL };
                        (void) spawn_run_capture(argv, 10 * USEC_PER_SEC, 4096, true, NULL);
                        if (asprintf(&host, "%s.vm", vm.name) >= 0) {
                                argv[2] = host;
                                (void) spawn_run_capture(argv, 10 * USEC_PER_SEC, 4096, true, NULL);
                        }
                        _cleanup_free_ char *old = NULL;
                        if (asprintf(&old, "%s.old", m->known_hosts) >= 0)
                                (void) unlink(old);
                }
                (void) store_ip_release(s, id);
                r = store_vm_delete(s, id);
                if (r >= 0)
                        log_info("vm %s deleted", vm.name);
        }
        vm_record_done(&vm);
        vm_unlock(m, l);
        return r;
}
