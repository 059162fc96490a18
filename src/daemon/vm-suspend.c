/* SPDX-License-Identifier: MIT */
/* Suspending a VM to disk and resuming it. A suspend saves the VMM's state
 * (memory and devices; the disks stay where they are, nothing runs on them
 * meanwhile) into the VM's own directory, records the VM suspended, and only
 * then kills its VMM and releases its TAP: a daemon killed at any point
 * leaves a VM that runs or one that is suspended, never neither. The state
 * is written into "suspend.tmp" and renamed "suspend" when complete, with
 * the VMM's version beside it; a start resumes from it (same address,
 * processes and files) and deletes it, or boots cold, saying why, when the
 * VMM changed since or the state cannot be loaded. A vm.suspend cancelled
 * (operations.cancel) before it records the VM suspended ends as a failed
 * one does: no saved state left, the VM running. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console-stream.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "log.h"
#include "operation.h"
#include "string-util.h"
#include "vm-internal.h"
#include "worker.h"

#define SUSPEND_DIR "suspend"
#define SUSPEND_TMP_DIR "suspend.tmp"
#define SUSPEND_OLD_DIR "suspend.old" /* a resumed VM's state, deleted in a worker */
#define SUSPEND_META "suspend.json"
#define SUSPEND_META_MAX 4096
#define SAVE_TIMEOUT (120 * USEC_PER_SEC)
#define RECOVER_TIMEOUT (30 * USEC_PER_SEC)

/* For the crash tests: with BANGER_TEST_STALL=POINT in its environment the
 * daemon stops for good at that point of a suspend (holding the VM's lock),
 * so a test can SIGKILL it exactly there. Points: "suspend-saved" (the
 * state is complete in suspend/, the VM still recorded running) and
 * "suspend-recorded" (recorded suspended, its VMM not yet killed). */
static void test_stall_point(const char *point) {
        const char *want = secure_getenv("BANGER_TEST_STALL");
        if (!want || !streq(want, point))
                return;
        log_warning("stalled at '%s' (BANGER_TEST_STALL is set): waiting to be killed", point);
        for (;;)
                (void) sleep(1);
}

static const char *last_error_or(int r) {
        return error_last_message() ? error_last_message() : strerror(-r);
}

static const char *vmm_binary(VmManager *m, const VmRecord *vm) {
        return vm->vmm == VMM_FIRECRACKER ? m->d->config.firecracker_bin : m->d->config.qemu_bin;
}

/* Remove what a suspend left in the VM's directory (missing is fine). */
static void remove_saved(int vfd) {
        (void) rm_rf_at(vfd, SUSPEND_TMP_DIR);
        (void) rm_rf_at(vfd, SUSPEND_DIR);
        (void) rm_rf_at(vfd, SUSPEND_OLD_DIR);
}

/* Deleting a resumed VM's state (an unlink of the guest's whole memory:
 * 0.1-0.3 s here) is kept off the resume's reply: suspend/ is renamed away
 * at once and deleted by a worker, under the VM's lock, so a delete or a
 * new suspend of the VM waits for it. */
typedef struct DropSaved {
        VmManager *m;
        char *id;
} DropSaved;

static void drop_main(void *userdata) {
        DropSaved *d = userdata;
        _cleanup_(vm_unlockp) VmLock *l = vm_lock(d->m, d->id);
        _cleanup_close_ int vfd = l ? vm_dir_open(d->m, VM_DIR_STATE, d->id, false) : -ENOMEM;
        if (vfd >= 0)
                (void) rm_rf_at(vfd, SUSPEND_OLD_DIR);
}

static void drop_done(void *userdata) {
        DropSaved *d = userdata;
        free(d->id);
        free(d);
}

/* On the loop. Not started: the next suspend, delete or daemon start removes it. */
static void drop_on_loop(void *userdata) {
        DropSaved *d = userdata;
        if (workers_start(d->m->d->workers, drop_main, drop_done, d, WORKER_UNLIMITED) < 0)
                drop_done(d);
}

