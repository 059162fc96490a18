/* SPDX-License-Identifier: MIT */
/* Taking a snapshot of a VM, in named steps: record it ('saving': the
 * record of why the VM is paused), make its directory, pause the VM, save
 * the VMM's state, copy every disk while the guest cannot write (reflink
 * where the filesystem can, else a sparse copy), mark it ready; then resume
 * the VM, or stop it. Each step records its undo: a failure removes the
 * files and the record and lets the VM run again, and so does a cancel
 * (operations.cancel) that comes before the snapshot is marked ready. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk-clone.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "log.h"
#include "operation.h"
#include "string-util.h"
#include "undo.h"
#include "vm-internal.h"
#include "vm-snapshot.h"

#define SAVE_TIMEOUT (120 * USEC_PER_SEC)

const char *const vm_disk_files[VM_DISK_FILES] = { "root.img", "work.img" };

char *snapshot_dir(VmManager *m, const char *id) {
        char *p = NULL;
        return asprintf(&p, "%s/snapshots/%s", m->d->paths.state_dir, id) < 0 ? NULL : p;
}

typedef struct Snap {
        VmManager *m;
        Store *s;
        VmRecord *vm;
        const VmSnapshotRequest *req;
        VmProgress *p;
        const VmmDriver *drv;
        VmRuntime *rt;
        SnapshotRecord rec;
        bool paused_by_us;
        int dfd;
        UndoStack undo;
} Snap;

static void snap_done(Snap *t) {
        undo_stack_done(&t->undo);
        safe_close(t->dfd);
        snapshot_record_done(&t->rec);
}

/* A name is picked and recorded under this lock: two snapshots saved at
 * once (two first runs of one work tree) would otherwise both pick the
 * first free name, and the second record would fail. */
static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;

static int generate_name(Store *s, const char *stem, char **ret) {
        for (unsigned n = 1; n < 10000; n++) {
                _cleanup_(snapshot_record_done) SnapshotRecord other = {};
                char name[64];
                snprintf(name, sizeof(name), "%.50s-%u", stem, n);
                int r = store_snapshot_get_by_name(s, name, &other);
                if (r == -ENOENT)
                        return (*ret = strdup(name)) ? 0 : -ENOMEM;
                if (r < 0)
                        return r;
        }
        return error_setf(-EEXIST, "there are too many snapshots named %s-N to name another; give --name", stem);
}

static bool same_workspace_key(const SnapshotRecord *o, const SnapshotRecord *n) {
        return o->kind == SNAPSHOT_WORKSPACE && streq_ptr(o->repository, n->repository) &&
               streq_ptr(o->fingerprint, n->fingerprint) && streq(o->image_id, n->image_id) && o->vcpus == n->vcpus &&
               o->mem_mib == n->mem_mib && o->disk_bytes == n->disk_bytes && o->vmm == n->vmm;
}

/* Another first run of the same work tree, setup inputs, image and shape,
 * which is saving its workspace snapshot or saved it after this run's VM was
 * made (so this run could not resume it), makes this one needless:
 * -EALREADY. An older one is replaced (--refresh-setup, --cold). */
static int check_workspace_kept(Store *s, const SnapshotRecord *n, usec_t vm_created) {
        SnapshotRecord *list = NULL;
        size_t k = 0;
        int r = store_snapshot_list(s, &list, &k);
        for (size_t i = 0; r >= 0 && i < k; i++)
                if (same_workspace_key(&list[i], n) &&
                    (list[i].state == SNAPSHOT_SAVING || list[i].created_at >= vm_created))
                        r = error_setf(-EALREADY,
                                       "another run %s workspace snapshot %s of %s with the same setup inputs, "
                                       "image and size; the next run starts from it",
                                       list[i].state == SNAPSHOT_SAVING ? "is keeping" : "kept", list[i].name,
                                       n->repository);
        snapshot_record_array_free(list, k);
        return r;
}

