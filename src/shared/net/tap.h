/* SPDX-License-Identifier: MIT */
#pragma once

/* Per-VM TAP devices, created persistent through /dev/net/tun (the
 * iproute2 ip/iptuntap.c recipe) and owned by the VM's owner so an
 * unprivileged VMM can attach.
 *
 * Flags: the TAP is created IFF_TAP|IFF_NO_PI, single queue. IFF_VNET_HDR is
 * a per-attach feature the kernel takes from whoever calls TUNSETIFF:
 * Firecracker attaches with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, QEMU with
 * IFF_TAP|IFF_NO_PI (+IFF_VNET_HDR when vnet_hdr is on). Both refuse a
 * multi-queue device unless asked for queues, so we never set
 * IFF_MULTI_QUEUE. */

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "netlink.h"

#define TAP_PREFIX "bgt"
/* IFNAMSIZ - 1 - strlen(TAP_PREFIX) */
#define TAP_ID_MAX 12
#define TAP_POOL_MAX 64

/* "bgt" followed by 1..12 of [a-z0-9]: banger only ever touches its own TAPs. */
bool tap_name_is_valid(const char *name);

/* "bgt" + the first 12 characters of vm_id ([a-z0-9]+). Two ids sharing
 * those 12 characters collide: tap_create() then fails with -EEXIST and the
 * caller picks tap_name_random(). The name is recorded in the store. */
int tap_name_for_vm(const char *vm_id, char ret[static IFNAMSIZ]);
/* "bgtp" + 10 random hex digits (pool TAPs). */
int tap_name_random(char ret[static IFNAMSIZ]);

/* Create a persistent TAP owned by uid:gid. -EEXIST when the name is
 * taken. Nothing is left behind on failure (an fd-bound TAP vanishes when
 * the fd closes before TUNSETPERSIST). */
int tap_create(const char *name, uid_t uid, gid_t gid);
/* Hand an existing, unattached TAP to another owner. */
int tap_set_owner(Netlink *nl, const char *name, uid_t uid, gid_t gid);
/* Delete the TAP; 0 when it did not exist. */
int tap_delete(Netlink *nl, const char *name);

/* Create the TAP, enslave it to the bridge and bring it up; on failure the
 * steps done so far are undone in reverse order and no TAP remains. */
int tap_setup_for_vm(Netlink *nl, const char *name, const char *bridge, uid_t uid, gid_t gid);

/* Which TAPs one privileged helper may act on: banger TAPs (kind "tun",
 * banger name) owned by uid and either enslaved to bridge or named in
 * recorded (the TAPs that helper made and still holds, such as its pool).
 * Another user's TAP, or one on another bridge, is never listed, deleted
 * or reconciled through a scope. */
typedef struct TapScope {
        uid_t uid;
        const char *bridge;
        char *const *recorded; /* NULL-terminated, or NULL */
} TapScope;

/* Is the link in scope? bridge_ifindex is the scope's bridge (0: none).
 * A NULL scope takes every banger TAP. */
bool tap_in_scope(const NlLink *l, const TapScope *scope, int bridge_ifindex);

/* Names of the banger TAPs in scope (NULL: all of them) in this namespace,
 * as a NULL-terminated strv. */
int tap_list(Netlink *nl, const TapScope *scope, char ***ret);

/* Delete the TAP if it is in scope; 0 when it does not exist, -EPERM (with
 * a message) when it is someone else's. */
int tap_delete_scoped(Netlink *nl, const TapScope *scope, const char *name);

/* Delete every TAP in scope whose name is not in keep (a NULL-terminated
 * strv of the TAPs the store's VMs own). Returns the number removed, or the
 * first error (after trying all). */
int tap_reconcile(Netlink *nl, const TapScope *scope, char *const *keep);

/* Pre-created TAPs, attached to the bridge and up, so a VM create does not
 * wait on netlink. Kept in memory by the helper: after a restart the
 * reconcile removes them and the pool is filled again. */
typedef struct TapPool {
        char bridge[IFNAMSIZ];
        uid_t uid;
        gid_t gid;
        size_t target;
        size_t n;
        char names[TAP_POOL_MAX][IFNAMSIZ];
} TapPool;

int tap_pool_init(TapPool *p, const char *bridge, uid_t uid, gid_t gid, size_t target);
/* Create TAPs until the pool holds target, adding at most max_add; returns
 * how many were added. On failure the pool keeps what it had and the failed
 * TAP is gone. */
int tap_pool_fill(Netlink *nl, TapPool *p, size_t max_add);
/* Take one TAP for a VM owned by uid:gid (re-owned when they differ);
 * -EAGAIN when the pool is empty: the caller falls back to tap_setup_for_vm. */
int tap_pool_take(Netlink *nl, TapPool *p, uid_t uid, gid_t gid, char ret[static IFNAMSIZ]);
/* Delete every TAP still in the pool. */
int tap_pool_drain(Netlink *nl, TapPool *p);