static void drop_saved_later(VmManager *m, const char *id) {
        vm_wake_forget(m, id);
        _cleanup_close_ int vfd = vm_dir_open(m, VM_DIR_STATE, id, false);
        DropSaved *d = vfd >= 0 ? calloc(1, sizeof(*d)) : NULL;
        if (d)
                *d = (DropSaved){ .m = m, .id = strdup(id) };
        if (!d || !d->id || renameat(vfd, SUSPEND_DIR, vfd, SUSPEND_OLD_DIR) < 0 ||
            workers_post(m->d->workers, drop_on_loop, d) < 0) {
                if (d)
                        drop_done(d);
                vm_suspend_remove_files(m, id);
        }
}

void vm_suspend_remove_files(VmManager *m, const char *id) {
        vm_wake_forget(m, id);
        _cleanup_close_ int vfd = vm_dir_open(m, VM_DIR_STATE, id, false);
        if (vfd >= 0)
                remove_saved(vfd);
}

static int write_meta(int dfd, const char *version, const VmmSavedState *saved) {
        _cleanup_(json_decrefp) json_t *j = json_pack(
                "{s:s, s:I, s:I, s:I}", "vmm_version", version, "state_bytes", (json_int_t) saved->state_bytes,
                "memory_bytes", (json_int_t) saved->memory_bytes, "saved_at", (json_int_t) now_realtime());
        _cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (!text)
                return -ENOMEM;
        int r = write_file_atomic_at(dfd, SUSPEND_META, text, strlen(text), 0600);
        return r < 0 ? error_setf(r, "cannot write %s: %s", SUSPEND_META, strerror(-r)) : 0;
}

/* The state into suspend.tmp (the VMM pauses the guest), then the version
 * beside it, then one rename: "suspend" is complete or absent. */
static int save_into_vm_dir(VmManager *m, VmRecord *vm, VmRuntime *rt, int vfd, VmProgress *p) {
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        _cleanup_free_ char *version = NULL;
        int r = drv->version(vmm_binary(m, vm), &version);
        if (r < 0)
                return error_setf(r, "cannot tell the version of %s: %s", drv->name, last_error_or(r));
        remove_saved(vfd);
        r = mkdirat_private(vfd, SUSPEND_TMP_DIR, 0700);
        if (r < 0)
                return error_setf(r, "cannot create the directory of the saved state: %s", strerror(-r));
        _cleanup_free_ char *vm_dir = vm_state_dir(m, vm->id);
        _cleanup_free_ char *tmp = vm_dir ? path_join(vm_dir, SUSPEND_TMP_DIR) : NULL;
        _cleanup_close_ int tfd = open_dir_nofollow(vfd, SUSPEND_TMP_DIR);
        if (!tmp || tfd < 0)
                return tfd < 0 ? tfd : -ENOMEM;
        usec_t t0 = now_monotonic();
        VmmSavedState saved = {};
        r = drv->save_state(&rt->inst, tmp, SAVE_TIMEOUT, &saved);
        if (r < 0)
                return error_setf(r, "saving the VM state: %s", last_error_or(r));
        r = write_meta(tfd, version, &saved);
        if (r >= 0 && fsync(tfd) < 0)
                r = -errno;
        if (r >= 0 && renameat(vfd, SUSPEND_TMP_DIR, vfd, SUSPEND_DIR) < 0)
                r = error_setf(-errno, "cannot put the saved state in place: %m");
        if (r >= 0 && fsync(vfd) < 0)
                r = -errno;
        if (r < 0)
                return r;
        vm_progress(p, vm->id, "save", "%llu MiB of state saved in %llu ms",
                    (unsigned long long) ((saved.state_bytes + saved.memory_bytes) >> 20),
                    (unsigned long long) ((now_monotonic() - t0) / USEC_PER_MSEC));
        return 0;
}

