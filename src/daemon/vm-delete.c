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

/* Kill a VMM still running; never take disks and network from under a live
 * one. A VM in error may have one recovery could not identify: it is looked
 * for again; one that may run but cannot be found keeps the VM (its disks
 * may be in use) unless forced, which says so in *warning. */
static int kill_vmm(VmManager *m, Store *s, const VmRecord *vm, bool force, char **warning) {
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        if ((!rt || rt->inst.proc.pidfd < 0) && vm->state == VM_STATE_ERROR) {
                int r = vm_lost_vmm_find(m, s, vm, force ? NULL : "delete", &rt);
                if (r < 0 && r != -ESRCH && !force)
                        return r;
                if (r < 0 && r != -ESRCH) {
                        if (asprintf(warning,
                                     "%s; deleted anyway (--force): if it still runs, end it yourself (fuser -v names "
                                     "it)",
                                     error_last_message() ?: strerror(-r)) < 0)
                                *warning = NULL;
                        log_warning("%s", *warning ?: "vm deleted with --force while its VMM may still run");
                        error_clear();
                }
        }
        if (!rt || rt->inst.proc.pidfd < 0)
                return 0;
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

typedef struct DeleteArgs {
        int flags;
        char *warning;
} DeleteArgs;

static int delete_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        DeleteArgs *a = userdata;
        int flags = a->flags;
        if ((flags & VM_DELETE_ONLY_IDLE) && vm->state != VM_STATE_STOPPED && vm->state != VM_STATE_CREATED &&
            vm->state != VM_STATE_ERROR)
                return error_setf(-EBUSY, "vm %s is %s now", vm->name, vm_state_to_string(vm->state));
        char what[80];
        snprintf(what, sizeof(what), "VM %s", vm->name);
        int r = snapshot_dependents_delete(m, s, NULL, vm->id, what, flags & VM_DELETE_FORCE);
        if (r >= 0)
                r = kill_vmm(m, s, vm, flags & VM_DELETE_FORCE, &a->warning);
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

int vm_op_delete(VmManager *m, Store *s, const char *id, int flags, char **ret_warning) {
        DeleteArgs a = { .flags = flags };
        /* prune must not interrupt anything; an explicit delete may. */
        int r = vm_with_lock(m, s, id, (flags & VM_DELETE_ONLY_IDLE) ? 0 : VM_LOCK_PREEMPT, delete_locked, &a);
        if (r >= 0 && ret_warning)
                *ret_warning = TAKE_PTR(a.warning);
        free(a.warning);
        return r;
}