/* Name and record n, atomically as far as this daemon's snapshots go. */
static int record_named(Snap *t, SnapshotRecord *n) {
        pthread_mutex_lock(&record_lock);
        int r = n->kind == SNAPSHOT_WORKSPACE ? check_workspace_kept(t->s, n, t->vm->created_at) : 0;
        if (r >= 0)
                r = t->req->name ? ((n->name = strdup(t->req->name)) ? 0 : -ENOMEM)
                                 : generate_name(t->s, t->req->name_stem ?: t->vm->name, &n->name);
        if (r >= 0)
                r = store_snapshot_insert(t->s, n);
        pthread_mutex_unlock(&record_lock);
        return r;
}

/* What a restore needs to know of the VM it came from. */
static char *source_spec(const VmRecord *vm, bool was_paused) {
        json_t *j = json_pack("{s:s, s:s?, s:s?, s:I, s:b, s:b}", "hostname", vm->name, "ip", vm->ip, "mac", vm->mac,
                              "vsock_cid", (json_int_t) vm->vsock_cid, "nat", vm->nat, "was_paused", was_paused);
        char *s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        return s;
}

static char *disks_json(void) {
        json_t *a = json_pack("[{s:s, s:s, s:b}, {s:s, s:s, s:b}]", "id", "rootfs", "file", vm_disk_files[0], "root", 1,
                              "id", "work", "file", vm_disk_files[1], "root", 0);
        char *s = json_dumps(a, JSON_COMPACT);
        json_decref(a);
        return s;
}

static int undo_record(const char *id, void *data) {
        return store_snapshot_delete(data, id);
}

static int step_record(Snap *t) {
        VmRecord *vm = t->vm;
        SnapshotRecord *n = &t->rec;
        char id[STORE_ID_GENERATED_LEN + 1];
        int r = store_id_generate(id);
        if (r < 0)
                return r;
        r = t->drv->version(vm->vmm == VMM_FIRECRACKER ? t->m->d->config.firecracker_bin : t->m->d->config.qemu_bin,
                            &n->vmm_version);
        if (r < 0)
                return r;
        n->id = strdup(id);
        n->kind = t->req->kind;
        n->state = SNAPSHOT_SAVING;
        n->vm_id = t->req->kind == SNAPSHOT_USER ? strdup(vm->id) : NULL;
        n->vm_name = strdup(vm->name);
        n->image_id = strdup(vm->image_id);
        n->kernel_id = vm->kernel_id ? strdup(vm->kernel_id) : NULL;
        n->vmm = vm->vmm;
        n->vcpus = vm->vcpus;
        n->mem_mib = vm->mem_mib;
        n->disk_bytes = vm->disk_bytes;
        n->dir = snapshot_dir(t->m, id);
        n->disks_json = disks_json();
        n->spec_json = source_spec(vm, vm->state == VM_STATE_PAUSED);
        n->fingerprint = t->req->fingerprint ? strdup(t->req->fingerprint) : NULL;
        n->repository = t->req->repository ? strdup(t->req->repository) : NULL;
        if (!n->id || !n->vm_name || !n->image_id || !n->dir || !n->disks_json || !n->spec_json ||
            (t->req->repository && !n->repository))
                return -ENOMEM;
        r = record_named(t, n);
        return r < 0 ? r : undo_push(&t->undo, "snapshot", n->id, undo_record, t->s, NULL);
}

static int undo_dir(const char *path, void *data) {
        return rm_rf_at(AT_FDCWD, path);
}

static int step_dir(Snap *t) {
        _cleanup_free_ char *parent = path_join(t->m->d->paths.state_dir, "snapshots");
        if (!parent)
                return -ENOMEM;
        int r = mkdirat_private(AT_FDCWD, parent, 0700);
        if (r >= 0)
                r = mkdirat_private(AT_FDCWD, t->rec.dir, 0700);
        if (r < 0)
                return error_setf(r, "cannot create %s: %s", t->rec.dir, strerror(-r));
        r = undo_push(&t->undo, "dir", t->rec.dir, undo_dir, NULL, NULL);
        if (r < 0)
                return r;
        t->dfd = open_dir_nofollow(AT_FDCWD, t->rec.dir);
        return t->dfd < 0 ? error_setf(t->dfd, "cannot open %s", t->rec.dir) : 0;
}

static int undo_pause(const char *id, void *data) {
        Snap *t = data;
        return t->drv->resume(&t->rt->inst);
}