int vm_suspend_locked(VmManager *m, Store *s, VmRecord *vm, VmProgress *p) {
        if (vm->state == VM_STATE_SUSPENDED)
                return 1;
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        if (vm->state != VM_STATE_RUNNING || !rt || rt->inst.proc.pidfd < 0)
                return error_setf(-EBUSY, "VM %s is %s; only a running VM can be suspended%s", vm->name,
                                  vm_state_to_string(vm->state),
                                  vm->state == VM_STATE_PAUSED ? " (resume it first)" : "");
        _cleanup_close_ int vfd = vm_dir_open(m, VM_DIR_STATE, vm->id, false);
        if (vfd < 0)
                return error_setf(vfd, "cannot open the directory of VM %s", vm->name);
        vm_progress(p, vm->id, "suspend", "saving the state of %s", vm->name);
        int r = operation_check();
        if (r >= 0)
                r = save_into_vm_dir(m, vm, rt, vfd, p);
        if (r >= 0)
                test_stall_point("suspend-saved");
        if (r >= 0) { /* a cancel during the save: the state goes, the VM runs on */
                char why[128];
                snprintf(why, sizeof(why), "has saved the state of VM %s and is recording it suspended", vm->name);
                r = operation_commit(why);
        }
        if (r >= 0) {
                vm->state = VM_STATE_SUSPENDED;
                vm->pid = 0;
                vm_set_runtime(vm, false, false);
                r = vm_save(s, vm);
                if (r < 0)
                        vm->state = VM_STATE_RUNNING;
        }
        if (r < 0) {
                char why[1024];
                snprintf(why, sizeof(why), "%s", last_error_or(r));
                remove_saved(vfd);
                if (drv->resume(&rt->inst) < 0)
                        log_warning("vm %s: cannot resume after a failed suspend", vm->name);
                return error_setf(r, "suspend of %s failed: %s", vm->name, why);
        }
        /* Recorded: only now may the VMM go. */
        test_stall_point("suspend-recorded");
        rt->generation = 0;
        (void) drv->kill(&rt->inst);
        vm_runtime_drop(m, vm->id);
        vm_release_host(m, s, vm);
        vm_wake_on_forwards(m, s, vm);
        log_info("vm %s suspended", vm->name);
        vm_progress(p, vm->id, "suspended", "%s is suspended; 'banger vm start %s' resumes it", vm->name, vm->name);
        return 0;
}

static int wake_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        return vm->state == VM_STATE_SUSPENDED ? vm_resume_locked(m, s, vm, userdata) : 0;
}

int vm_op_wake(VmManager *m, Store *s, const char *id, VmProgress *p) {
        return vm_with_lock(m, s, id, 0, wake_locked, p);
}

static int suspend_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        return vm_suspend_locked(m, s, vm, userdata);
}

int vm_op_suspend(VmManager *m, Store *s, const char *id, VmProgress *p) {
        return vm_with_lock(m, s, id, 0, suspend_locked, p);
}

/* The saved state's record, as a snapshot's (what a restore reads). */
static int read_saved(VmManager *m, const VmRecord *vm, SnapshotRecord *ret) {
        _cleanup_close_ int vfd = vm_dir_open(m, VM_DIR_STATE, vm->id, false);
        _cleanup_close_ int sfd = vfd >= 0 ? open_dir_nofollow(vfd, SUSPEND_DIR) : vfd;
        _cleanup_free_ char *text = NULL;
        int r = sfd < 0 ? sfd : read_file_at(sfd, SUSPEND_META, SUSPEND_META_MAX, &text, NULL);
        if (r < 0)
                return error_setf(r, "its saved state is missing (%s)", strerror(-r));
        _cleanup_(json_decrefp) json_t *j = json_loads(text, 0, NULL);
        const char *version = json_string_value(json_object_get(j, "vmm_version"));
        if (!version || !json_is_integer(json_object_get(j, "state_bytes")))
                return error_setf(-EBADMSG, "its saved state's %s is damaged", SUSPEND_META);
        _cleanup_free_ char *dir = vm_state_dir(m, vm->id);
        *ret = (SnapshotRecord){
                .id = strdup(vm->id),
                .name = strdup(vm->name),
                .kind = SNAPSHOT_USER,
                .state = SNAPSHOT_READY,
                .vm_id = strdup(vm->id),
                .vmm = vm->vmm,
                .vmm_version = strdup(version),
                .dir = dir ? path_join(dir, SUSPEND_DIR) : NULL,
                .state_bytes = (uint64_t) json_integer_value(json_object_get(j, "state_bytes")),
                .memory_bytes = (uint64_t) json_integer_value(json_object_get(j, "memory_bytes")),
        };
        if (!ret->id || !ret->name || !ret->vm_id || !ret->vmm_version || !ret->dir) {
                snapshot_record_done(ret);
                return -ENOMEM;
        }
        return 0;
}

