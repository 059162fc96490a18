/* SPDX-License-Identifier: MIT */
#pragma once

/* Host resources the daemon needs root for (bridge, TAP devices, NAT),
 * reached through the privileged helper bangerd-root. A daemon running as
 * root starts its own helper; an unprivileged daemon uses the system
 * helper's socket. All calls block (short, bounded) and run in workers. */

#include <stdbool.h>

#include "spawn.h"
#include "store.h"

typedef struct Daemon Daemon;
typedef struct Host Host;

int host_new(Daemon *d, Host **ret);
Host *host_free(Host *h);
/* Stop the helper this daemon started (if any); VMs are not touched. */
void host_stop_helper(Host *h);

/* Is a helper reachable? false with error_setf() explaining why not. */
bool host_available(Host *h);

int host_bridge_ensure(Host *h);
/* Does the host's own resolver answer <name>.vm (systemd-resolved routes the
 * zone to banger's DNS)? Without it, users get addresses, not names. */
bool host_vm_names_resolve(Host *h);
int host_tap_create(Host *h, const char *name);
int host_tap_delete(Host *h, const char *name);
/* Regenerate banger's NAT table from the VMs that are running with NAT. */
int host_nat_sync(Host *h, Store *s);
/* Remove TAPs and loop devices no VM in the database owns: a TAP is kept
 * for a live VM, and for one that may_hold (when given) says may still use
 * it (a VM in error whose VMM may still run). */
int host_reconcile(Host *h, Store *s, bool (*may_hold)(const VmRecord *vm, void *userdata), void *userdata);

const char *host_bridge_ip(Host *h);
unsigned host_prefix(Host *h);
const char *host_netmask(Host *h);