static int step_pause(Snap *t) {
        if (t->vm->state == VM_STATE_PAUSED)
                return 0; /* paused by its user: it stays so */
        vm_progress(t->p, t->vm->id, "pause", "pausing %s", t->vm->name);
        int r = t->drv->pause(&t->rt->inst);
        if (r < 0)
                return error_setf(r, "cannot pause VM %s: %s", t->vm->name,
                                  error_last_message() ? error_last_message() : strerror(-r));
        t->paused_by_us = true;
        return undo_push(&t->undo, "pause", t->vm->id, undo_pause, t, NULL);
}

static int step_save(Snap *t) {
        usec_t t0 = now_monotonic();
        VmmSavedState saved = {};
        int r = t->drv->save_state(&t->rt->inst, t->rec.dir, SAVE_TIMEOUT, &saved);
        if (r < 0)
                return error_setf(r, "saving the VM state: %s",
                                  error_last_message() ? error_last_message() : strerror(-r));
        t->rec.state_bytes = saved.state_bytes;
        t->rec.memory_bytes = saved.memory_bytes;
        vm_progress(t->p, t->vm->id, "save", "%llu MiB of state saved in %llu ms",
                    (unsigned long long) ((saved.state_bytes + saved.memory_bytes) >> 20),
                    (unsigned long long) ((now_monotonic() - t0) / USEC_PER_MSEC));
        return 0;
}

uint64_t vm_disk_used_bytes(int dfd, const char *const *names, size_t n) {
        uint64_t used = 0;
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) >= 0)
                        used += (uint64_t) st.st_blocks * 512;
        }
        return used;
}

int vm_copy_disks(int src_dfd, int dst_dfd, const char *suffix, DiskCloneMethod *ret_used) {
        DiskCloneMethod used = 0;
        for (size_t i = 0; i < VM_DISK_FILES; i++) {
                char dst[64];
                snprintf(dst, sizeof(dst), "%s%s", vm_disk_files[i], suffix ? suffix : "");
                DiskCloneMethod one = 0;
                int r = disk_clone(src_dfd, vm_disk_files[i], dst_dfd, dst, DISK_CLONE_FILE, &one);
                if (r < 0) {
                        for (size_t k = 0; k < i; k++) {
                                snprintf(dst, sizeof(dst), "%s%s", vm_disk_files[k], suffix ? suffix : "");
                                (void) unlinkat(dst_dfd, dst, 0);
                        }
                        return error_setf(r, "copying %s: %s", vm_disk_files[i],
                                          error_last_message() ? error_last_message() : strerror(-r));
                }
                used |= one;
        }
        *ret_used = used;
        return 0;
}

const char *vm_copy_method_words(DiskCloneMethod used) {
        return used == DISK_CLONE_REFLINK  ? "reflink (copy-on-write, instant)"
               : used & DISK_CLONE_REFLINK ? "reflink and sparse copy"
                                           : "sparse copy (this filesystem has no reflink)";
}

static int step_disks(Snap *t) {
        _cleanup_free_ char *vm_dir = vm_state_dir(t->m, t->vm->id);
        _cleanup_close_ int vfd = vm_dir ? open_dir_nofollow(AT_FDCWD, vm_dir) : -ENOMEM;
        if (vfd < 0)
                return error_setf(vfd, "cannot open the disks of VM %s", t->vm->name);
        usec_t t0 = now_monotonic();
        DiskCloneMethod used = 0;
        int r = vm_copy_disks(vfd, t->dfd, NULL, &used);
        if (r < 0)
                return r;
        t->rec.disk_used_bytes = vm_disk_used_bytes(t->dfd, vm_disk_files, VM_DISK_FILES);
        vm_progress(t->p, t->vm->id, "disk", "disks copied by %s: %llu MiB in %llu ms", vm_copy_method_words(used),
                    (unsigned long long) (t->rec.disk_used_bytes >> 20),
                    (unsigned long long) ((now_monotonic() - t0) / USEC_PER_MSEC));
        return 0;
}

/* The point of no return of a vm.snapshot (operation.h): a cancel until
 * here rolls back (no record, no files, the VM runs as before); one after
 * it is refused, and the snapshot completes. */
static int step_commit(Snap *t) {
        char why[128];
        snprintf(why, sizeof(why), "has taken snapshot %s and is recording it ready", t->rec.name);
        return operation_commit(why);
}