/* Why the saved state cannot be loaded before trying: it is missing or
 * damaged, or the VMM is another version than the one that saved it. */
static int resume_check(VmManager *m, const VmRecord *vm, SnapshotRecord *ret) {
        int r = read_saved(m, vm, ret);
        if (r < 0)
                return r;
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        _cleanup_free_ char *now = NULL;
        r = drv->version(vmm_binary(m, vm), &now);
        if (r < 0)
                return error_setf(r, "cannot tell the version of %s: %s", drv->name, last_error_or(r));
        if (!streq(now, ret->vmm_version))
                return error_setf(-EPROTONOSUPPORT, "%s changed since it was suspended (saved by \"%s\", now \"%s\")",
                                  drv->name, ret->vmm_version, now);
        return 0;
}

static int boot_cold(VmManager *m, Store *s, VmRecord *vm, VmProgress *p, const char *why) {
        vm_progress(p, vm->id, "cold", "booting %s cold: %s", vm->name, why);
        log_warning("vm %s: cannot resume it (%s); booting cold", vm->name, why);
        vm_suspend_remove_files(m, vm->id);
        if (vm->state == VM_STATE_SUSPENDED) {
                vm->state = VM_STATE_STOPPED;
                (void) vm_save(s, vm);
        }
        return vm_start_restore_locked(m, s, vm, NULL, p);
}

int vm_resume_locked(VmManager *m, Store *s, VmRecord *vm, VmProgress *p) {
        _cleanup_(snapshot_record_done) SnapshotRecord saved = {};
        char why[1024];
        int r = resume_check(m, vm, &saved);
        if (r < 0) {
                snprintf(why, sizeof(why), "%s", last_error_or(r));
                return boot_cold(m, s, vm, p, why);
        }
        vm_progress(p, vm->id, "resuming", "resuming %s from its saved state", vm->name);
        usec_t t0 = now_monotonic();
        VmRestore restore = { .snap = &saved, .suspended = true };
        r = vm_start_restore_locked(m, s, vm, &restore, p);
        if (r >= 0) {
                drop_saved_later(m, vm->id);
                log_info("vm %s resumed in %llu ms", vm->name,
                         (unsigned long long) ((now_monotonic() - t0) / USEC_PER_MSEC));
                return r;
        }
        /* Nothing began (a host port taken, too big for this host): it stays suspended. */
        if (vm->state == VM_STATE_SUSPENDED)
                return r;
        snprintf(why, sizeof(why), "the saved state could not be loaded: %s", last_error_or(r));
        if (r == -ECANCELED) {
                vm_suspend_remove_files(m, vm->id);
                return r;
        }
        return boot_cold(m, s, vm, p, why);
}

/* vm stop and vm kill of a suspended VM: its saved state goes, as a
 * running guest's memory would. */
int vm_suspend_discard(VmManager *m, Store *s, VmRecord *vm) {
        vm_suspend_remove_files(m, vm->id);
        vm->state = VM_STATE_STOPPED;
        vm->pid = 0;
        int r = vm_save(s, vm);
        if (r < 0)
                return r;
        log_info("vm %s: stopped; its suspended state was discarded", vm->name);
        return VM_OP_DISCARDED_SUSPEND;
}

