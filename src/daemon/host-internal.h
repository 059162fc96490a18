/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by host.c (the helper connection, bridge, TAPs), host-nat.c and
 * host-reconcile.c. */

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>

#include "daemon.h"
#include "host.h"

#define HELPER_TIMEOUT (20 * USEC_PER_SEC)

struct Host {
        Daemon *d;
        char *socket;
        Process helper;  /* our own helper when the daemon runs as root */
        bool own_helper; /* started by us (or reused): started again when gone */
        pthread_mutex_t helper_lock;
        char bridge_ip[INET_ADDRSTRLEN];
        char netmask[INET_ADDRSTRLEN];
        unsigned prefix;
        bool resolved_done;
        int resolved_hooked; /* 1: <name>.vm routed through systemd-resolved, -1: not, 0: not asked yet */
        /* nat.apply replaces the whole table: a reading of the VM list and
         * its apply must not interleave with another worker's. */
        pthread_mutex_t nat_lock;
};

/* After a helper call failed with r: true when r says no helper listens
 * and the daemon's own helper was started again (call once more). */
bool host_helper_revive(Host *h, int r);

/* Does a VM in this state hold a TAP (and its NAT entry)? */
bool vm_holds_network(const VmRecord *vm);