static int step_ready(Snap *t) {
        t->rec.state = SNAPSHOT_READY;
        int r = store_snapshot_update(t->s, &t->rec);
        if (r < 0)
                return r;
        if (fsync(t->dfd) < 0)
                log_warning("cannot sync %s: %m", t->rec.dir);
        undo_commit(&t->undo);
        return 0;
}

/* After the snapshot: the VM runs on, or stops (gracefully: it runs again
 * first, so the guest flushes its disks). */
static void finish_vm(Snap *t) {
        if (t->req->stop) {
                vm_progress(t->p, t->vm->id, "stop", "stopping %s", t->vm->name);
                if (t->paused_by_us)
                        (void) t->drv->resume(&t->rt->inst);
                (void) vm_stop_locked(t->m, t->s, t->vm, t->m->d->config.stop_timeout_sec * USEC_PER_SEC, false);
                return;
        }
        if (!t->paused_by_us)
                return;
        int r = t->drv->resume(&t->rt->inst);
        if (r < 0)
                log_warning("vm %s: cannot resume after its snapshot: %s", t->vm->name,
                            error_last_message() ? error_last_message() : strerror(-r));
        else
                vm_progress(t->p, t->vm->id, "resume", "%s runs on", t->vm->name);
}

int vm_snapshot_locked(VmManager *m, Store *s, VmRecord *vm, const VmSnapshotRequest *req, VmProgress *p,
                       SnapshotRecord *ret) {
        _cleanup_(snap_done) Snap t = { .m = m,
                                        .s = s,
                                        .vm = vm,
                                        .req = req,
                                        .p = p,
                                        .dfd = -EBADF,
                                        .drv = vmm_driver_get(vm->vmm),
                                        .undo = UNDO_STACK_INIT };
        t.rt = vm_runtime_get(m, vm->id, false);
        if (!t.drv || (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED) || !t.rt ||
            t.rt->inst.proc.pidfd < 0)
                return error_setf(-EBUSY, "VM %s is %s; a snapshot saves a running or paused VM (start it first)",
                                  vm->name, vm_state_to_string(vm->state));
        int r = operation_check();
        if (r >= 0)
                r = step_record(&t);
        if (r >= 0) {
                vm_progress(p, vm->id, "prepare", "snapshot %s of %s (%s)", t.rec.name, vm->name, t.drv->name);
                r = step_dir(&t);
        }
        if (r >= 0)
                r = step_pause(&t);
        if (r >= 0)
                r = step_save(&t);
        if (r >= 0)
                r = operation_check();
        if (r >= 0)
                r = step_disks(&t);
        if (r >= 0)
                r = step_commit(&t);
        if (r >= 0)
                r = step_ready(&t);
        if (r < 0) {
                char why[1024];
                snprintf(why, sizeof(why), "%s", error_last_message() ? error_last_message() : strerror(-r));
                (void) undo_run(&t.undo);
                if (r == -EALREADY) /* not this VM's failure: another run keeps the same */
                        return error_setf(r, "%s", why);
                return error_setf(r, "snapshot of %s failed: %s", vm->name, why);
        }
        finish_vm(&t);
        vm_progress(p, vm->id, "ready", "snapshot %s: %llu MiB state, %llu MiB disks", t.rec.name,
                    (unsigned long long) ((t.rec.state_bytes + t.rec.memory_bytes) >> 20),
                    (unsigned long long) (t.rec.disk_used_bytes >> 20));
        *ret = t.rec;
        t.rec = (SnapshotRecord){};
        return 0;
}

typedef struct SnapshotArgs {
        const VmSnapshotRequest *req;
        VmProgress *p;
        SnapshotRecord *ret;
} SnapshotArgs;

static int snapshot_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        SnapshotArgs *a = userdata;
        return vm_snapshot_locked(m, s, vm, a->req, a->p, a->ret);
}

int vm_op_snapshot(VmManager *m, Store *s, const char *vm_id, const VmSnapshotRequest *req, VmProgress *p,
                   SnapshotRecord *ret) {
        SnapshotArgs a = { .req = req, .p = p, .ret = ret };
        return vm_with_lock(m, s, vm_id, 0, snapshot_locked, &a);
}
