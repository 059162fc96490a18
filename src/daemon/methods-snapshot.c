/* SPDX-License-Identifier: MIT */
/* vm.snapshot and vm.restore, and the snapshot.* catalogue: list, show,
 * delete, prune. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "error.h"
#include "methods.h"
#include "string-util.h"
#include "vm-manager.h"

typedef struct SnapshotArgs {
        const char *vm, *name, *snapshot, *workspace, *setup_key;
        bool stop, all;
} SnapshotArgs;

#define SETUP_KEY_LEN 64

int rpc_parse_setup_key(json_t *v, void *field) {
        const char *s = json_string_value(v);
        if (!s || strlen(s) != SETUP_KEY_LEN || strspn(s, "0123456789abcdef") != SETUP_KEY_LEN)
                return -EINVAL;
        *(const char **) field = s;
        return 0;
}

static const RpcParam snapshot_params[] = {
        { "vm", RPC_PARAM_STRING, RPC_ARG(SnapshotArgs, vm), true, .what = "a VM name, id or id prefix" },
        { "name", RPC_PARAM_NAME, RPC_ARG(SnapshotArgs, name), .what = "a name of " NAME_RULE },
        { "stop", RPC_PARAM_BOOL, RPC_ARG(SnapshotArgs, stop) },
        { "workspace", RPC_PARAM_PATH, RPC_ARG(SnapshotArgs, workspace),
          .what = "the absolute path of the work tree the VM was prepared for" },
        { "setup_key", RPC_PARAM_CUSTOM, RPC_ARG(SnapshotArgs, setup_key), .what = SETUP_KEY_WORDS,
          .parse = rpc_parse_setup_key },
        {},
};

static const RpcParam restore_params[] = {
        { "vm", RPC_PARAM_STRING, RPC_ARG(SnapshotArgs, vm), true, .what = "a VM name, id or id prefix" },
        { "snapshot", RPC_PARAM_STRING, RPC_ARG(SnapshotArgs, snapshot), true,
          .what = "a snapshot name, id or id prefix" },
        {},
};

static const RpcParam prune_params[] = {
        { "all", RPC_PARAM_BOOL, RPC_ARG(SnapshotArgs, all) },
        {},
};

/* A workspace snapshot is named after its work tree: ws-<last component,
 * made a name>-N (N picked as it is recorded). */
static void workspace_snapshot_stem(const char *repository, char ret[static 48]) {
        const char *base = strrchr(repository, '/');
        char stem[40] = "";
        size_t k = 0;
        for (const char *c = base ? base + 1 : repository; *c && k < sizeof(stem) - 1; c++) {
                char ch = *c >= 'A' && *c <= 'Z' ? (char) (*c - 'A' + 'a') : *c;
                bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
                if (ok || (k > 0 && stem[k - 1] != '-'))
                        stem[k++] = ok ? ch : '-';
        }
        while (k > 0 && stem[k - 1] == '-')
                stem[--k] = '\0';
        snprintf(ret, 48, "ws%s%s", k ? "-" : "", stem);
}

/* A new workspace snapshot replaces the older others of its work tree,
 * image and shape: they were prepared by setup inputs that are no longer the
 * tree's (or refreshed on purpose). Only older ones: of two kept at once,
 * the newer stays whichever finishes first. */
