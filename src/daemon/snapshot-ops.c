/* SPDX-License-Identifier: MIT */
/* Snapshots as objects: resolving a reference, the protocol's snapshot
 * object, deleting one (files, then record), and the sweep at daemon start
 * that removes what an interrupted snapshot left and lets a VM it paused run
 * again. */
#include <dirent.h>
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
#include "string-util.h"
#include "vm-internal.h"
#include "vm-snapshot.h"

int snapshot_resolve(Store *s, const char *ref, SnapshotRecord *ret) {
        if (!ref || !*ref || strlen(ref) > 64)
                return error_setf(-EINVAL, "invalid snapshot reference");
        int r = store_snapshot_get_by_name(s, ref, ret);
        if (r != -ENOENT)
                return r;
        r = store_snapshot_get_by_id(s, ref, ret);
        if (r != -ENOENT && r != -EINVAL)
                return r;
        _cleanup_free_ SnapshotRecord *list = NULL;
        size_t n = 0;
        r = store_snapshot_find_by_prefix(s, ref, &list, &n);
        if (r < 0)
                return r;
        if (n != 1) {
                for (size_t i = 0; i < n; i++)
                        snapshot_record_done(&list[i]);
                return n == 0 ? error_setf(-ENOENT,
                                           "no snapshot named or with id prefix '%s' (banger snapshot "
                                           "list shows what there is)",
                                           ref)
                              : error_setf(-ENOTUNIQ, "snapshot id prefix '%s' is ambiguous", ref);
        }
        *ret = list[0];
        return 0;
}

static json_t *str_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

json_t *snapshot_to_json(Store *s, const SnapshotRecord *n) {
        _cleanup_(image_record_done) ImageRecord img = {};
        (void) store_image_get_by_id(s, n->image_id, &img);
        char created[40];
        json_t *disks = json_loads(n->disks_json ? n->disks_json : "[]", 0, NULL);
        char used[40];
        return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:s, s:o, "
                         "s:s, s:o, s:o}",
                         "id", n->id, "name", n->name, "kind", snapshot_kind_to_string(n->kind), "state",
                         snapshot_state_to_string(n->state), "vm", str_or_null(n->vm_name), "vm_id",
                         str_or_null(n->vm_id), "image", str_or_null(img.name ? img.name : n->image_id), "vmm",
                         vmm_kind_to_string(n->vmm), "vmm_version", n->vmm_version, "vcpu", (int) n->vcpus,
                         "memory_mib", (json_int_t) n->mem_mib, "disk_bytes", (json_int_t) n->disk_bytes, "state_bytes",
                         (json_int_t) n->state_bytes, "memory_bytes", (json_int_t) n->memory_bytes, "disk_used_bytes",
                         (json_int_t) n->disk_used_bytes, "dir", n->dir, "disks", disks ? disks : json_array(),
                         "created_at", format_timestamp(created, sizeof(created), n->created_at), "repository",
                         str_or_null(n->repository), "last_used_at",
                         n->last_used_at ? json_string(format_timestamp(used, sizeof(used), n->last_used_at))
                                         : json_null());
}

/* Marked 'saving' first: a crash while the files go leaves a record the
 * next start's sweep finishes. */
static int delete_one(Store *s, SnapshotRecord *n) {
        n->state = SNAPSHOT_SAVING;
        int r = store_snapshot_update(s, n);
        if (r < 0)
                return r;
        r = rm_rf_at(AT_FDCWD, n->dir);
        if (r < 0)
                return error_setf(r, "cannot remove %s: %s", n->dir, strerror(-r));
        r = store_snapshot_delete(s, n->id);
        if (r >= 0)
                log_info("snapshot %s deleted", n->name);
        return r;
}

int snapshot_op_delete(VmManager *m, Store *s, const char *id) {
        /* Waits for a clone copying its disks. */
        _cleanup_(vm_unlockp) VmLock *l = vm_lock(m, id);
        if (!l)
                return -ENOMEM;
        _cleanup_(snapshot_record_done) SnapshotRecord n = {};
        int r = store_snapshot_get_by_id(s, id, &n);
        return r < 0 ? r : delete_one(s, &n);
}

