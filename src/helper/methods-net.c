/* SPDX-License-Identifier: MIT */
/* Network methods: bridge, TAPs, NAT and the resolved hook. The bridge's
 * name, address and CIDR come from the helper's own configuration; a request
 * may restate them (so the daemon can assert it agrees with the helper) but
 * never choose them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "error.h"
#include "firewall.h"
#include "helper.h"
#include "log.h"
#include "netlink.h"
#include "resolved.h"
#include "string-util.h"
#include "tap.h"

static int check_restated_config(const Helper *h, const char *method, json_t *params) {
        char b[48], want[IPV4_STRLEN + 4];
        const char *s;
        int r;
        if ((s = params_string(params, "bridge")) && (r = check_bridge_name(h, s)) < 0)
                return r;
        if ((s = params_string(params, "ip")) && !streq(s, ipv4_format(h->bridge_ip, want)))
                return error_setf(-EPERM, "%s: bridge address '%s' differs from the configured %s", method,
                                  shorten(s, b), want);
        if ((s = params_string(params, "cidr"))) {
                char cidr[IPV4_STRLEN + 4];
                snprintf(cidr, sizeof(cidr), "%s/%u", ipv4_format(h->subnet.network, want), h->subnet.prefixlen);
                if (!streq(s, cidr))
                        return error_setf(-EPERM, "%s: CIDR '%s' differs from the configured %s", method, shorten(s, b),
                                          cidr);
        }
        return 0;
}

static int ensure_bridge(Helper *h, Netlink *nl, bool *ret_created) {
        int ifindex = 0;
        int r = bridge_ensure(nl, h->bridge, h->bridge_ip, h->subnet.prefixlen, &ifindex);
        if (r < 0)
                return error_last_message() ? r : error_setf(r, "bridge %s: %s", h->bridge, strerror(-r));
        if (r > 0)
                log_info("created bridge %s", h->bridge);
        if (ret_created)
                *ret_created = r > 0;
        return 0;
}

static int method_bridge_ensure(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = {
                { "bridge", FIELD_STRING }, { "ip", FIELD_STRING }, { "cidr", FIELD_STRING }, {}
        };
        int r = params_check("bridge.ensure", params, fields);
        if (r >= 0)
                r = check_restated_config(h, "bridge.ensure", params);
        if (r < 0)
                return r;
        _cleanup_netlink_ Netlink *nl = NULL;
        bool created = false;
        if ((r = netlink_open(&nl)) < 0 || (r = ensure_bridge(h, nl, &created)) < 0)
                return r;
        helper_pool_schedule_refill(h);
        char ip[IPV4_STRLEN];
        *ret = json_pack("{s:s, s:s, s:b}", "bridge", h->bridge, "ip", ipv4_format(h->bridge_ip, ip), "created",
                         created);
        return *ret ? 0 : -ENOMEM;
}

static int check_owner_ids(const Helper *h, const char *method, json_t *params) {
        json_t *v;
        if ((v = json_object_get(params, "uid")) && json_integer_value(v) != (json_int_t) h->owner_uid)
                return error_setf(-EPERM, "%s: uid %lld is not the owner's (uid %u)", method,
                                  (long long) json_integer_value(v), (unsigned) h->owner_uid);
        if ((v = json_object_get(params, "gid")) && json_integer_value(v) != (json_int_t) h->owner_gid)
                return error_setf(-EPERM, "%s: gid %lld is not the owner's (gid %u)", method,
                                  (long long) json_integer_value(v), (unsigned) h->owner_gid);
        return 0;
}

static int method_tap_create(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = { { "name", FIELD_STRING, true },
                                              { "uid", FIELD_UINT },
                                              { "gid", FIELD_UINT },
                                              { "bridge", FIELD_STRING },
                                              {} };
        int r = params_check("tap.create", params, fields);
        const char *name = params_string(params, "name");
        if (r >= 0)
                r = check_tap_name(name);
        if (r >= 0)
                r = check_owner_ids(h, "tap.create", params);
        if (r >= 0)
                r = check_restated_config(h, "tap.create", params);
        if (r < 0)
                return r;
        _cleanup_netlink_ Netlink *nl = NULL;
        /* The bridge may be gone (host reboot, manual cleanup): a TAP request
         * implies it, and ensuring it is idempotent and cheap. */
        if ((r = netlink_open(&nl)) < 0 || (r = ensure_bridge(h, nl, NULL)) < 0)
                return r;
        /* A pooled TAP is renamed: the owner's count stays the same. */
        r = helper_pool_take_as(h, nl, name);
        if (r == -EAGAIN && (r = helper_taps_check_room(h, nl)) >= 0)
                r = tap_setup_for_vm(nl, name, h->bridge, h->owner_uid, h->owner_gid);
        if (r == -EEXIST)
                return error_setf(r, "TAP %s already exists", name);
        if (r < 0)
                return error_last_message() ? r : error_setf(r, "creating TAP %s: %s", name, strerror(-r));
        if ((r = helper_taps_record(h, name)) < 0)
                return r;
        *ret = json_pack("{s:s, s:s}", "name", name, "bridge", h->bridge);
        return *ret ? 0 : -ENOMEM;
}

static int method_tap_delete(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = { { "name", FIELD_STRING, true }, {} };
        int r = params_check("tap.delete", params, fields);
        const char *name = params_string(params, "name");
        if (r >= 0)
                r = check_tap_name(name);
        if (r < 0)
                return r;
        _cleanup_netlink_ Netlink *nl = NULL;
        _cleanup_strv_free_ char **recorded = NULL;
        TapScope scope;
        if ((r = helper_tap_scope(h, &scope, &recorded)) < 0 || (r = netlink_open(&nl)) < 0 ||
            (r = tap_delete_scoped(nl, &scope, name)) < 0)
                return r;
        helper_taps_forget(h, name);
        *ret = json_pack("{s:s}", "name", name);
        return *ret ? 0 : -ENOMEM;
}

