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
        const char *vm, *name, *snapshot;
        bool stop, all;
} SnapshotArgs;

static const RpcParam snapshot_params[] = {
        { "vm", RPC_PARAM_STRING, RPC_ARG(SnapshotArgs, vm), true, .what = "a VM name, id or id prefix" },
        { "name", RPC_PARAM_NAME, RPC_ARG(SnapshotArgs, name), .what = "a name of " NAME_RULE },
        { "stop", RPC_PARAM_BOOL, RPC_ARG(SnapshotArgs, stop) },
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

static int work_snapshot(RpcCall *call, Store *s, void *args, json_t **ret) {
        SnapshotArgs *a = args;
        Daemon *d = rpc_call_daemon(call);
        _cleanup_(vm_record_done) VmRecord vm = {};
        _cleanup_(snapshot_record_done) SnapshotRecord n = {};
        int r = vm_resolve(s, a->vm, &vm);
        if (r < 0)
                return r;
        VmSnapshotRequest req = { .name = a->name, .stop = a->stop, .kind = SNAPSHOT_USER };
        VmProgress p = { .call = call, .started = now_monotonic() };
        r = vm_op_snapshot(d->vms, s, vm.id, &req, &p, &n);
        if (r < 0)
                return r;
        *ret = snapshot_to_json(s, &n);
        return 0;
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

/* Templates (remade after the next cold boot of their shape); with all,
 * every snapshot. */
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
                if (list[i].state != SNAPSHOT_READY || (list[i].kind != SNAPSHOT_TEMPLATE && !a->all))
                        continue;
                if (snapshot_op_delete(d->vms, s, list[i].id) >= 0)
                        json_array_append_new(deleted, json_string(list[i].name));
        }
        snapshot_record_array_free(list, n);
        *ret = json_pack("{s:o}", "deleted", deleted);
        return 0;
}

const RpcMethod snapshot_methods[] = {
        { "vm.snapshot", snapshot_params, sizeof(SnapshotArgs), .work = work_snapshot },
        { "vm.restore", restore_params, sizeof(SnapshotArgs), .work = work_restore },
        { "snapshot.list", .run = method_list },
        { "snapshot.show", rpc_name_params, sizeof(RpcNameArgs), .run = method_show },
        { "snapshot.delete", rpc_name_params, sizeof(RpcNameArgs), .work = work_delete },
        { "snapshot.prune", prune_params, sizeof(SnapshotArgs), .work = work_prune },
        {},
};
