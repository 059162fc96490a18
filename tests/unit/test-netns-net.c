/* SPDX-License-Identifier: MIT */
/* The networking layer against a real kernel, inside a private network
 * namespace this process creates first thing (unshare(CLONE_NEWNET)): the
 * host's interfaces and nftables tables are never touched, and the
 * namespace, with everything in it, disappears when the process exits.
 * State is checked with the real tools (ip -j, nft) spawned inside it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"
#include "error.h"
#include "firewall.h"
#include "fs-util.h"
#include "ipv4-subnet.h"
#include "netlink.h"
#include "spawn.h"
#include "string-util.h"
#include "tap.h"

#define BR "br-fc"
#define OWNER 65534

static Netlink *nl;
static char *ip_bin, *nft_bin;

static struct in_addr ip4(const char *s) {
        struct in_addr a;
        assert_int_equal(ipv4_parse(s, &a), 0);
        return a;
}

/* Run a tool; returns its exit code and stdout. */
static int run(char **out, const char *a0, ...) {
        char *argv[16];
        size_t n = 0;
        va_list ap;
        va_start(ap, a0);
        for (const char *a = a0; a && n < ELEMENTSOF(argv) - 1; a = va_arg(ap, const char *))
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n] = NULL;
        return spawn_run_capture(argv, 20 * USEC_PER_SEC, 1 << 20, false, out);
}

static json_t *run_json(const char *a0, ...) {
        /* Only the ip/nft invocations below use this: at most 8 args. */
        char *argv[10] = {};
        size_t n = 0;
        va_list ap;
        va_start(ap, a0);
        for (const char *a = a0; a && n < 9; a = va_arg(ap, const char *))
                argv[n++] = (char *) a;
        va_end(ap);
        _cleanup_free_ char *out = NULL;
        int r = spawn_run_capture(argv, 20 * USEC_PER_SEC, 1 << 20, false, &out);
        if (r != 0)
                return NULL;
        json_error_t e;
        json_t *j = json_loads(out, 0, &e);
        assert_non_null(j);
        return j;
}

/* `ip -j -d link show dev NAME`, or NULL when there is no such link. */
static json_t *link_json(const char *name) {
        json_t *arr = run_json(ip_bin, "-j", "-d", "link", "show", "dev", name, NULL);
        if (!arr)
                return NULL;
        json_t *l = json_incref(json_array_get(arr, 0));
        json_decref(arr);
        return l;
}

static bool link_has_flag(json_t *l, const char *flag) {
        size_t i;
        json_t *f;
        json_array_foreach (json_object_get(l, "flags"), i, f)
                if (streq(json_string_value(f), flag))
                        return true;
        return false;
}

/* Count links whose name starts with prefix (ip -j link). */
static int count_links(const char *prefix) {
        json_t *arr = run_json(ip_bin, "-j", "link", "show", NULL);
        assert_non_null(arr);
        size_t i;
        json_t *l;
        int n = 0;
        json_array_foreach (arr, i, l)
                if (startswith(json_string_value(json_object_get(l, "ifname")), prefix))
                        n++;
        json_decref(arr);
        return n;
}

static void assert_link_absent(const char *name) {
        json_t *l = link_json(name);
        if (l)
                fail_msg("link %s still exists", name);
}

/* ip prints the TAP's owner as a user name, or as a number when the uid
 * has no passwd entry. */
static void assert_owner(json_t *info_data, uid_t uid) {
        json_t *u = json_object_get(info_data, "user");
        if (json_is_integer(u)) {
                assert_int_equal(json_integer_value(u), uid);
                return;
        }
        struct passwd *pw = getpwuid(uid);
        assert_non_null(pw);
        assert_non_null(json_string_value(u));
        assert_string_equal(json_string_value(u), pw->pw_name);
}