static void workspace_snapshots_supersede(Daemon *d, Store *s, const SnapshotRecord *made) {
        SnapshotRecord *list = NULL;
        size_t n = 0;
        if (store_snapshot_list(s, &list, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                const SnapshotRecord *o = &list[i];
                if (o->kind == SNAPSHOT_WORKSPACE && o->state == SNAPSHOT_READY && !streq(o->id, made->id) &&
                    streq_ptr(o->repository, made->repository) && streq(o->image_id, made->image_id) &&
                    o->vcpus == made->vcpus && o->mem_mib == made->mem_mib && o->disk_bytes == made->disk_bytes &&
                    o->vmm == made->vmm &&
                    (o->created_at < made->created_at ||
                     (o->created_at == made->created_at && strcmp(o->id, made->id) < 0)))
                        (void) snapshot_op_delete(d->vms, s, o->id);
        }
        snapshot_record_array_free(list, n);
}

static int work_snapshot(RpcCall *call, Store *s, void *args, json_t **ret) {
        SnapshotArgs *a = args;
        Daemon *d = rpc_call_daemon(call);
        _cleanup_(vm_record_done) VmRecord vm = {};
        _cleanup_(snapshot_record_done) SnapshotRecord n = {};
        char stem[48];
        if (!a->workspace != !a->setup_key)
                return error_setf(-EINVAL, "a workspace snapshot needs both workspace and setup_key");
        int r = vm_resolve(s, a->vm, &vm);
        if (r < 0)
                return r;
        if (a->workspace)
                workspace_snapshot_stem(a->workspace, stem);
        /* A workspace snapshot belongs to no VM (the VM of vm run --rm goes). */
        VmSnapshotRequest req = { .name = a->name,
                                  .name_stem = a->workspace ? stem : NULL,
                                  .stop = a->stop,
                                  .kind = a->workspace ? SNAPSHOT_WORKSPACE : SNAPSHOT_USER,
                                  .fingerprint = a->setup_key,
                                  .repository = a->workspace };
        VmProgress p = { .call = call, .started = now_monotonic() };
        r = vm_op_snapshot(d->vms, s, vm.id, &req, &p, &n);
        if (r == -EALREADY && a->workspace) { /* another run keeps the same: not a failure */
                *ret = json_pack("{s:b, s:s}", "kept", false, "reason", error_last_message() ?: strerror(-r));
                return *ret ? 0 : -ENOMEM;
        }
        if (r < 0)
                return r;
        if (a->workspace)
                workspace_snapshots_supersede(d, s, &n);
        *ret = snapshot_to_json(s, &n);
        return 0;
}

int workspace_snapshot_find(Store *s, const char *image, SnapshotWorkspaceKey *k, SnapshotRecord *ret) {
        _cleanup_(image_record_done) ImageRecord img = {};
        int r = image_lookup(s, image, &img);
        if (r < 0)
                return r;
        k->image_id = img.id;
        r = store_snapshot_get_workspace(s, k, ret);
        k->image_id = NULL;
        return r;
}

static int work_restore(RpcCall *call, Store *s, void *args, json_t **ret) {
        SnapshotArgs *a = args;
        Daemon *d = rpc_call_daemon(call);
        _cleanup_(vm_record_done) VmRecord vm = {};
        _cleanup_(snapshot_record_done) SnapshotRecord n = {};
        int r = vm_resolve(s, a->vm, &vm);
        if (r >= 0)
                r = snapshot_resolve(s, a->snapshot, &n);
        if (r < 0)
                return r;
        VmProgress p = { .call = call, .started = now_monotonic() };
        snprintf(p.vm_id, sizeof(p.vm_id), "%s", vm.id);
        r = vm_op_restore(d->vms, s, vm.id, n.id, &p);
        if (r < 0)
                return r;
        vm_record_done(&vm);
        r = store_vm_get_by_id(s, p.vm_id, &vm);
        if (r < 0)
                return r;
        *ret = vm_to_json(d->vms, s, &vm);
        return 0;
}

/* Snapshots still being written are not shown: they do not exist yet. */
static int method_list(Daemon *d, RpcCall *call, void *args) {
        SnapshotRecord *list = NULL;
        size_t n = 0;
        int r = store_snapshot_list(d->store, &list, &n);
        if (r < 0)
                return r;
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
                if (list[i].state == SNAPSHOT_READY)
                        json_array_append_new(arr, snapshot_to_json(d->store, &list[i]));
        snapshot_record_array_free(list, n);
        rpc_call_reply(call, json_pack("{s:o}", "snapshots", arr));
        return 0;
}

static int method_show(Daemon *d, RpcCall *call, void *args) {
        _cleanup_(snapshot_record_done) SnapshotRecord n = {};
        int r = snapshot_resolve(d->store, ((RpcNameArgs *) args)->name, &n);
        if (r < 0)
                return r;
        rpc_call_reply(call, snapshot_to_json(d->store, &n));
        return 0;
}

static int work_delete(RpcCall *call, Store *s, void *args, json_t **ret) {
        Daemon *d = rpc_call_daemon(call);
        _cleanup_(snapshot_record_done) SnapshotRecord n = {};
        int r = snapshot_resolve(s, ((RpcNameArgs *) args)->name, &n);
        if (r >= 0)
                r = snapshot_op_delete(d->vms, s, n.id);
        if (r < 0)
                return r;
        *ret = json_pack("{s:s}", "removed", n.name);
        return 0;
}

/* Whether prune drops a ready snapshot: templates (remade after the next
 * cold boot of their shape) and workspace snapshots made or last restored
 * workspace_snapshot_max_age_days ago or more (config; 0: never by age);
 * with all, every one. */
static bool prune_drops(const Daemon *d, const SnapshotRecord *n, bool all) {
        if (n->state != SNAPSHOT_READY)
                return false;
        if (all || n->kind == SNAPSHOT_TEMPLATE)
                return true;
        unsigned days = d->config.workspace_snapshot_max_age_days;
        if (n->kind != SNAPSHOT_WORKSPACE || days == 0)
                return false;
        usec_t used = MAX(n->last_used_at, n->created_at), now = now_realtime();
        return now > used && now - used >= (usec_t) days * 24 * 3600 * USEC_PER_SEC;
}

static int work_prune(RpcCall *call, Store *s, void *args, json_t **ret) {
        SnapshotArgs *a = args;
        Daemon *d = rpc_call_daemon(call);
        SnapshotRecord *list = NULL;
        size_t n = 0;
        int r = store_snapshot_list(s, &list, &n);
        if (r < 0)
                return r;
        json_t *deleted = json_array();
        for (size_t i = 0; i < n; i++) {
                if (!prune_drops(d, &list[i], a->all))
                        continue;
                if (snapshot_op_delete(d->vms, s, list[i].id) >= 0)
                        json_array_append_new(deleted, json_string(list[i].name));
        }
        snapshot_record_array_free(list, n);
        *ret = json_pack("{s:o}", "deleted", deleted);
        return 0;
}

const RpcMethod snapshot_methods[] = {
        { "vm.snapshot", snapshot_params, sizeof(SnapshotArgs), .work = work_snapshot, .operation = true,
          .operation_target = "vm", .cancellable = true },
        { "vm.restore", restore_params, sizeof(SnapshotArgs), .work = work_restore, .operation = true,
          .operation_target = "vm", .cancellable = true },
        { "snapshot.list", .run = method_list },
        { "snapshot.show", rpc_name_params, sizeof(RpcNameArgs), .run = method_show },
        { "snapshot.delete", rpc_name_params, sizeof(RpcNameArgs), .work = work_delete },
        { "snapshot.prune", prune_params, sizeof(SnapshotArgs), .work = work_prune },
        {},
};
