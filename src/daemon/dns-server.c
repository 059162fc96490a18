/* SPDX-License-Identifier: MIT */
/* Answers A queries for <name>.vm from the live VMs on a loopback UDP port
 * (config dns_listen, dns_port). Runs on the event loop: one datagram in,
 * one out, a lookup in the database; nothing blocks. A suspended VM's name
 * is answered too, and the VM resumes (vm-wake.c). */
#include "dns-server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "dns.h"
#include "error.h"
#include "log.h"
#include "store.h"
#include "string-util.h"
#include "vm-manager.h"

static int lookup_vm(const char *name, struct in_addr *ret, void *userdata) {
        Daemon *d = userdata;
        VmRecord vm = {};
        if (!name_is_valid(name))
                return -ENOENT;
        int r = store_vm_get_by_name(d->store, name, &vm);
        if (r < 0)
                return -ENOENT;
        r = -ENOENT;
        if ((vm.state == VM_STATE_RUNNING || vm.state == VM_STATE_SUSPENDED) && vm.ip &&
            inet_pton(AF_INET, vm.ip, ret) == 1)
                r = 0;
        /* Its address is kept while it sleeps: a lookup is a use, it wakes. */
        if (r == 0 && vm.state == VM_STATE_SUSPENDED)
                vm_wake_on_lookup(d->vms, vm.id, vm.name);
        vm_record_done(&vm);
        return r;
}

static int on_dns(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        for (int i = 0; i < 32; i++) {
                uint8_t in[512], out[DNS_MAX_UDP];
                struct sockaddr_storage peer;
                socklen_t plen = sizeof(peer);
                ssize_t n = recvfrom(fd, in, sizeof(in), MSG_DONTWAIT, (struct sockaddr *) &peer, &plen);
                if (n < 0)
                        return 0;
                size_t olen = 0;
                if (dns_server_handle_packet(in, (size_t) n, lookup_vm, userdata, out, sizeof(out), &olen) < 0)
                        continue;
                (void) sendto(fd, out, olen, MSG_DONTWAIT, (struct sockaddr *) &peer, plen);
        }
        return 0;
}

int dns_server_start(Daemon *d) {
        const BangerConfig *c = &d->config;
        struct sockaddr_in sa4 = { .sin_family = AF_INET, .sin_port = htons(c->dns_port) };
        struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons(c->dns_port) };
        bool v6 = false;
        if (inet_pton(AF_INET, c->dns_listen, &sa4.sin_addr) != 1) {
                if (inet_pton(AF_INET6, c->dns_listen, &sa6.sin6_addr) != 1)
                        return error_setf(-EINVAL, "dns_listen %s is not an address", c->dns_listen);
                v6 = true;
        }
        int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        int r = v6 ? bind(fd, (struct sockaddr *) &sa6, sizeof(sa6)) : bind(fd, (struct sockaddr *) &sa4, sizeof(sa4));
        if (r < 0) {
                r = -errno;
                close(fd);
                return error_setf(r, "cannot bind %s:%u: %s", c->dns_listen, c->dns_port, strerror(-r));
        }
        r = sd_event_add_io(d->event, &d->dns_source, fd, EPOLLIN, on_dns, d);
        if (r < 0) {
                close(fd);
                return r;
        }
        (void) sd_event_source_set_io_fd_own(d->dns_source, true);
        log_info("answering <name>.vm on %s:%u", c->dns_listen, c->dns_port);
        return 0;
}
