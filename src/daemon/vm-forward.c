/* SPDX-License-Identifier: MIT */
/* A VM's port forwards (docs/port-forwarding.md): recorded in the store with
 * the VM, listened on by the daemon while the VM runs, each connection
 * carried by the VM's forwarder (src/shared/rpc/agent-forward.h) through
 * the guest agent. The listening sockets are bound before anything else
 * of a start or an add happens, so a host port that is taken, privileged
 * or not on this host fails the operation with nothing left behind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-forward.h"
#include "error.h"
#include "log.h"
#include "string-util.h"
#include "vm-internal.h"

typedef struct VmListener {
        int64_t id; /* the store's, and the forwarder's key */
        int fd;     /* until the forwarder has it */
        uint16_t guest_port;
} VmListener;

struct VmForwards {
        AgentForwarder *fwd; /* started with the first listener */
        VmListener *l;
        size_t n;
};

void vm_forwards_free(VmForwards *fw) {
        if (!fw)
                return;
        agent_forwarder_stop(fw->fwd);
        for (size_t i = 0; i < fw->n; i++)
                safe_close(fw->l[i].fd);
        free(fw->l);
        free(fw);
}

/* The listening socket, or -errno with one sentence that says what to do. */
int vm_forward_listen(const char *vm_name, const StoreForward *f) {
        char host[64];
        PortSpec p = { .host_port = (uint16_t) f->host_port };
        snprintf(p.host_ip, sizeof(p.host_ip), "%s", f->host_ip);
        port_spec_host_format(&p, host, sizeof(host));
        int fd = agent_forward_listen(f->host_ip, (uint16_t) f->host_port);
        switch (fd) {
        case -EADDRINUSE:
                return error_setf(fd, "host port %s is already in use: choose another for vm %s's port %u", host,
                                  vm_name, f->guest_port);
        case -EACCES:
                return error_setf(fd,
                                  "host port %s is privileged and bangerd runs unprivileged: choose a port from "
                                  "1024 up (or lower net.ipv4.ip_unprivileged_port_start)",
                                  host);
        case -EADDRNOTAVAIL:
                return error_setf(fd, "host address %s is not an address of this host", f->host_ip);
        default:
                return fd < 0 ? error_setf(fd, "cannot listen on host port %s: %s", host, strerror(-fd)) : fd;
        }
}