static void assert_tap_ready(const char *name, uid_t uid) {
        json_t *l = link_json(name);
        assert_non_null(l);
        assert_string_equal(json_string_value(json_object_get(l, "master")), BR);
        assert_true(link_has_flag(l, "UP"));
        json_t *info = json_object_get(l, "linkinfo");
        assert_string_equal(json_string_value(json_object_get(info, "info_kind")), "tun");
        json_t *data = json_object_get(info, "info_data");
        assert_string_equal(json_string_value(json_object_get(data, "type")), "tap");
        assert_true(json_is_true(json_object_get(data, "persist")));
        assert_false(json_is_true(json_object_get(data, "pi")));
        assert_false(json_is_true(json_object_get(data, "multi_queue")));
        assert_owner(data, uid);
        json_decref(l);
}

static void test_bridge_idempotent(void **state) {
        int idx1 = 0, idx2 = 0;
        assert_int_equal(bridge_ensure(nl, BR, ip4("172.16.0.1"), 24, &idx1), 1);
        assert_int_equal(bridge_ensure(nl, BR, ip4("172.16.0.1"), 24, &idx2), 0);
        assert_int_equal(idx1, idx2);

        json_t *bridges = run_json(ip_bin, "-j", "link", "show", "type", "bridge", NULL);
        assert_non_null(bridges);
        assert_int_equal(json_array_size(bridges), 1);
        json_decref(bridges);

        json_t *l = link_json(BR);
        assert_non_null(l);
        assert_true(link_has_flag(l, "UP"));
        json_decref(l);

        json_t *addrs = run_json(ip_bin, "-j", "-4", "addr", "show", "dev", BR, NULL);
        json_t *ai = json_object_get(json_array_get(addrs, 0), "addr_info");
        assert_int_equal(json_array_size(ai), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(ai, 0), "local")), "172.16.0.1");
        assert_int_equal(json_integer_value(json_object_get(json_array_get(ai, 0), "prefixlen")), 24);
        json_decref(addrs);

        /* Names outside banger's own are refused before any kernel call. */
        assert_int_equal(bridge_ensure(nl, "docker0", ip4("172.16.0.1"), 24, NULL), -EINVAL);
        assert_int_equal(bridge_ensure(nl, "lo", ip4("172.16.0.1"), 24, NULL), -EINVAL);
        assert_int_equal(bridge_remove(nl, "lo"), -EINVAL);
        /* The network address is no host address. */
        assert_int_equal(bridge_ensure(nl, "br-fc-x", ip4("172.16.0.0"), 24, NULL), -EINVAL);
        assert_link_absent("br-fc-x");
}

static void test_bridge_rollback(void **state) {
        /* Three mutating steps on a fresh bridge: create, address, up. */
        for (unsigned step = 1; step <= 3; step++) {
                net_fault_inject_at(step);
                assert_int_equal(bridge_ensure(nl, "br-fc-t", ip4("172.17.0.1"), 24, NULL), -EIO);
                assert_link_absent("br-fc-t");
        }
        net_fault_inject_at(4);
        assert_int_equal(bridge_ensure(nl, "br-fc-t", ip4("172.17.0.1"), 24, NULL), 1);
        net_fault_inject_at(0);

        /* A pre-existing bridge survives a failure, minus the address we added. */
        assert_int_equal(run(NULL, ip_bin, "addr", "flush", "dev", "br-fc-t", NULL), 0);
        net_fault_inject_at(1);
        assert_int_equal(bridge_ensure(nl, "br-fc-t", ip4("172.17.0.1"), 24, NULL), -EIO);
        json_t *addrs = run_json(ip_bin, "-j", "-4", "addr", "show", "dev", "br-fc-t", NULL);
        assert_int_equal(json_array_size(json_object_get(json_array_get(addrs, 0), "addr_info")), 0);
        json_decref(addrs);
        assert_int_equal(bridge_remove(nl, "br-fc-t"), 0);
        assert_link_absent("br-fc-t");
        assert_int_equal(bridge_remove(nl, "br-fc-t"), 0);

        /* A non-bridge link holding a bridge name is refused, never adopted. */
        /* veth, not dummy: this kernel has no dummy driver. */
        assert_int_equal(run(NULL, ip_bin, "link", "add", "br-fc-d", "type", "veth", "peer", "name", "brpeer0", NULL),
                         0);
        assert_int_equal(bridge_ensure(nl, "br-fc-d", ip4("172.18.0.1"), 24, NULL), -ENOTUNIQ);
        assert_int_equal(run(NULL, ip_bin, "link", "del", "br-fc-d", NULL), 0);
}

