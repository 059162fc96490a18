/* SPDX-License-Identifier: MIT */
#pragma once

/* banger's NAT: one nftables table per helper, named from its bridge
 * ("table ip banger" for br-fc, "table ip banger-<suffix>" for
 * br-fc-<suffix>), regenerated as a whole from the store's list of
 * NAT-enabled VMs and applied in a single libnftables transaction, so the
 * kernel holds either the old table or the new one, never a mix. A helper
 * touches only its own table: two owners' helpers on one host keep their
 * NAT apart. Rendering is deterministic (entries are sorted), so a rebuild
 * after a daemon restart gives the same table, and the text is exactly
 * what `nft list table ip <name>` prints back. nft's own error text is
 * recorded with error_setf(). Its forward chain lets only NAT VMs out, to
 * the uplink, and only their replies back, and drops everything else
 * forwarded from or to the bridge (named from the table): a VM without NAT
 * has no way out once forwarding is on (docs/helper.md).
 *
 * net.ipv4.ip_forward is one switch for the whole network namespace: it is
 * turned on with the first NAT entry and put back as it was found when the
 * last banger table in the namespace goes. What was found is kept in the
 * kernel, next to the rules: every banger table made while ip_forward had
 * been off before banger turned it on carries an empty chain named
 * FIREWALL_FORWARD_MARK, so it survives helper restarts and passes from one
 * helper's table to the next. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "ipv4-subnet.h"

#define FIREWALL_TABLE_PREFIX "banger"
#define FIREWALL_TABLE_MAX 32
#define FIREWALL_FORWARD_MARK "ip_forward_was_off"
#define FIREWALL_MAX_ENTRIES 4096

typedef struct NatEntry {
        struct in_addr guest; /* the VM's address, inside the configured subnet */
        const char *tap;      /* the VM's TAP (banger prefix) */
} NatEntry;

/* The table of the helper that owns bridge (a valid banger bridge name). */
int firewall_table_name(const char *bridge, char ret[static FIREWALL_TABLE_MAX]);
/* "banger" or "banger-" followed by [a-z0-9]+: a table some helper owns. */
bool firewall_table_is_banger(const char *name);

/* Full ruleset text of table for the entries (any order; sorted by address,
 * then TAP), with the ip_forward mark when forward_was_off. Validates every
 * argument: TAP names, out_if, addresses inside subnet, no address or TAP
 * used twice. */
int firewall_render(const char *table, const NatEntry *entries, size_t n, const char *out_if, const Ipv4Subnet *subnet,
                    bool forward_was_off, char **ret);

/* Replace table with the rendered one in one transaction and turn
 * ip_forward on (n == 0: firewall_delete()). */
int firewall_apply(const char *table, const NatEntry *entries, size_t n, const char *out_if, const Ipv4Subnet *subnet);

/* Remove table (0 when it did not exist); when it was the last banger table
 * and ip_forward had been off before banger, turn ip_forward off again. */
int firewall_delete(const char *table);

/* `nft list table ip <table>` (json: `nft -j ...`) through libnftables;
 * -ENOENT when the table does not exist. */
int firewall_list(const char *table, bool json, char **ret);

/* net.ipv4.ip_forward in the calling thread's network namespace. */
int ip_forward_get(void); /* 0 or 1, or -errno */
int ip_forward_set(bool on);