static int forwards_append(VmForwards *fw, int64_t id, int fd, uint16_t guest_port) {
        VmListener *l = reallocarray(fw->l, fw->n + 1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        fw->l = l;
        fw->l[fw->n++] = (VmListener){ .id = id, .fd = fd, .guest_port = guest_port };
        return 0;
}

int vm_forwards_open(VmManager *m, Store *s, const VmRecord *vm, bool strict, VmForwards **ret) {
        StoreForward *list = NULL;
        size_t n = 0;
        int r = store_forward_list_vm(s, vm->id, &list, &n);
        if (r < 0)
                return r;
        VmForwards *fw = calloc(1, sizeof(*fw));
        for (size_t i = 0; fw && i < n; i++) {
                int fd = vm_forward_listen(vm->name, &list[i]);
                if (fd < 0 && strict) {
                        r = fd;
                        break;
                }
                if (fd < 0) {
                        log_warning("vm %s: %s", vm->name, error_last_message());
                        continue;
                }
                r = forwards_append(fw, list[i].id, fd, (uint16_t) list[i].guest_port);
                if (r < 0) {
                        safe_close(fd);
                        break;
                }
        }
        store_forward_array_free(list, n);
        if (!fw || r < 0) {
                vm_forwards_free(fw);
                return fw ? r : -ENOMEM;
        }
        *ret = fw;
        return 0;
}

size_t vm_forwards_fds(const VmForwards *fw, int *fds, size_t max) {
        size_t k = 0;
        for (size_t i = 0; fw && i < fw->n && k < max; i++)
                if (fw->l[i].fd >= 0)
                        fds[k++] = fw->l[i].fd;
        return k;
}

/* Hand one bound listener to the forwarder (started on first use). */
static int forwards_serve(VmManager *m, const VmRecord *vm, VmForwards *fw, VmListener *l) {
        if (!fw->fwd) {
                _cleanup_free_ char *mux = vm_agent_mux_path(m, vm->id);
                int r = mux ? agent_forwarder_start(mux, vm->name, &fw->fwd) : -ENOMEM;
                if (r < 0)
                        return error_setf(r, "cannot start forwarding ports of vm %s: %s", vm->name, strerror(-r));
        }
        int r = agent_forwarder_add(fw->fwd, (uint64_t) l->id, TAKE_FD(l->fd), l->guest_port);
        return r < 0 ? error_setf(r, "cannot forward to vm %s's port %u: %s", vm->name, l->guest_port, strerror(-r))
                     : 0;
}

int vm_forwards_attach(VmManager *m, const VmRecord *vm, VmRuntime *rt, VmForwards *fw) {
        for (size_t i = 0; fw && i < fw->n; i++) {
                int r = forwards_serve(m, vm, fw, &fw->l[i]);
                if (r < 0) {
                        vm_forwards_free(fw);
                        return r;
                }
        }
        pthread_mutex_lock(&m->lock);
        VmForwards *old = rt->forwards;
        rt->forwards = fw;
        pthread_mutex_unlock(&m->lock);
        vm_forwards_free(old);
        return 0;
}

void vm_forwards_restore(VmManager *m, Store *s, const VmRecord *vm, VmRuntime *rt) {
        VmForwards *fw = NULL;
        int r = vm_forwards_open(m, s, vm, false, &fw);
        if (r >= 0)
                r = vm_forwards_attach(m, vm, rt, fw);
        if (r < 0)
                log_warning("vm %s: its port forwards are not restored: %s", vm->name,
                            error_last_message() ? error_last_message() : strerror(-r));
}

int vm_forwards_add_live(VmManager *m, const VmRecord *vm, VmRuntime *rt, int64_t id, int fd, uint16_t guest_port) {
        _cleanup_close_ int owned = fd;
        pthread_mutex_lock(&m->lock);
        if (!rt->forwards)
                rt->forwards = calloc(1, sizeof(VmForwards));
        VmForwards *fw = rt->forwards;
        int r = fw ? forwards_append(fw, id, TAKE_FD(owned), guest_port) : -ENOMEM;
        pthread_mutex_unlock(&m->lock);
        if (r < 0)
                return r;
        /* The entry stays while it is served; on failure it goes again. */
        r = forwards_serve(m, vm, fw, &fw->l[fw->n - 1]);
        if (r < 0)
                vm_forwards_remove_live(m, rt, id);
        return r;
}

void vm_forwards_remove_live(VmManager *m, VmRuntime *rt, int64_t id) {
        VmForwards *fw = rt->forwards;
        if (!fw)
                return;
        if (fw->fwd)
                (void) agent_forwarder_remove(fw->fwd, (uint64_t) id);
        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < fw->n; i++)
                if (fw->l[i].id == id) {
                        safe_close(fw->l[i].fd);
                        fw->l[i] = fw->l[--fw->n];
                        break;
                }
        pthread_mutex_unlock(&m->lock);
}

/* Whether the daemon listens for forward id of the VM now. */
static bool forward_active(VmManager *m, const char *vm_id, int64_t id) {
        bool on = false;
        pthread_mutex_lock(&m->lock);
        for (VmRuntime *rt = m->runtimes; rt; rt = rt->next)
                if (streq(rt->id, vm_id) && rt->forwards)
                        for (size_t i = 0; i < rt->forwards->n; i++)
                                on = on || rt->forwards->l[i].id == id;
        pthread_mutex_unlock(&m->lock);
        return on;
}

json_t *vm_forward_to_json(VmManager *m, const StoreForward *f) {
        char host[64];
        PortSpec p = { .host_port = (uint16_t) f->host_port };
        snprintf(p.host_ip, sizeof(p.host_ip), "%s", f->host_ip);
        port_spec_host_format(&p, host, sizeof(host));
        return json_pack("{s:s, s:s, s:i, s:i, s:s, s:b}", "proto", f->proto, "host_ip", f->host_ip, "host_port",
                         (int) f->host_port, "guest_port", (int) f->guest_port, "host", host, "active",
                         forward_active(m, f->vm_id, f->id));
}

json_t *vm_forwards_json(VmManager *m, Store *s, const VmRecord *vm) {
        StoreForward *list = NULL;
        size_t n = 0;
        json_t *arr = json_array();
        if (!arr || store_forward_list_vm(s, vm->id, &list, &n) < 0)
                return arr;
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, vm_forward_to_json(m, &list[i]));
        store_forward_array_free(list, n);
        return arr;
}