static void test_tap_for_vm(void **state) {
        assert_int_equal(bridge_ensure(nl, BR, ip4("172.16.0.1"), 24, NULL), 0);
        assert_int_equal(tap_setup_for_vm(nl, "bgtvm1", BR, OWNER, OWNER), 0);
        assert_tap_ready("bgtvm1", OWNER);

        /* A second setup of the same name fails and leaves the first alone. */
        assert_int_equal(tap_setup_for_vm(nl, "bgtvm1", BR, 0, 0), -EEXIST);
        assert_tap_ready("bgtvm1", OWNER);

        /* Only banger's names; only bridges banger may use. */
        assert_int_equal(tap_setup_for_vm(nl, "tap0", BR, OWNER, OWNER), -EINVAL);
        assert_int_equal(tap_setup_for_vm(nl, "bgtvm2", "eth0", OWNER, OWNER), -EINVAL);
        assert_int_equal(tap_delete(nl, "lo"), -EINVAL);
        assert_link_absent("tap0");

        assert_int_equal(tap_delete(nl, "bgtvm1"), 0);
        assert_link_absent("bgtvm1");
        assert_int_equal(tap_delete(nl, "bgtvm1"), 0);
}

static void test_tap_rollback(void **state) {
        /* Fail each step in turn until the setup gets through: create,
         * owner, group, persist, enslave, up. No TAP may survive a failure. */
        unsigned step;
        int r = -EIO;
        for (step = 1; step < 20; step++) {
                net_fault_inject_at(step);
                r = tap_setup_for_vm(nl, "bgtfault", BR, OWNER, OWNER);
                if (r == 0)
                        break;
                assert_int_equal(r, -EIO);
                assert_int_equal(count_links(TAP_PREFIX), 0);
        }
        net_fault_inject_at(0);
        assert_int_equal(r, 0);
        assert_int_equal(step, 7); /* six steps were each failed once */
        assert_tap_ready("bgtfault", OWNER);
        assert_int_equal(tap_delete(nl, "bgtfault"), 0);

        /* A missing bridge fails the setup after the TAP exists: rolled back. */
        error_clear();
        assert_int_equal(tap_setup_for_vm(nl, "bgtnobr", "br-fc-none", OWNER, OWNER), -ENODEV);
        assert_non_null(strstr(error_last_message(), "br-fc-none"));
        assert_int_equal(count_links(TAP_PREFIX), 0);
}

