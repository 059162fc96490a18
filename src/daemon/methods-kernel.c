/* SPDX-License-Identifier: MIT */
/* kernel.*: the kernels VMs boot. Imports and removals touch files and
 * write the database, so they run in workers. */
#include "daemon.h"
#include "kernel-store.h"
#include "methods.h"
#include "operation.h"
#include "store.h"

typedef struct KernelImportArgs {
        const char *name, *from, *initrd;
} KernelImportArgs;

static const RpcParam kernel_import_params[] = {
        { "name", RPC_PARAM_NAME, RPC_ARG(KernelImportArgs, name), true },
        { "from", RPC_PARAM_PATH, RPC_ARG(KernelImportArgs, from), true },
        { "initrd", RPC_PARAM_PATH, RPC_ARG(KernelImportArgs, initrd) },
        {},
};

static void import_progress(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata) {
        rpc_call_progress(userdata, stage, detail, done, total);
}

static int work_kernel_import(RpcCall *call, Store *s, void *args, json_t **ret) {
        KernelImportArgs *a = args;
        Daemon *d = rpc_call_daemon(call);
        KernelImportOptions o = { .name = a->name,
                                  .from = a->from,
                                  .initrd = a->initrd,
                                  .progress = { import_progress, call, operation_progress_cancel } };
        _cleanup_(kernel_record_done) KernelRecord k = {};
        int r = kernel_store_import(s, d->paths.state_dir, &o, &k);
        if (r >= 0)
                *ret = kernel_record_to_json(&k);
        return r;
}

static int method_kernel_list(Daemon *d, RpcCall *call, void *args) {
        json_t *r = NULL;
        int k = kernel_store_list_json(d->store, &r);
        if (k < 0)
                return k;
        rpc_call_reply(call, r);
        return 0;
}

static int method_kernel_show(Daemon *d, RpcCall *call, void *args) {
        json_t *r = NULL;
        int k = kernel_store_show_json(d->store, ((RpcNameArgs *) args)->name, &r);
        if (k < 0)
                return k;
        rpc_call_reply(call, r);
        return 0;
}

static int work_kernel_rm(RpcCall *call, Store *s, void *args, json_t **ret) {
        const char *name = ((RpcNameArgs *) args)->name;
        Daemon *d = rpc_call_daemon(call);
        int r = kernel_store_remove(s, d->paths.state_dir, name);
        if (r >= 0)
                *ret = json_pack("{s:s}", "removed", name);
        return r;
}

const RpcMethod kernel_methods[] = {
        { "kernel.import", kernel_import_params, sizeof(KernelImportArgs), .work = work_kernel_import,
          .operation = true, .operation_target = "name", .cancellable = true },
        { "kernel.list", .run = method_kernel_list },
        { "kernel.show", rpc_name_params, sizeof(RpcNameArgs), .run = method_kernel_show },
        { "kernel.rm", rpc_name_params, sizeof(RpcNameArgs), .work = work_kernel_rm },
        {},
};
