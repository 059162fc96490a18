/* SPDX-License-Identifier: MIT */
#pragma once

/* A tiny rtnetlink layer over libmnl (modelled on LXC's nl.c and iproute2):
 * every request carries NLM_F_ACK and the kernel's errno comes back as the
 * return value. Names are validated before they reach the kernel. Library
 * code: logs at debug only. All calls act in the calling thread's network
 * namespace. */

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

typedef struct Netlink Netlink;

int netlink_open(Netlink **ret);
Netlink *netlink_free(Netlink *nl);
DEFINE_TRIVIAL_CLEANUP_FUNC(Netlink *, netlink_free);
#define _cleanup_netlink_ _cleanup_(netlink_freep)

/* 1..15 bytes of [A-Za-z0-9_.-], not "." or "..": what the kernel accepts
 * minus anything that could confuse a shell, a path or nft. */
bool ifname_is_valid(const char *name);

#define NL_KIND_MAX 16

typedef struct NlLink {
        char name[IFNAMSIZ];
        int ifindex;
        int master;             /* ifindex of the master (bridge), 0 when none */
        unsigned flags;         /* IFF_UP, ... */
        char kind[NL_KIND_MAX]; /* "bridge", "tun", "dummy", "" when none */
        bool tun_has_owner;     /* a TUN/TAP with an owning uid (TUNSETOWNER) */
        uid_t tun_owner;
} NlLink;

/* -ENODEV when no link has that name. */
int nl_link_get_index(Netlink *nl, const char *name, int *ret_ifindex);
int nl_link_get(Netlink *nl, const char *name, NlLink *ret);
/* All links in this namespace; *ret is a malloc'ed array. */
int nl_link_list(Netlink *nl, NlLink **ret, size_t *ret_n);

/* -EEXIST when a link of that name exists (NLM_F_EXCL). */
int nl_bridge_create(Netlink *nl, const char *name);
int nl_link_delete(Netlink *nl, const char *name);
int nl_link_set_up(Netlink *nl, int ifindex, bool up);
/* master_ifindex 0 detaches (nomaster). */
int nl_link_set_master(Netlink *nl, int ifindex, int master_ifindex);
/* Rename a link (RTM_NEWLINK with IFLA_IFNAME). The link must be down (the
 * kernel answers -EBUSY otherwise); -EEXIST when new_name is taken,
 * -EINVAL for a name ifname_is_valid() refuses. */
int nl_link_rename(Netlink *nl, int ifindex, const char *new_name);

/* -EEXIST when the address is already present. */
int nl_addr_add_ipv4(Netlink *nl, int ifindex, struct in_addr addr, unsigned prefixlen);
/* Is addr/prefixlen assigned to ifindex? 1 yes, 0 no, or -errno. */
int nl_addr_has_ipv4(Netlink *nl, int ifindex, struct in_addr addr, unsigned prefixlen);
int nl_addr_del_ipv4(Netlink *nl, int ifindex, struct in_addr addr, unsigned prefixlen);
/* Remove every IPv4 address from the link. */
int nl_addr_flush_ipv4(Netlink *nl, int ifindex);

/* The output interface of the IPv4 default route in the main table (lowest
 * metric wins); -ENETUNREACH when there is none. */
int nl_route_get_default_ifindex(Netlink *nl, int *ret_ifindex);

/* Test-only fault injection for the multi-step setups built on this layer
 * (bridge_ensure, tap_setup_for_vm, tap_pool_fill): after
 * net_fault_inject_at(n), the n-th mutating step from now fails with -EIO
 * before touching the kernel, so tests can prove every rollback path.
 * 0 disables. Per thread. */
void net_fault_inject_at(unsigned n);
/* Called by setup code before each mutating step: -EIO when it is the
 * injected one, else 0. */
int net_fault_step(void);
