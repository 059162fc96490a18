/* SPDX-License-Identifier: MIT */
/* operations.list and operations.cancel: the long operations in flight
 * (operation.h), on the loop. daemon.operations.list is the name banger's
 * earlier implementation served; it answers the same. */
#include <errno.h>

#include "daemon.h"
#include "methods.h"
#include "operation.h"

typedef struct CancelArgs {
        unsigned long long id;
} CancelArgs;

static const RpcParam cancel_params[] = {
        { "id", RPC_PARAM_UINT, RPC_ARG(CancelArgs, id), true, .min = 1, .max = (1ULL << 53),
          .what = "an operation id ('banger operations' lists them)" },
        {},
};

static int method_list(Daemon *d, RpcCall *call, void *args) {
        json_t *j = operations_to_json(d->operations);
        if (!j)
                return -ENOMEM;
        rpc_call_reply(call, j);
        return 0;
}

static int method_cancel(Daemon *d, RpcCall *call, void *args) {
        CancelArgs *a = args;
        Operation *op = NULL;
        int r = operations_cancel(d->operations, a->id, &op);
        if (r < 0)
                return r;
        rpc_call_reply(call, operation_to_json(op));
        return 0;
}

const RpcMethod operation_methods[] = {
        { "operations.list", .run = method_list },
        { "daemon.operations.list", .run = method_list },
        { "operations.cancel", cancel_params, sizeof(CancelArgs), .run = method_cancel },
        {},
};
