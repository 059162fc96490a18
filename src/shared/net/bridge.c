/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <net/if.h>
#include <string.h>

#include "bridge.h"
#include "error.h"
#include "ipv4-subnet.h"
#include "log.h"
#include "string-util.h"

bool bridge_name_is_valid(const char *name) {
        if (!name)
                return false;
        if (streq(name, BRIDGE_DEFAULT_NAME))
                return true;
        const char *suffix = startswith(name, BRIDGE_DEFAULT_NAME "-");
        if (!suffix || !*suffix || strlen(name) >= IFNAMSIZ)
                return false;
        for (const char *p = suffix; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
                        return false;
        return true;
}

/* Looks the bridge up, creating it when missing; *ret_created says which. */
static int bridge_get_or_create(Netlink *nl, const char *name, NlLink *ret, bool *ret_created) {
        int r = nl_link_get(nl, name, ret);
        if (r == 0) {
                if (!streq(ret->kind, "bridge"))
                        return error_setf(-ENOTUNIQ, "%s exists but is not a bridge (kind '%s')", name, ret->kind);
                *ret_created = false;
                return 0;
        }
        if (r != -ENODEV)
                return error_setf(r, "looking up bridge %s: %s", name, strerror(-r));
        r = net_fault_step();
        if (r >= 0)
                r = nl_bridge_create(nl, name);
        if (r < 0)
                return error_setf(r, "creating bridge %s: %s", name, strerror(-r));
        *ret_created = true;
        r = nl_link_get(nl, name, ret);
        if (r < 0) {
                (void) nl_link_delete(nl, name);
                return error_setf(r, "looking up new bridge %s: %s", name, strerror(-r));
        }
        return 0;
}

/* Adds the address when missing; *ret_added says whether it did. */
static int bridge_ensure_addr(Netlink *nl, const NlLink *l, struct in_addr addr, unsigned prefixlen,
                              bool *ret_added) {
        char buf[IPV4_STRLEN];
        *ret_added = false;
        int r = nl_addr_has_ipv4(nl, l->ifindex, addr, prefixlen);
        if (r < 0)
                return error_setf(r, "listing addresses of %s: %s", l->name, strerror(-r));
        if (r > 0)
                return 0;
        r = net_fault_step();
        if (r >= 0)
                r = nl_addr_add_ipv4(nl, l->ifindex, addr, prefixlen);
        if (r < 0 && r != -EEXIST)
                return error_setf(r, "adding %s/%u to %s: %s", ipv4_format(addr, buf), prefixlen, l->name,
                                  strerror(-r));
        *ret_added = r == 0;
        return 0;
}

int bridge_ensure(Netlink *nl, const char *name, struct in_addr addr, unsigned prefixlen, int *ret_ifindex) {
        Ipv4Subnet sn;
        if (!bridge_name_is_valid(name))
                return error_setf(-EINVAL, "invalid bridge name '%s': must be br-fc or br-fc-[a-z0-9]+",
                                  name ? name : "");
        if (ipv4_subnet_from_addr(addr, prefixlen, &sn) < 0 || !ipv4_subnet_contains_host(&sn, addr))
                return error_setf(-EINVAL, "invalid bridge address prefix /%u", prefixlen);

        NlLink l;
        bool created = false, added = false;
        int r = bridge_get_or_create(nl, name, &l, &created);
        if (r < 0)
                return r;
        r = bridge_ensure_addr(nl, &l, addr, prefixlen, &added);
        if (r >= 0 && !(l.flags & IFF_UP)) {
                r = net_fault_step();
                if (r >= 0)
                        r = nl_link_set_up(nl, l.ifindex, true);
                if (r < 0)
                        r = error_setf(r, "bringing %s up: %s", name, strerror(-r));
        }
        if (r < 0) {
                /* Undo only what this call did; a pre-existing bridge stays. */
                if (created)
                        (void) nl_link_delete(nl, name);
                else if (added)
                        (void) nl_addr_del_ipv4(nl, l.ifindex, addr, prefixlen);
                return r;
        }
        log_debug("bridge %s ready (ifindex %d%s)", name, l.ifindex, created ? ", created" : "");
        if (ret_ifindex)
                *ret_ifindex = l.ifindex;
        return created ? 1 : 0;
}

int bridge_remove(Netlink *nl, const char *name) {
        if (!bridge_name_is_valid(name))
                return error_setf(-EINVAL, "invalid bridge name '%s'", name ? name : "");
        NlLink l;
        int r = nl_link_get(nl, name, &l);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return r;
        if (!streq(l.kind, "bridge"))
                return error_setf(-ENOTUNIQ, "%s is not a bridge", name);
        r = nl_link_delete(nl, name);
        return r == -ENODEV ? 0 : r;
}