static void test_tap_pool(void **state) {
        TapPool pool;
        char taken[IFNAMSIZ];
        assert_int_equal(tap_pool_init(&pool, BR, OWNER, OWNER, 3), 0);
        assert_int_equal(tap_pool_fill(nl, &pool, 2), 2);
        assert_int_equal(tap_pool_fill(nl, &pool, SIZE_MAX), 1);
        assert_int_equal(tap_pool_fill(nl, &pool, SIZE_MAX), 0);
        assert_int_equal(count_links(TAP_PREFIX), 3);
        for (size_t i = 0; i < pool.n; i++)
                assert_tap_ready(pool.names[i], OWNER);

        /* Taking for another owner re-owns the TAP. */
        assert_int_equal(tap_pool_take(nl, &pool, 4242, 4242, taken), 0);
        assert_true(tap_name_is_valid(taken));
        json_t *l = link_json(taken);
        json_t *data = json_object_get(json_object_get(l, "linkinfo"), "info_data");
        assert_owner(data, 4242);
        json_decref(l);
        assert_int_equal(pool.n, 2);

        /* A failing fill keeps what the pool had and leaves no stray TAP. */
        net_fault_inject_at(1);
        assert_int_equal(tap_pool_fill(nl, &pool, SIZE_MAX), -EIO);
        net_fault_inject_at(0);
        assert_int_equal(pool.n, 2);
        assert_int_equal(count_links(TAP_PREFIX), 3);

        assert_int_equal(tap_pool_drain(nl, &pool), 0);
        assert_int_equal(count_links(TAP_PREFIX), 1);
        char other[IFNAMSIZ];
        assert_int_equal(tap_pool_take(nl, &pool, OWNER, OWNER, other), -EAGAIN);
        assert_int_equal(tap_delete(nl, taken), 0);
        assert_int_equal(tap_pool_init(&pool, "eth0", 0, 0, 1), -EINVAL);
        assert_int_equal(tap_pool_init(&pool, BR, 0, 0, TAP_POOL_MAX + 1), -ERANGE);
}

static void test_tap_reconcile(void **state) {
        char *recorded[] = { "bgtc", NULL };
        TapScope scope = { .uid = OWNER, .bridge = BR, .recorded = recorded };
        assert_int_equal(bridge_ensure(nl, "br-fc-o", ip4("172.18.5.1"), 24, NULL), 1);
        assert_int_equal(tap_setup_for_vm(nl, "bgta", BR, OWNER, OWNER), 0);
        assert_int_equal(tap_setup_for_vm(nl, "bgtb", BR, OWNER, OWNER), 0);
        /* Made by "this helper" but on no bridge: in scope through recorded. */
        assert_int_equal(tap_create("bgtc", OWNER, OWNER), 0);
        /* Out of scope: another owner's TAP on the bridge, the owner's TAP on
         * another bridge, an ownerless one, a foreign name, a veth. */
        assert_int_equal(tap_setup_for_vm(nl, "bgtd", BR, 4242, 4242), 0);
        assert_int_equal(tap_setup_for_vm(nl, "bgte", "br-fc-o", OWNER, OWNER), 0);
        assert_int_equal(run(NULL, ip_bin, "tuntap", "add", "dev", "bgtf", "mode", "tap", NULL), 0);
        assert_int_equal(run(NULL, ip_bin, "link", "set", "bgtf", "master", BR, NULL), 0);
        assert_int_equal(run(NULL, ip_bin, "tuntap", "add", "dev", "other0", "mode", "tap", NULL), 0);
        assert_int_equal(run(NULL, ip_bin, "link", "add", "bgtveth", "type", "veth", "peer", "name", "vpeer0", NULL),
                         0);

        _cleanup_strv_free_ char **all = NULL, **mine = NULL;
        assert_int_equal(tap_list(nl, NULL, &all), 0);
        assert_int_equal(strv_length(all), 6);
        assert_int_equal(tap_list(nl, &scope, &mine), 0);
        assert_int_equal(strv_length(mine), 3);
        error_clear();
        assert_int_equal(tap_delete_scoped(nl, &scope, "bgtd"), -EPERM);
        assert_non_null(strstr(error_last_message(), "does not belong to this helper"));
        assert_int_equal(tap_delete_scoped(nl, &scope, "bgte"), -EPERM);
        assert_int_equal(tap_delete_scoped(nl, &scope, "bgtf"), -EPERM);
        assert_int_equal(tap_delete_scoped(nl, &scope, "bgtnone"), 0);

        char *keep[] = { "bgtb", NULL };
        assert_int_equal(tap_reconcile(nl, &scope, keep), 2);
        assert_link_absent("bgta");
        assert_link_absent("bgtc");
        const char *kept[] = { "bgtb", "bgtd", "bgte", "bgtf", "other0", "bgtveth" };
        for (size_t i = 0; i < ELEMENTSOF(kept); i++) {
                json_t *l = link_json(kept[i]);
                assert_non_null(l);
                json_decref(l);
        }
        assert_int_equal(tap_reconcile(nl, &scope, keep), 0);
        assert_int_equal(tap_reconcile(nl, &scope, NULL), 1);
        assert_link_absent("bgtb");
        const char *del[] = { "bgtd", "bgte", "bgtf", "other0", "bgtveth", "br-fc-o" };
        for (size_t i = 0; i < ELEMENTSOF(del); i++)
                assert_int_equal(run(NULL, ip_bin, "link", "del", del[i], NULL), 0);
}

