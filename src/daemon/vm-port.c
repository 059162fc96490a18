/* SPDX-License-Identifier: MIT */
/* vm port add / rm, and the forwards of vm create -p: each checked against
 * the host (the port free and allowed) before it is recorded, so a refusal
 * leaves neither a listener nor a row. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-forward.h"
#include "error.h"
#include "log.h"
#include "string-util.h"
#include "vm-internal.h"

static bool vm_has_runtime(const VmRecord *vm) {
        return vm->state == VM_STATE_RUNNING || vm->state == VM_STATE_PAUSED;
}

static StoreForward forward_of(const char *vm_id, const PortSpec *p) {
        return (StoreForward){ .vm_id = (char *) vm_id,
                               .proto = (char *) p->proto,
                               .host_ip = (char *) p->host_ip,
                               .host_port = p->host_port,
                               .guest_port = p->guest_port };
}

int vm_ports_check_free(const char *vm_name, const PortSpec *ports, size_t n) {
        for (size_t i = 0; i < n; i++) {
                StoreForward f = forward_of("", &ports[i]);
                for (size_t j = 0; j < i; j++)
                        if (streq(ports[j].host_ip, ports[i].host_ip) && ports[j].host_port == ports[i].host_port)
                                return error_setf(-EEXIST, "host port %s:%u is given twice", ports[i].host_ip,
                                                  ports[i].host_port);
                _cleanup_close_ int fd = vm_forward_listen(vm_name, &f);
                if (fd < 0)
                        return fd;
        }
        return 0;
}

int vm_ports_record(Store *s, const char *vm_id, const PortSpec *ports, size_t n) {
        for (size_t i = 0; i < n; i++) {
                StoreForward f = forward_of(vm_id, &ports[i]);
                int r = store_forward_add(s, &f);
                if (r < 0)
                        return r;
        }
        return 0;
}

typedef struct PortOp {
        const PortSpec *spec;
        json_t **ret;
} PortOp;

static int port_add_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        const PortOp *op = userdata;
        StoreForward f = forward_of(vm->id, op->spec);
        bool live = vm_has_runtime(vm);
        VmRuntime *rt = live ? vm_runtime_get(m, vm->id, false) : NULL;
        /* A duplicate is refused naming the VM that has it (the UNIQUE row
         * guards a race), a port we cannot have by the bind, both before the
         * row is written. */
        int r = store_forward_check_free(s, f.proto, f.host_ip, f.host_port);
        _cleanup_close_ int fd = r >= 0 && rt ? vm_forward_listen(vm->name, &f) : -EBADF;
        if (r >= 0 && rt && fd < 0)
                r = fd;
        if (r >= 0)
                r = store_forward_add(s, &f);
        if (r < 0)
                return r;
        if (rt) {
                r = vm_forwards_add_live(m, vm, rt, f.id, TAKE_FD(fd), f.guest_port);
                if (r < 0) {
                        (void) store_forward_remove(s, vm->id, f.proto, f.host_ip, f.host_port);
                        return r;
                }
        }
        vm_wake_refresh(m, s, vm);
        log_info("vm %s: forwarding %s %s:%u to port %u", vm->name, f.proto, f.host_ip, f.host_port, f.guest_port);
        *op->ret = vm_forward_to_json(m, &f);
        return 0;
}

int vm_op_port_add(VmManager *m, Store *s, const char *id, const PortSpec *spec, json_t **ret) {
        return vm_with_lock(m, s, id, 0, port_add_locked, &(PortOp){ .spec = spec, .ret = ret });
}

static int port_remove_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        const PortOp *op = userdata;
        StoreForward *list = NULL;
        size_t n = 0;
        int64_t id = -1;
        int r = store_forward_list_vm(s, vm->id, &list, &n);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (streq(list[i].proto, op->spec->proto) && streq(list[i].host_ip, op->spec->host_ip) &&
                    list[i].host_port == op->spec->host_port)
                        id = list[i].id;
        store_forward_array_free(list, n);
        if (r < 0)
                return r;
        if (id < 0)
                return error_setf(-ENOENT, "vm %s has no forward from host port %s:%u", vm->name, op->spec->host_ip,
                                  op->spec->host_port);
        r = store_forward_remove(s, vm->id, op->spec->proto, op->spec->host_ip, op->spec->host_port);
        if (r < 0)
                return r;
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        if (rt)
                vm_forwards_remove_live(m, rt, id);
        vm_wake_refresh(m, s, vm);
        log_info("vm %s: no longer forwarding %s %s:%u", vm->name, op->spec->proto, op->spec->host_ip,
                 op->spec->host_port);
        return 0;
}

int vm_op_port_remove(VmManager *m, Store *s, const char *id, const PortSpec *spec) {
        return vm_with_lock(m, s, id, 0, port_remove_locked, &(PortOp){ .spec = spec });
}
