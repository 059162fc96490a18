/* SPDX-License-Identifier: MIT */
#pragma once

/* banger's NAT: one nftables table ("table ip banger") regenerated as a
 * whole from the store's list of NAT-enabled VMs and applied in a single
 * libnftables transaction, so the kernel holds either the old table or the
 * new one, never a mix. Rendering is deterministic (entries are sorted), so
 * a rebuild after a daemon restart gives the same table, and the text is
 * exactly what `nft list table ip banger` prints back. nft's own error text
 * is recorded with error_setf(). */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "ipv4-subnet.h"

#define FIREWALL_TABLE "banger"
#define FIREWALL_MAX_ENTRIES 4096

typedef struct NatEntry {
        struct in_addr guest; /* the VM's address, inside the configured subnet */
        const char *tap;      /* the VM's TAP (banger prefix) */
} NatEntry;

/* Full ruleset text for the entries (any order; sorted by address, then
 * TAP). Validates every argument: TAP names, out_if, addresses inside
 * subnet, no address or TAP used twice. */
int firewall_render(const NatEntry *entries, size_t n, const char *out_if, const Ipv4Subnet *subnet, char **ret);

/* Replace banger's table with the rendered one in one transaction; n == 0
 * removes the table. */
int firewall_apply(const NatEntry *entries, size_t n, const char *out_if, const Ipv4Subnet *subnet);

/* Remove banger's table; 0 when it did not exist. */
int firewall_delete(void);

/* `nft list table ip banger` (json: `nft -j ...`) through libnftables;
 * -ENOENT when the table does not exist. */
int firewall_list(bool json, char **ret);

/* net.ipv4.ip_forward = 1 in the calling thread's network namespace. */
int ip_forward_enable(void);