/* All rules of `nft -j list table ip banger` that mention addr. */
static int nft_rules_mentioning(const char *addr) {
        json_t *j = run_json(nft_bin, "-j", "list", "table", "ip", "banger", NULL);
        if (!j)
                return -1;
        json_t *items = json_object_get(j, "nftables"), *it;
        size_t i;
        int n = 0;
        json_array_foreach (items, i, it) {
                json_t *rule = json_object_get(it, "rule");
                if (!rule)
                        continue;
                _cleanup_free_ char *s = json_dumps(rule, JSON_COMPACT);
                if (strstr(s, addr))
                        n++;
        }
        json_decref(j);
        return n;
}

static void test_nat(void **state) {
        /* An uplink with the default route, as the host's would be (a veth
         * pair: this kernel has no dummy driver). */
        assert_int_equal(run(NULL, ip_bin, "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1", NULL),
                         0);
        assert_int_equal(run(NULL, ip_bin, "link", "set", "uplink1", "up", NULL), 0);
        assert_int_equal(run(NULL, ip_bin, "addr", "add", "10.99.0.1/24", "dev", "uplink0", NULL), 0);
        assert_int_equal(run(NULL, ip_bin, "link", "set", "uplink0", "up", NULL), 0);
        assert_int_equal(run(NULL, ip_bin, "route", "add", "default", "via", "10.99.0.254", NULL), 0);
        int def = 0, up = 0;
        assert_int_equal(nl_link_get_index(nl, "uplink0", &up), 0);
        assert_int_equal(nl_route_get_default_ifindex(nl, &def), 0);
        assert_int_equal(def, up);

        assert_int_equal(ip_forward_set(true), 0);
        _cleanup_free_ char *fwd = NULL;
        assert_int_equal(run(&fwd, "cat", "/proc/sys/net/ipv4/ip_forward", NULL), 0);
        assert_string_equal(fwd, "1\n");

        Ipv4Subnet sn;
        assert_int_equal(ipv4_subnet_parse("172.16.0.0/24", &sn), 0);
        assert_int_equal(tap_setup_for_vm(nl, "bgtweb", BR, OWNER, OWNER), 0);
        assert_int_equal(tap_setup_for_vm(nl, "bgtdb", BR, OWNER, OWNER), 0);
        NatEntry two[] = { { ip4("172.16.0.2"), "bgtweb" }, { ip4("172.16.0.10"), "bgtdb" } };
        NatEntry two_rev[] = { two[1], two[0] };

        assert_int_equal(firewall_apply("banger", two, 2, "uplink0", &sn), 0);
        assert_int_equal(nft_rules_mentioning("172.16.0.2\""), 3);
        assert_int_equal(nft_rules_mentioning("172.16.0.10\""), 3);
        _cleanup_free_ char *first = NULL, *rebuilt = NULL, *rendered = NULL, *listed = NULL;
        assert_int_equal(run(&first, nft_bin, "list", "table", "ip", "banger", NULL), 0);
        /* What nft prints back is exactly what we rendered. */
        assert_int_equal(firewall_render("banger", two, 2, "uplink0", &sn, false, &rendered), 0);
        assert_string_equal(first, rendered);
        assert_int_equal(firewall_list("banger", false, &listed), 0);
        assert_string_equal(listed, rendered);

        /* A rebuild (daemon restart, entries in another order) is identical. */
        assert_int_equal(firewall_apply("banger", two_rev, 2, "uplink0", &sn), 0);
        assert_int_equal(run(&rebuilt, nft_bin, "list", "table", "ip", "banger", NULL), 0);
        assert_string_equal(rebuilt, first);

        /* Invalid input changes nothing. */
        NatEntry bad[] = { { ip4("10.99.0.7"), "bgtweb" } };
        assert_int_equal(firewall_apply("banger", bad, 1, "uplink0", &sn), -EINVAL);
        assert_int_equal(nft_rules_mentioning("172.16.0.10\""), 3);

        /* One VM's NAT removed: none of its rules remain. */
        assert_int_equal(firewall_apply("banger", two, 1, "uplink0", &sn), 0);
        assert_int_equal(nft_rules_mentioning("172.16.0.2\""), 3);
        assert_int_equal(nft_rules_mentioning("172.16.0.10\""), 0);
        assert_int_equal(nft_rules_mentioning("bgtdb"), 0);

        /* Both removed: the table is gone. */
        assert_int_equal(firewall_apply("banger", NULL, 0, "uplink0", &sn), 0);
        assert_true(run(NULL, nft_bin, "list", "table", "ip", "banger", NULL) != 0);
        _cleanup_free_ char *none = NULL;
        assert_int_equal(firewall_list("banger", true, &none), -ENOENT);
        assert_int_equal(firewall_delete("banger"), 0);

        assert_int_equal(tap_delete(nl, "bgtweb"), 0);
        assert_int_equal(tap_delete(nl, "bgtdb"), 0);
        assert_int_equal(run(NULL, ip_bin, "link", "del", "uplink0", NULL), 0);
        assert_int_equal(nl_route_get_default_ifindex(nl, &def), -ENETUNREACH);
}

