/* SPDX-License-Identifier: MIT */
/* A VM's network: its address, MAC, vsock CID and TAP name when it is
 * created; its TAP and NAT entry while it runs, released when it stops. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "tap.h"
#include "vm-internal.h"

/* MAC and vsock CID derive from the guest address, which the store keeps
 * unique among VMs. */
int vm_assign_network(VmManager *m, Store *s, VmRecord *vm) {
        char *ip = NULL;
        char cidr[64];
        snprintf(cidr, sizeof(cidr), "%s", m->d->config.cidr);
        int r = store_ip_allocate(s, vm->id, cidr, host_bridge_ip(m->host), &ip);
        if (r < 0)
                return r;
        struct in_addr a;
        if (inet_pton(AF_INET, ip, &a) != 1) {
                free(ip);
                return -EINVAL;
        }
        uint32_t h = ntohl(a.s_addr);
        free(vm->ip);
        vm->ip = ip;
        free(vm->mac);
        if (asprintf(&vm->mac, "02:fc:%02x:%02x:%02x:%02x", (h >> 24) & 0xff, (h >> 16) & 0xff, (h >> 8) & 0xff,
                     h & 0xff) < 0)
                return -ENOMEM;
        vm->vsock_cid = 3 + (h & 0xffffff);
        char tap[IFNAMSIZ];
        r = tap_name_for_vm(vm->id, tap);
        if (r < 0)
                return r;
        free(vm->tap);
        vm->tap = strdup(tap);
        return vm->tap ? 0 : -ENOMEM;
}

int vm_take_tap(VmManager *m, Store *s, const VmRecord *vm) {
        int r = host_bridge_ensure(m->host);
        if (r < 0)
                return r;
        /* Persist the handle before acting: a crash in between is cleaned up
         * by the next start's reconcile. */
        r = store_handle_add(s, vm->id, STORE_HANDLE_TAP, vm->tap, NULL);
        if (r < 0)
                return r;
        r = host_tap_create(m->host, vm->tap);
        if (r < 0) {
                (void) store_handle_remove(s, STORE_HANDLE_TAP, vm->tap);
                return r;
        }
        return 0;
}

/* Release everything a stopped VM does not keep: TAP, NAT entry, its run
 * directory (sockets, pid files). */
void vm_release_host(VmManager *m, Store *s, const VmRecord *vm) {
        /* NAT first (the table is regenerated from the database, where the VM
         * no longer holds its network), then the TAP: whoever sees the TAP
         * gone sees the VM's forward and masquerade rules gone too. */
        if (vm->nat)
                (void) host_nat_sync(m->host, s);
        if (vm->tap) {
                int r = host_tap_delete(m->host, vm->tap);
                if (r < 0 && r != -ENOENT && r != -ENODEV)
                        log_warning("vm %s: cannot delete TAP %s: %s", vm->name, vm->tap,
                                    error_last_message() ? error_last_message() : strerror(-r));
                else
                        (void) store_handle_remove(s, STORE_HANDLE_TAP, vm->tap);
        }
        (void) vm_dir_remove(m, VM_DIR_RUNTIME, vm->id);
}
