/* SPDX-License-Identifier: MIT */
/* Recovery at daemon start: re-attach to the VMMs of running VMs, mark the
 * others stopped or in error, and reconcile host resources. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "console-stream.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "log.h"
#include "string-util.h"
#include "vm-internal.h"

/* Its VMM is gone, or killed here: stopped, and what it held released. */
static void recover_stopped(VmManager *m, Store *s, VmRecord *vm, const char *why) {
        vm_runtime_drop(m, vm->id);
        console_stream_close(m->d->consoles, vm->id);
        vm->state = VM_STATE_STOPPED;
        vm->pid = 0;
        if (why) {
                free(vm->last_error);
                vm->last_error = strdup(why);
                vm_set_runtime(vm, false, false);
        }
        /* Recorded first: the NAT table is regenerated from the database. */
        (void) store_vm_update(s, vm);
        vm_release_host(m, s, vm);
}

/* A start the daemon's death cut short after the VMM was launched but
 * before it was told to boot the guest (QEMU still at -S, Firecracker
 * before InstanceStart, a restore not yet resumed) left a VMM whose guest
 * never ran. Only the VMM knows: a mark written before the boot step could
 * not say whether the step happened. One that cannot say counts as not
 * started: the start did not finish either way. */
static bool guest_never_started(const VmmDriver *drv, const VmRecord *vm, VmRuntime *rt) {
        if (vm->state != VM_STATE_STARTING)
                return false;
        const char *state = NULL;
        int r = drv->query_state(&rt->inst, &state);
        if (r >= 0 && streq(state, "running"))
                return false;
        log_warning("vm %s: its start was interrupted before the guest booted (%s %s); killing its VMM", vm->name,
                    drv->name, r < 0 ? "does not answer" : state);
        return true;
}

/* How long a VMM whose liveness lock is held may take to become
 * identifiable (its exec, its pidfile or socket): a start cut short right
 * after its fork. */
#define RECOVER_ATTACH_TIMEOUT (5 * USEC_PER_SEC)

static void vm_recover_one(VmManager *m, Store *s, VmRecord *vm) {
        VmLaunchSpec spec = {};
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        int r = vm_launch_spec_build(m, s, vm, &spec);
        VmRuntime *rt = r >= 0 ? vm_runtime_get(m, vm->id, true) : NULL;
        if (rt)
                r = vmm_attach_wait(drv, &spec.cfg, RECOVER_ATTACH_TIMEOUT, &rt->inst);
        vm_launch_spec_done(&spec);
        if (rt && r >= 0 && guest_never_started(drv, vm, rt)) {
                /* As a failed start's undo: the VMM, then its TAP, NAT entry and runtime files. */
                (void) drv->kill(&rt->inst);
                recover_stopped(m, s, vm, "its start was interrupted (daemon stopped) before the guest booted");
                return;
        }
        if (rt && r >= 0) {
                rt->generation = ++m->next_generation;
                vm->pid = rt->inst.proc.pid;
                vm->state = vm->state == VM_STATE_PAUSED ? VM_STATE_PAUSED : VM_STATE_RUNNING;
                (void) store_vm_update(s, vm);
                vm_watch(m, vm->id, rt);
                if (vm_agent_start(m, vm, rt) < 0)
                        log_warning("vm %s: %s", vm->name, error_last_message());
                vm_forwards_restore(m, s, vm, rt);
                log_info("vm %s: re-attached to %s pid %d", vm->name, drv->name, (int) vm->pid);
                return;
        }
        if (r != -ESRCH && r != -ENOENT) {
                vm_runtime_drop(m, vm->id);
                console_stream_close(m->d->consoles, vm->id);
                /* Unsure whether it still runs: touch nothing it may be using. */
                log_warning("vm %s: cannot re-attach to its VMM (%s); marking it error", vm->name, strerror(-r));
                (void) store_vm_set_state(s, vm->id, VM_STATE_ERROR, "could not re-attach after a daemon restart");
                return;
        }
        log_info("vm %s: its VMM is gone (%s); marking it stopped", vm->name, strerror(-r));
        recover_stopped(m, s, vm, NULL);
}

/* A stop or delete the daemon's death cut short after the VMM and the TAP
 * went may have left the VM's runtime directory (sockets, pid files): one of
 * a VM that is not running, or of no VM at all, is removed. An error VM keeps
 * its own: recovery marks a VM so when unsure its VMM is gone. */
static void sweep_runtime_dirs(VmManager *m, Store *s) {
        _cleanup_close_ int dfd = open_dir_nofollow(m->d->runtime_dir_fd, "vms");
        if (dfd < 0)
                return;
        int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                safe_close(fd);
                return;
        }
        for (struct dirent *de; (de = readdir(d));) {
                _cleanup_(vm_record_done) VmRecord vm = {};
                if (de->d_name[0] == '.')
                        continue;
                int r = store_vm_get_by_id(s, de->d_name, &vm);
                if (r != -ENOENT && (r < 0 || vm_state_is_live(vm.state) || vm.state == VM_STATE_ERROR))
                        continue;
                log_info("removing the runtime directory of %s: %s", r < 0 ? de->d_name : vm.name,
                         r < 0 ? "no VM has this id" : "the VM is not running");
                (void) rm_rf_at(dfd, de->d_name);
        }
        closedir(d);
}

/* Recovery marks a VM error when a process holds its liveness lock but could
 * not be identified as its VMM: that VMM may still run on its TAP, which
 * the reconcile must then leave alone (as its disks and runtime files):
 * removed, it would leave that VMM on a dead device. Stop, kill and delete
 * find the VMM again and release the TAP. */
static bool lost_vmm_may_hold(const VmRecord *vm, void *userdata) {
        VmManager *m = userdata;
        if (vm->state != VM_STATE_ERROR)
                return false;
        _cleanup_free_ char *run = vm_run_dir(m, vm->id);
        return !run || vmm_lock_held(run) != 0;
}

int vm_manager_recover(VmManager *m) {
        _cleanup_store_close_ Store *s = NULL;
        int r = daemon_open_store(m->d, &s);
        if (r < 0)
                return r;
        VmRecord *list = NULL;
        size_t n = 0;
        r = store_vm_list(s, &list, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                vm_remove_restore_copies(m, list[i].id); /* no restore runs now */
                if (vm_state_is_live(list[i].state))
                        vm_recover_one(m, s, &list[i]);
                else if (list[i].state == VM_STATE_CREATED && list[i].runtime_json &&
                         strstr(list[i].runtime_json, "\"creating\"")) {
                        log_warning("vm %s: its creation was interrupted; marking it error", list[i].name);
                        (void) store_vm_set_state(s, list[i].id, VM_STATE_ERROR,
                                                  "creation was interrupted (daemon stopped); delete this VM");
                }
                vm_suspend_recover(m, s, &list[i]);
        }
        vm_record_array_free(list, n);
        sweep_runtime_dirs(m, s);
        vm_snapshots_recover(m, s);
        if (host_available(m->host)) {
                (void) host_nat_sync(m->host, s);
                (void) host_reconcile(m->host, s, lost_vmm_may_hold, m);
        }
        return r;
}