static bool nft_has_chain(const char *table, const char *chain) {
        return run(NULL, nft_bin, "list", "chain", "ip", table, chain, NULL) == 0;
}

/* Two helpers' tables side by side: each apply and delete touches only its
 * own, and ip_forward goes back to what the first one found only when the
 * last banger table goes, whichever helper that is. */
static void test_nat_two_tables(void **state) {
        Ipv4Subnet a, b;
        assert_int_equal(ipv4_subnet_parse("172.16.20.0/24", &a), 0);
        assert_int_equal(ipv4_subnet_parse("172.16.21.0/24", &b), 0);
        NatEntry ea[] = { { ip4("172.16.20.2"), "bgtnata" } }, eb[] = { { ip4("172.16.21.2"), "bgtnatb" } };

        assert_int_equal(ip_forward_set(false), 0);
        assert_int_equal(firewall_apply("banger-a", ea, 1, "uplink0", &a), 0);
        assert_int_equal(ip_forward_get(), 1);
        assert_true(nft_has_chain("banger-a", FIREWALL_FORWARD_MARK));
        assert_int_equal(firewall_apply("banger-b", eb, 1, "uplink0", &b), 0);
        assert_true(nft_has_chain("banger-b", FIREWALL_FORWARD_MARK)); /* passed on */
        assert_int_equal(firewall_delete("banger-a"), 0);
        assert_true(run(NULL, nft_bin, "list", "table", "ip", "banger-a", NULL) != 0);
        assert_true(nft_has_chain("banger-b", "postrouting"));
        assert_int_equal(ip_forward_get(), 1); /* banger-b still forwards */
        assert_int_equal(firewall_apply("banger-a", ea, 1, "uplink0", &a), 0);
        assert_true(nft_has_chain("banger-a", FIREWALL_FORWARD_MARK));
        assert_int_equal(firewall_apply("banger-b", NULL, 0, "uplink0", &b), 0);
        assert_int_equal(ip_forward_get(), 1);
        assert_int_equal(firewall_delete("banger-a"), 0);
        assert_int_equal(ip_forward_get(), 0); /* as found */

        /* Found on: left on, and no mark. */
        assert_int_equal(ip_forward_set(true), 0);
        assert_int_equal(firewall_apply("banger-a", ea, 1, "uplink0", &a), 0);
        assert_false(nft_has_chain("banger-a", FIREWALL_FORWARD_MARK));
        assert_int_equal(firewall_delete("banger-a"), 0);
        assert_int_equal(ip_forward_get(), 1);
        assert_int_equal(firewall_delete("filter"), -EINVAL);
}