/* A snapshot the daemon's death interrupted paused its VM: resume it unless
 * its user had paused it. */
static void resume_if_paused_by_snapshot(VmManager *m, Store *s, const SnapshotRecord *n) {
        if (!n->vm_id)
                return;
        _cleanup_(vm_unlockp) VmLock *l = vm_lock(m, n->vm_id);
        _cleanup_(vm_record_done) VmRecord vm = {};
        VmRuntime *rt = vm_runtime_get(m, n->vm_id, false);
        const char *state = NULL;
        if (!l || store_vm_get_by_id(s, n->vm_id, &vm) < 0 || vm.state != VM_STATE_RUNNING || !rt ||
            rt->inst.proc.pidfd < 0)
                return;
        const VmmDriver *drv = vmm_driver_get(vm.vmm);
        if (drv->query_state(&rt->inst, &state) >= 0 && streq(state, "paused") && drv->resume(&rt->inst) >= 0)
                log_warning("vm %s: resumed; the snapshot that paused it was interrupted", vm.name);
}

static void sweep_unnamed_dirs(VmManager *m, Store *s) {
        _cleanup_free_ char *parent = path_join(m->d->paths.state_dir, "snapshots");
        _cleanup_close_ int dfd = parent ? open_dir_nofollow(AT_FDCWD, parent) : -ENOMEM;
        if (dfd < 0)
                return;
        DIR *d = fdopendir(fcntl(dfd, F_DUPFD_CLOEXEC, 3));
        if (!d)
                return;
        for (struct dirent *de; (de = readdir(d));) {
                _cleanup_(snapshot_record_done) SnapshotRecord n = {};
                if (de->d_name[0] == '.' || store_snapshot_get_by_id(s, de->d_name, &n) != -ENOENT)
                        continue;
                log_warning("removing %s/%s: no snapshot names it", parent, de->d_name);
                (void) rm_rf_at(dfd, de->d_name);
        }
        closedir(d);
}

void vm_snapshots_recover(VmManager *m, Store *s) {
        SnapshotRecord *list = NULL;
        size_t n = 0;
        if (store_snapshot_list(s, &list, &n) >= 0)
                for (size_t i = 0; i < n; i++) {
                        if (list[i].state != SNAPSHOT_SAVING)
                                continue;
                        log_warning("snapshot %s was interrupted (daemon stopped); removing it", list[i].name);
                        resume_if_paused_by_snapshot(m, s, &list[i]);
                        (void) delete_one(s, &list[i]);
                }
        snapshot_record_array_free(list, n);
        sweep_unnamed_dirs(m, s);
}

int snapshot_dependents_delete(VmManager *m, Store *s, const char *image_id, const char *vm_id, const char *what,
                               bool force) {
        SnapshotRecord *list = NULL;
        size_t n = 0;
        int r = image_id ? store_snapshot_list_by_image(s, image_id, &list, &n)
                         : store_snapshot_list_by_vm(s, vm_id, &list, &n);
        if (r < 0)
                return r;
        /* Refuse before deleting anything: a refused delete changes nothing. */
        char names[512] = "";
        size_t kept = 0;
        for (size_t i = 0; i < n && !force; i++)
                if (list[i].kind != SNAPSHOT_TEMPLATE && strlen(names) + strlen(list[i].name) + 3 < sizeof(names))
                        strcat(strcat(names, kept++ ? ", " : ""), list[i].name);
        /* Templates are banger's own cache: they go without asking. */
        for (size_t i = 0; i < n && r >= 0 && names[0] == '\0'; i++)
                r = snapshot_op_delete(m, s, list[i].id);
        snapshot_record_array_free(list, n);
        if (r < 0 || names[0] == '\0')
                return r;
        return error_setf(-EBUSY, "%s has snapshots: %s; delete them first (banger snapshot delete) or use --force",
                          what, names);
}