/* A suspend the daemon's death interrupted before it recorded the VM
 * suspended (or a resume after its VMM started): the VM still runs
 * (re-attached), maybe paused by the save. */
static void recover_running(VmManager *m, Store *s, VmRecord *vm, int vfd) {
        struct stat st;
        if (fstatat(vfd, SUSPEND_TMP_DIR, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
            fstatat(vfd, SUSPEND_DIR, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return;
        log_warning("vm %s: its suspend or resume was interrupted (daemon stopped); it runs on", vm->name);
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        const char *state = NULL;
        /* The save may still run (QEMU writes on by itself): end it first,
         * or it would stop the guest again when it completes. */
        bool attached = vm->state == VM_STATE_RUNNING && rt && rt->inst.proc.pidfd >= 0;
        if (attached && drv->cancel_save && drv->cancel_save(&rt->inst, RECOVER_TIMEOUT) < 0)
                log_warning("vm %s: cannot end its interrupted save: %s", vm->name,
                            error_last_message() ? error_last_message() : "?");
        remove_saved(vfd);
        if (attached && drv->query_state(&rt->inst, &state) >= 0 && streq(state, "paused"))
                (void) drv->resume(&rt->inst);
}

/* Recorded suspended: a VMM the daemon had no time to kill goes now. */
static void recover_suspended(VmManager *m, Store *s, VmRecord *vm, int vfd) {
        (void) rm_rf_at(vfd, SUSPEND_TMP_DIR);
        VmLaunchSpec spec = {};
        VmmInstance inst = { .proc = PROCESS_NULL };
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        if (vm_launch_spec_build(m, s, vm, &spec) >= 0 && drv->attach(&spec.cfg, &inst) >= 0) {
                log_warning("vm %s: suspended, but its VMM pid %d still ran; killing it", vm->name,
                            (int) inst.proc.pid);
                (void) drv->kill(&inst);
        }
        vmm_instance_done(&inst);
        vm_launch_spec_done(&spec);
        console_stream_close(m->d->consoles, vm->id);
        (void) vm_dir_remove(m, VM_DIR_RUNTIME, vm->id);
        struct stat st;
        if (fstatat(vfd, SUSPEND_DIR, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                log_warning("vm %s: suspended, but its saved state is gone; marking it stopped", vm->name);
                (void) store_vm_set_state(s, vm->id, VM_STATE_STOPPED, "its suspended state was lost; it boots cold");
                return;
        }
        vm_wake_on_forwards(m, s, vm);
}

/* A resume the daemon's death interrupted before its VMM ran (the VM was
 * found stopped): the saved state is still whole, so it stays suspended. */
static void recover_resume(VmManager *m, Store *s, VmRecord *vm, int vfd) {
        struct stat st;
        (void) rm_rf_at(vfd, SUSPEND_TMP_DIR);
        if (fstatat(vfd, SUSPEND_DIR "/" SUSPEND_META, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return;
        log_warning("vm %s: its resume was interrupted (daemon stopped); it stays suspended", vm->name);
        vm->state = VM_STATE_SUSPENDED;
        (void) store_vm_set_state(s, vm->id, VM_STATE_SUSPENDED, NULL);
}

void vm_suspend_recover(VmManager *m, Store *s, VmRecord *vm) {
        _cleanup_close_ int vfd = vm_dir_open(m, VM_DIR_STATE, vm->id, false);
        if (vfd < 0)
                return;
        (void) rm_rf_at(vfd, SUSPEND_OLD_DIR); /* a resumed state the daemon had no time to delete */
        if (vm->state == VM_STATE_SUSPENDED)
                recover_suspended(m, s, vm, vfd);
        else if (vm->state == VM_STATE_RUNNING || vm->state == VM_STATE_PAUSED)
                recover_running(m, s, vm, vfd);
        else if (vm->state == VM_STATE_STOPPED)
                recover_resume(m, s, vm, vfd);
        else
                remove_saved(vfd);
}
