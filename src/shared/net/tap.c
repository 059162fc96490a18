/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>

#include "bridge.h"
#include "error.h"
#include "log.h"
#include "string-util.h"
#include "tap.h"

static bool is_id_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool tap_name_is_valid(const char *name) {
        const char *id = name ? startswith(name, TAP_PREFIX) : NULL;
        if (!id || !*id || strlen(id) > TAP_ID_MAX)
                return false;
        for (; *id; id++)
                if (!is_id_char(*id))
                        return false;
        return true;
}

int tap_name_for_vm(const char *vm_id, char ret[static IFNAMSIZ]) {
        if (!vm_id || !*vm_id)
                return -EINVAL;
        for (const char *p = vm_id; *p; p++)
                if (!is_id_char(*p))
                        return -EINVAL;
        snprintf(ret, IFNAMSIZ, TAP_PREFIX "%.*s", TAP_ID_MAX, vm_id);
        return 0;
}

int tap_name_random(char ret[static IFNAMSIZ]) {
        uint8_t b[5];
        if (getrandom(b, sizeof(b), 0) != (ssize_t) sizeof(b))
                return negative_errno();
        snprintf(ret, IFNAMSIZ, TAP_PREFIX "p%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4]);
        return 0;
}

/* Attach an fd to the TAP called name; with excl it must not exist yet. */
static int tun_attach(const char *name, bool excl) {
        _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        struct ifreq ifr = {};
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (excl ? IFF_TUN_EXCL : 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                return errno == EBUSY && excl ? -EEXIST : negative_errno();
        return TAKE_FD(fd);
}

static int tun_set_owner(int fd, uid_t uid, gid_t gid) {
        int r = net_fault_step();
        if (r < 0)
                return r;
        if (ioctl(fd, TUNSETOWNER, (unsigned long) uid) < 0)
                return negative_errno();
        r = net_fault_step();
        if (r < 0)
                return r;
        if (ioctl(fd, TUNSETGROUP, (unsigned long) gid) < 0)
                return negative_errno();
        return 0;
}

int tap_create(const char *name, uid_t uid, gid_t gid) {
        if (!tap_name_is_valid(name))
                return error_setf(-EINVAL, "invalid TAP name '%s'", name ? name : "");
        int r = net_fault_step();
        if (r < 0)
                return error_setf(r, "creating TAP %s: %s", name, strerror(-r));
        _cleanup_close_ int fd = tun_attach(name, true);
        if (fd < 0)
                return error_setf(fd, "creating TAP %s: %s", name, strerror(-fd));
        /* Until TUNSETPERSIST the device lives only as long as fd: any
         * failure below removes it when fd closes. */
        r = tun_set_owner(fd, uid, gid);
        if (r < 0)
                return error_setf(r, "setting owner of TAP %s: %s", name, strerror(-r));
        r = net_fault_step();
        if (r >= 0 && ioctl(fd, TUNSETPERSIST, 1UL) < 0)
                r = negative_errno();
        if (r < 0)
                return error_setf(r, "making TAP %s persistent: %s", name, strerror(-r));
        log_debug("tap %s created for %u:%u", name, (unsigned) uid, (unsigned) gid);
        return 0;
}

/* An existing banger TAP, or -ENODEV / -ENOTUNIQ. */
static int tap_get(Netlink *nl, const char *name, NlLink *ret) {
        if (!tap_name_is_valid(name))
                return error_setf(-EINVAL, "invalid TAP name '%s'", name ? name : "");
        int r = nl_link_get(nl, name, ret);
        if (r < 0)
                return r;
        if (!streq(ret->kind, "tun"))
                return error_setf(-ENOTUNIQ, "%s is not a TAP (kind '%s')", name, ret->kind);
        return 0;
}

int tap_set_owner(Netlink *nl, const char *name, uid_t uid, gid_t gid) {
        NlLink l;
        /* Check first: TUNSETIFF on a missing name would create a device. */
        int r = tap_get(nl, name, &l);
        if (r < 0)
                return error_setf(r, "TAP %s: %s", name, strerror(-r));
        _cleanup_close_ int fd = tun_attach(name, false);
        if (fd < 0)
                return error_setf(fd, "attaching to TAP %s: %s", name, strerror(-fd));
        r = tun_set_owner(fd, uid, gid);
        if (r < 0)
                return error_setf(r, "setting owner of TAP %s: %s", name, strerror(-r));
        return 0;
}

int tap_delete(Netlink *nl, const char *name) {
        NlLink l;
        int r = tap_get(nl, name, &l);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return r;
        r = nl_link_delete(nl, name);
        if (r < 0 && r != -ENODEV)
                return error_setf(r, "deleting TAP %s: %s", name, strerror(-r));
        return 0;
}

static int tap_enslave_and_up(Netlink *nl, const char *name, const char *bridge) {
        NlLink br, tap;
        int r = nl_link_get(nl, bridge, &br);
        if (r < 0)
                return error_setf(r, "bridge %s: %s", bridge, strerror(-r));
        if (!streq(br.kind, "bridge"))
                return error_setf(-ENOTUNIQ, "%s is not a bridge", bridge);
        r = nl_link_get(nl, name, &tap);
        if (r < 0)
                return error_setf(r, "looking up TAP %s: %s", name, strerror(-r));
        r = net_fault_step();
        if (r >= 0)
                r = nl_link_set_master(nl, tap.ifindex, br.ifindex);
        if (r < 0)
                return error_setf(r, "attaching %s to %s: %s", name, bridge, strerror(-r));
        r = net_fault_step();
        if (r >= 0)
                r = nl_link_set_up(nl, tap.ifindex, true);
        if (r < 0)
                return error_setf(r, "bringing %s up: %s", name, strerror(-r));
        return 0;
}

int tap_setup_for_vm(Netlink *nl, const char *name, const char *bridge, uid_t uid, gid_t gid) {
        if (!tap_name_is_valid(name))
                return error_setf(-EINVAL, "invalid TAP name '%s'", name ? name : "");
        if (!bridge_name_is_valid(bridge))
                return error_setf(-EINVAL, "invalid bridge name '%s'", bridge ? bridge : "");
        int r = tap_create(name, uid, gid);
        if (r < 0)
                return r;
        r = tap_enslave_and_up(nl, name, bridge);
        if (r < 0) {
                /* Deleting the link also detaches it and takes it down. */
                int k = nl_link_delete(nl, name);
                if (k < 0 && k != -ENODEV)
                        log_debug_errno(k, "rollback: deleting TAP %s failed: %m", name);
                return r;
        }
        return 0;
}

static bool strv_contains(char *const *l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

bool tap_in_scope(const NlLink *l, const TapScope *scope, int bridge_ifindex) {
        if (!streq(l->kind, "tun") || !tap_name_is_valid(l->name))
                return false;
        if (!scope)
                return true;
        if (!l->tun_has_owner || l->tun_owner != scope->uid)
                return false;
        return (bridge_ifindex > 0 && l->master == bridge_ifindex) || strv_contains(scope->recorded, l->name);
}

/* The scope's bridge ifindex, 0 when there is no scope or no such bridge. */
static int scope_bridge_ifindex(const TapScope *scope, const NlLink *links, size_t n) {
        if (!scope || !scope->bridge)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (streq(links[i].name, scope->bridge) && streq(links[i].kind, "bridge"))
                        return links[i].ifindex;
        return 0;
}

int tap_list(Netlink *nl, const TapScope *scope, char ***ret) {
        _cleanup_free_ NlLink *links = NULL;
        size_t n = 0, k = 0;
        int r = nl_link_list(nl, &links, &n);
        if (r < 0)
                return r;
        int br = scope_bridge_ifindex(scope, links, n);
        _cleanup_strv_free_ char **names = calloc(n + 1, sizeof(char *));
        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!tap_in_scope(&links[i], scope, br))
                        continue;
                names[k] = strdup(links[i].name);
                if (!names[k])
                        return -ENOMEM;
                k++;
        }
        *ret = TAKE_PTR(names);
        return 0;
}

int tap_delete_scoped(Netlink *nl, const TapScope *scope, const char *name) {
        NlLink l, br = {};
        int r = tap_get(nl, name, &l);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return r;
        if (scope->bridge && nl_link_get(nl, scope->bridge, &br) >= 0 && !streq(br.kind, "bridge"))
                br.ifindex = 0;
        if (!tap_in_scope(&l, scope, br.ifindex))
                return error_setf(-EPERM,
                                  "TAP %s does not belong to this helper: it acts only on TAPs owned "
                                  "by uid %u on bridge %s",
                                  name, (unsigned) scope->uid, scope->bridge ? scope->bridge : "-");
        r = nl_link_delete(nl, name);
        if (r < 0 && r != -ENODEV)
                return error_setf(r, "deleting TAP %s: %s", name, strerror(-r));
        return 0;
}

int tap_reconcile(Netlink *nl, const TapScope *scope, char *const *keep) {
        _cleanup_strv_free_ char **present = NULL;
        int r = tap_list(nl, scope, &present), first_error = 0, removed = 0;
        if (r < 0)
                return r;
        for (char **t = present; *t; t++) {
                if (strv_contains(keep, *t))
                        continue;
                r = tap_delete(nl, *t);
                if (r < 0) {
                        if (first_error == 0)
                                first_error = r;
                        continue;
                }
                log_debug("reconcile: removed stale TAP %s", *t);
                removed++;
        }
        return first_error < 0 ? first_error : removed;
}

int tap_pool_init(TapPool *p, const char *bridge, uid_t uid, gid_t gid, size_t target) {
        if (!bridge_name_is_valid(bridge))
                return error_setf(-EINVAL, "invalid bridge name '%s'", bridge ? bridge : "");
        if (target > TAP_POOL_MAX)
                return error_setf(-ERANGE, "tap_pool_size %zu exceeds %d", target, TAP_POOL_MAX);
        *p = (TapPool){ .uid = uid, .gid = gid, .target = target };
        snprintf(p->bridge, sizeof(p->bridge), "%s", bridge);
        return 0;
}

int tap_pool_fill(Netlink *nl, TapPool *p, size_t max_add) {
        int added = 0;
        while (p->n < p->target && (size_t) added < max_add) {
                char name[IFNAMSIZ];
                int r = tap_name_random(name);
                if (r < 0)
                        return r;
                r = tap_setup_for_vm(nl, name, p->bridge, p->uid, p->gid);
                if (r == -EEXIST)
                        continue; /* random name collided with an existing TAP */
                if (r < 0)
                        return r;
                memcpy(p->names[p->n++], name, IFNAMSIZ);
                added++;
        }
        return added;
}

int tap_pool_take(Netlink *nl, TapPool *p, uid_t uid, gid_t gid, char ret[static IFNAMSIZ]) {
        if (p->n == 0)
                return -EAGAIN;
        const char *name = p->names[p->n - 1];
        if (uid != p->uid || gid != p->gid) {
                int r = tap_set_owner(nl, name, uid, gid);
                if (r < 0)
                        return r; /* the TAP stays in the pool under its old owner */
        }
        memcpy(ret, name, IFNAMSIZ);
        p->n--;
        return 0;
}

int tap_pool_drain(Netlink *nl, TapPool *p) {
        int first_error = 0;
        while (p->n > 0) {
                int r = tap_delete(nl, p->names[p->n - 1]);
                if (r < 0 && first_error == 0)
                        first_error = r;
                p->n--;
        }
        return first_error;
}
