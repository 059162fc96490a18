/* SPDX-License-Identifier: MIT */
/* Deleting a VM: its VMM, host resources, files, known_hosts entry,
 * address and record. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "log.h"
#include "spawn.h"
#include "vm-internal.h"

/* How long a delete waits for a VMM whose liveness lock is held to become
 * identifiable (recovery already waited for it once). */
#define DELETE_ATTACH_TIMEOUT (2 * USEC_PER_SEC)

/* Find the VMM of an error VM through its driver: recovery marks a VM so
 * when it could not re-attach, and its VMM may still run. -ESRCH: none runs;
 * -EBUSY: something holds the liveness lock and is not identifiable. */
static int attach_lost_vmm(VmManager *m, Store *s, const VmRecord *vm, const char *run, VmmInstance *ret) {
        VmLaunchSpec spec = {};
        int r = vm_launch_spec_build(m, s, vm, &spec);
        if (r >= 0)
                r = vmm_attach_wait(vmm_driver_get(vm->vmm), &spec.cfg, DELETE_ATTACH_TIMEOUT, ret);
        else {
                /* No configuration to identify it by: the lock alone says. */
                int held = vmm_lock_held(run);
                r = held < 0 ? held : held ? -EBUSY : -ESRCH;
        }
        vm_launch_spec_done(&spec);
        return r == -ENOENT ? -ESRCH : r;
}

/* An error VM's VMM, if one is found, is killed. One that may run but cannot
 * be found keeps the VM (its disks may be in use) unless forced. */
static int kill_lost_vmm(VmManager *m, Store *s, const VmRecord *vm, bool force) {
        _cleanup_free_ char *run = vm_run_dir(m, vm->id);
        _cleanup_(vmm_instance_done) VmmInstance inst = { .proc = PROCESS_NULL };
        if (!run)
                return -ENOMEM;
        int r = attach_lost_vmm(m, s, vm, run, &inst);
        if (r == -ESRCH)
                return 0;
        if (r >= 0) {
                log_info("vm %s: killing its %s pid %d, which outlived an earlier failure", vm->name,
                         vmm_driver_get(vm->vmm)->name, (int) inst.proc.pid);
                r = vmm_driver_get(vm->vmm)->kill(&inst);
                if (r < 0 && r != -ESRCH)
                        return error_setf(r, "cannot kill the VMM of %s: %s", vm->name, strerror(-r));
                return 0;
        }
        if (!force && r == -EBUSY)
                return error_setf(r,
                                  "vm %s may still be running: a process holds %s/%s but cannot be identified as "
                                  "its VMM; end it, or delete with --force to leave it running",
                                  vm->name, run, VMM_LOCK_FILE);
        if (!force)
                return error_setf(r,
                                  "cannot tell whether the VMM of vm %s still runs in %s (%s); end it, or delete "
                                  "with --force to leave it running",
                                  vm->name, run, strerror(-r));
        log_warning("vm %s: deleted with --force although its VMM could not be found (%s); a process holding "
                    "%s/%s may still run",
                    vm->name, strerror(-r), run, VMM_LOCK_FILE);
        return 0;
}

/* Kill a VMM still running; never take disks and network from under a live
 * one. */
static int kill_vmm(VmManager *m, Store *s, const VmRecord *vm, bool force) {
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        if (!rt || rt->inst.proc.pidfd < 0)
                return vm->state == VM_STATE_ERROR ? kill_lost_vmm(m, s, vm, force) : 0;
        rt->generation = 0;
        int r = vmm_driver_get(vm->vmm)->kill(&rt->inst);
        if (r >= 0 || r == -ESRCH)
                return 0;
        r = error_setf(r, "cannot kill the VMM of %s: %s", vm->name, strerror(-r));
        (void) store_vm_set_state(s, vm->id, VM_STATE_ERROR, error_last_message());
        return r;
}

/* ssh-keygen -R, under both names a host key is kept: the address ('vm
 * ssh') and NAME.vm (plain ssh through 'banger ssh-config'). The next VM
 * with this address or name has another host key. */
static void forget_host_key(VmManager *m, const VmRecord *vm) {
        if (!vm->ip || !m->known_hosts ||
            faccessat(m->d->state_dir_fd, "ssh/known_hosts", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                return;
        _cleanup_free_ char *host = NULL;
        char *argv[] = { "ssh-keygen", "-R", vm->ip, "-f", m->known_hosts, NULL };
        (void) spawn_run_capture(argv, 10 * USEC_PER_SEC, 4096, true, NULL);
        if (asprintf(&host, "%s.vm", vm->name) >= 0) {
                argv[2] = host;
                (void) spawn_run_capture(argv, 10 * USEC_PER_SEC, 4096, true, NULL);
        }
        (void) unlinkat(m->d->state_dir_fd, "ssh/known_hosts.old", 0);
}

/* What the CLI kept of the VM's workspace (docs/workspaces.md). */
static void forget_workspace(VmManager *m, const VmRecord *vm) {
        _cleanup_close_ int wfd = open_dir_nofollow(m->d->state_dir_fd, "workspaces");
        int r = wfd >= 0 ? rm_rf_at(wfd, vm->id) : wfd == -ENOENT ? 0 : wfd;
        if (r < 0)
                log_warning_errno(r, "vm %s: cannot remove its workspace record: %m", vm->name);
}

static int delete_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        int flags = *(const int *) userdata;
        if ((flags & VM_DELETE_ONLY_IDLE) && vm->state != VM_STATE_STOPPED && vm->state != VM_STATE_CREATED &&
            vm->state != VM_STATE_ERROR)
                return error_setf(-EBUSY, "vm %s is %s now", vm->name, vm_state_to_string(vm->state));
        char what[80];
        snprintf(what, sizeof(what), "VM %s", vm->name);
        int r = snapshot_dependents_delete(m, s, NULL, vm->id, what, flags & VM_DELETE_FORCE);
        if (r >= 0)
                r = kill_vmm(m, s, vm, flags & VM_DELETE_FORCE);
        if (r < 0)
                return r;
        vm_runtime_drop(m, vm->id);
        bool nat = vm->nat;
        vm->nat = false; /* so the NAT sync below no longer sees it */
        vm->state = VM_STATE_STOPPED;
        (void) store_vm_update(s, vm);
        vm->nat = nat;
        vm_release_host(m, s, vm);
        vm_remove_files(m, vm->id);
        forget_workspace(m, vm);
        forget_host_key(m, vm);
        (void) store_ip_release(s, vm->id);
        r = store_vm_delete(s, vm->id);
        if (r >= 0)
                log_info("vm %s deleted", vm->name);
        return r;
}

int vm_op_delete(VmManager *m, Store *s, const char *id, int flags) {
        /* prune must not interrupt anything; an explicit delete may. */
        return vm_with_lock(m, s, id, (flags & VM_DELETE_ONLY_IDLE) ? 0 : VM_LOCK_PREEMPT, delete_locked, &flags);
}