static json_t *strv_to_json(char **l) {
        json_t *a = json_array();
        for (char **i = l; a && i && *i; i++)
                if (json_array_append_new(a, json_string(*i)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static int method_tap_list(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = { {} };
        int r = params_check("tap.list", params, fields);
        if (r < 0)
                return r;
        _cleanup_netlink_ Netlink *nl = NULL;
        _cleanup_strv_free_ char **taps = NULL, **recorded = NULL;
        TapScope scope;
        if ((r = helper_tap_scope(h, &scope, &recorded)) < 0 || (r = netlink_open(&nl)) < 0 ||
            (r = tap_list(nl, &scope, &taps)) < 0)
                return r;
        *ret = json_pack("{s:o}", "taps", strv_to_json(taps));
        return *ret ? 0 : -ENOMEM;
}

static int uplink_name(Helper *h, char ret[static IFNAMSIZ]) {
        if (h->uplink) {
                snprintf(ret, IFNAMSIZ, "%s", h->uplink);
                return 0;
        }
        _cleanup_netlink_ Netlink *nl = NULL;
        _cleanup_free_ NlLink *links = NULL;
        size_t n = 0;
        int ifindex = 0;
        int r = netlink_open(&nl);
        if (r >= 0 && (r = nl_route_get_default_ifindex(nl, &ifindex)) == -ENETUNREACH)
                return error_setf(r, "no IPv4 default route: cannot tell which interface NAT should use");
        if (r >= 0)
                r = nl_link_list(nl, &links, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (links[i].ifindex == ifindex) {
                        memcpy(ret, links[i].name, IFNAMSIZ);
                        return 0;
                }
        return error_setf(-ENODEV, "default route interface %d vanished", ifindex);
}

static int nat_entries_parse(Helper *h, json_t *list, NatEntry **ret, size_t *ret_n) {
        static const HelperField fields[] = { { "ip", FIELD_STRING, true }, { "tap", FIELD_STRING, true }, {} };
        size_t n = json_array_size(list), i;
        if (n > FIREWALL_MAX_ENTRIES)
                return error_setf(-E2BIG, "nat.apply: more than %d entries", FIREWALL_MAX_ENTRIES);
        _cleanup_free_ NatEntry *e = calloc(n ? n : 1, sizeof(NatEntry));
        if (!e)
                return -ENOMEM;
        json_t *v;
        json_array_foreach (list, i, v) {
                if (!json_is_object(v))
                        return error_setf(-EINVAL, "nat.apply: entry %zu must be an object {ip, tap}", i);
                int r = params_check("nat.apply entry", v, fields);
                if (r >= 0)
                        r = check_guest_ip(h, params_string(v, "ip"), &e[i].guest);
                if (r >= 0)
                        r = check_tap_name(params_string(v, "tap"));
                if (r < 0)
                        return r;
                e[i].tap = params_string(v, "tap"); /* borrowed from params */
        }
        *ret = TAKE_PTR(e);
        *ret_n = n;
        return 0;
}

static int method_nat_apply(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = { { "entries", FIELD_ARRAY, true }, {} };
        _cleanup_free_ NatEntry *e = NULL;
        size_t n = 0;
        int r = params_check("nat.apply", params, fields);
        if (r >= 0)
                r = nat_entries_parse(h, json_object_get(params, "entries"), &e, &n);
        if (r < 0)
                return r;
        char out_if[IFNAMSIZ] = "";
        if (n > 0 && (r = uplink_name(h, out_if)) < 0)
                return r;
        r = firewall_apply(h->nft_table, e, n, out_if, &h->subnet);
        if (r < 0)
                return error_last_message() ? r
                                            : error_setf(r, "applying nft table %s: %s", h->nft_table, strerror(-r));
        *ret = json_pack("{s:I, s:s, s:s}", "entries", (json_int_t) n, "uplink", out_if, "table", h->nft_table);
        return *ret ? 0 : -ENOMEM;
}

static int method_resolved_configure(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = { {} };
        int r = params_check("resolved.configure", params, fields);
        if (r < 0)
                return r;
        _cleanup_netlink_ Netlink *nl = NULL;
        int ifindex = 0;
        if ((r = netlink_open(&nl)) < 0)
                return r;
        if ((r = nl_link_get_index(nl, h->bridge, &ifindex)) < 0)
                return error_setf(r, "bridge %s does not exist; call bridge.ensure first", h->bridge);
        struct in_addr lo = { .s_addr = htonl(INADDR_LOOPBACK) };
        error_clear();
        r = resolved_link_configure(ifindex, lo, h->dns_port);
        if (r == -EOPNOTSUPP)
                return error_setf(r, "systemd-resolved is not running: <name>.vm lookups cannot be routed "
                                     "to banger's DNS responder");
        if (r < 0)
                return error_last_message() ? r : error_setf(r, "systemd-resolved: %s", strerror(-r));
        *ret = json_pack("{s:s, s:i}", "link", h->bridge, "port", (int) h->dns_port);
        return *ret ? 0 : -ENOMEM;
}

const HelperMethod helper_net_methods[] = {
        { "bridge.ensure", method_bridge_ensure },
        { "nat.apply", method_nat_apply },
        { "resolved.configure", method_resolved_configure },
        { "tap.create", method_tap_create },
        { "tap.delete", method_tap_delete },
        { "tap.list", method_tap_list },
        {},
};
