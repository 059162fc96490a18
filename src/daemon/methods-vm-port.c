/* SPDX-License-Identifier: MIT */
/* vm.port.add, vm.port.remove, vm.port.list: a VM's port forwards
 * (docs/protocol.md, docs/port-forwarding.md). In workers: adding one
 * takes the VM's lock and binds a socket. */
#include <errno.h>

#include "daemon.h"
#include "error.h"
#include "methods.h"
#include "vm-manager.h"

typedef struct PortArgs {
        const char *vm, *host_ip, *proto;
        unsigned long long host_port, guest_port;
} PortArgs;

#define PORT_VM_PARAM \
        { "vm", RPC_PARAM_STRING, RPC_ARG(PortArgs, vm), true, .what = "a VM name, id or id prefix" }
#define PORT_HOST_PARAMS                                                                                       \
        { "host_ip", RPC_PARAM_STRING, RPC_ARG(PortArgs, host_ip), .what = "an IPv4 or IPv6 address" },        \
                { "host_port", RPC_PARAM_UINT, RPC_ARG(PortArgs, host_port), true, .min = 1, .max = 65535 }, { \
                "proto", RPC_PARAM_STRING, RPC_ARG(PortArgs, proto), .what = "\"tcp\""                         \
        }

static const RpcParam add_params[] = {
        PORT_VM_PARAM,
        PORT_HOST_PARAMS,
        { "guest_port", RPC_PARAM_UINT, RPC_ARG(PortArgs, guest_port), true, .min = 1, .max = 65535 },
        {},
};
static const RpcParam remove_params[] = { PORT_VM_PARAM, PORT_HOST_PARAMS, {} };
static const RpcParam list_params[] = { PORT_VM_PARAM, {} };

static int spec_of(const PortArgs *a, PortSpec *ret) {
        /* guest_port is 0 for a removal: any valid one will do there. */
        return port_spec_from_fields(a->host_ip, a->host_port, a->guest_port ? a->guest_port : 1, a->proto, ret);
}

static int work_add_or_remove(RpcCall *call, Store *s, void *args, json_t **ret) {
        Daemon *d = rpc_call_daemon(call);
        bool add = rpc_call_method_data(call) != NULL;
        PortSpec spec;
        _cleanup_(vm_record_done) VmRecord vm = {};
        int r = spec_of(args, &spec);
        if (r >= 0)
                r = vm_resolve(s, ((PortArgs *) args)->vm, &vm);
        if (r < 0)
                return r;
        if (add)
                return vm_op_port_add(d->vms, s, vm.id, &spec, ret);
        r = vm_op_port_remove(d->vms, s, vm.id, &spec);
        if (r >= 0)
                *ret = json_object();
        return r;
}

static int work_list(RpcCall *call, Store *s, void *args, json_t **ret) {
        Daemon *d = rpc_call_daemon(call);
        _cleanup_(vm_record_done) VmRecord vm = {};
        int r = vm_resolve(s, ((PortArgs *) args)->vm, &vm);
        if (r >= 0)
                *ret = json_pack("{s:s, s:s, s:o}", "vm", vm.name, "state", vm_state_to_string(vm.state), "forwards",
                                 vm_forwards_json(d->vms, s, &vm));
        return r;
}

const RpcMethod vm_port_methods[] = {
        { "vm.port.add", add_params, sizeof(PortArgs), .work = work_add_or_remove, .data = "add" },
        { "vm.port.remove", remove_params, sizeof(PortArgs), .work = work_add_or_remove },
        { "vm.port.list", list_params, sizeof(PortArgs), .work = work_list },
        {},
};
