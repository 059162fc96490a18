/* SPDX-License-Identifier: MIT */
#pragma once

/* The host bridge VMs' TAPs attach to (default br-fc on 172.16.0.1/24). */

#include <netinet/in.h>
#include <stdbool.h>

#include "netlink.h"

#define BRIDGE_DEFAULT_NAME "br-fc"

/* Only "br-fc" or "br-fc-" followed by 1..9 of [a-z0-9]: banger never
 * touches a bridge it could not have created. */
bool bridge_name_is_valid(const char *name);

/* Make sure the bridge exists, carries addr/prefixlen and is up.
 * Idempotent: an existing, complete bridge is left untouched. Returns 1 when
 * it created the bridge, 0 when it existed. On failure everything this call
 * added is removed again (the bridge if it created it, else the address it
 * added). -ENOTUNIQ when a non-bridge link holds the name. */
int bridge_ensure(Netlink *nl, const char *name, struct in_addr addr, unsigned prefixlen, int *ret_ifindex);

/* Delete the bridge; 0 when it did not exist. */
int bridge_remove(Netlink *nl, const char *name);