static void test_addr_flush(void **state) {
        int idx;
        assert_int_equal(bridge_ensure(nl, "br-fc-a", ip4("172.19.0.1"), 24, &idx), 1);
        assert_int_equal(nl_addr_add_ipv4(nl, idx, ip4("172.19.1.1"), 24), 0);
        assert_int_equal(nl_addr_add_ipv4(nl, idx, ip4("172.19.1.1"), 24), -EEXIST);
        assert_int_equal(nl_addr_has_ipv4(nl, idx, ip4("172.19.1.1"), 24), 1);
        assert_int_equal(nl_addr_flush_ipv4(nl, idx), 0);
        json_t *addrs = run_json(ip_bin, "-j", "-4", "addr", "show", "dev", "br-fc-a", NULL);
        assert_int_equal(json_array_size(json_object_get(json_array_get(addrs, 0), "addr_info")), 0);
        json_decref(addrs);
        assert_int_equal(nl_addr_has_ipv4(nl, idx, ip4("172.19.0.1"), 24), 0);
        /* ensure puts the address back on the existing bridge */
        assert_int_equal(bridge_ensure(nl, "br-fc-a", ip4("172.19.0.1"), 24, NULL), 0);
        assert_int_equal(nl_addr_has_ipv4(nl, idx, ip4("172.19.0.1"), 24), 1);
        assert_int_equal(bridge_remove(nl, "br-fc-a"), 0);
        assert_int_equal(nl_link_get_index(nl, "br-fc-a", &idx), -ENODEV);
}

static int skip_test(const char *why) {
        printf("SKIP: %s\n", why);
        return 77;
}

int main(void) {
        if (geteuid() != 0)
                return skip_test("needs root to create a network namespace");
        if (access("/dev/net/tun", R_OK | W_OK) < 0)
                return skip_test("/dev/net/tun is missing");
        ip_bin = find_executable("ip");
        nft_bin = find_executable("nft");
        if (!ip_bin && access("/usr/sbin/ip", X_OK) == 0)
                ip_bin = strdup("/usr/sbin/ip");
        if (!nft_bin && access("/usr/sbin/nft", X_OK) == 0)
                nft_bin = strdup("/usr/sbin/nft");
        if (!ip_bin || !nft_bin)
                return skip_test("ip (iproute2) or nft (nftables) is not installed");
        /* From here on nothing this process does is visible on the host. */
        if (unshare(CLONE_NEWNET) < 0)
                return skip_test("unshare(CLONE_NEWNET) is not permitted here");
        if (netlink_open(&nl) < 0)
                return skip_test("cannot open rtnetlink");
        if (run(NULL, ip_bin, "link", "set", "lo", "up", NULL) != 0)
                return skip_test("ip does not work in the new namespace");

        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bridge_idempotent),
                cmocka_unit_test(test_bridge_rollback),
                cmocka_unit_test(test_tap_for_vm),
                cmocka_unit_test(test_tap_rollback),
                cmocka_unit_test(test_tap_pool),
                cmocka_unit_test(test_tap_reconcile),
                cmocka_unit_test(test_nat),
                cmocka_unit_test(test_nat_two_tables),
                cmocka_unit_test(test_addr_flush),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        nl = netlink_free(nl);
        free(ip_bin);
        free(nft_bin);
        return r;
}
