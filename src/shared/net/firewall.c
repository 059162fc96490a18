/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "firewall.h"
#include "fs-util.h"
#include "log.h"
#include "netlink.h"
#include "string-util.h"
#include "bridge.h"
#include "tap.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nft_ctx *, nft_ctx_free);

int firewall_table_name(const char *bridge, char ret[static FIREWALL_TABLE_MAX]) {
        if (!bridge_name_is_valid(bridge))
                return error_setf(-EINVAL, "invalid bridge name '%s'", bridge ? bridge : "");
        const char *suffix = startswith(bridge, BRIDGE_DEFAULT_NAME "-");
        snprintf(ret, FIREWALL_TABLE_MAX, FIREWALL_TABLE_PREFIX "%s%s", suffix ? "-" : "", suffix ? suffix : "");
        return 0;
}

bool firewall_table_is_banger(const char *name) {
        if (!name)
                return false;
        if (streq(name, FIREWALL_TABLE_PREFIX))
                return true;
        const char *suffix = startswith(name, FIREWALL_TABLE_PREFIX "-");
        return suffix && *suffix && strspn(suffix, "abcdefghijklmnopqrstuvwxyz0123456789") == strlen(suffix);
}

static int nat_entry_compare(const void *a, const void *b) {
        const NatEntry *x = a, *y = b;
        uint32_t ax = ntohl(x->guest.s_addr), ay = ntohl(y->guest.s_addr);
        if (ax != ay)
                return ax < ay ? -1 : 1;
        return strcmp(x->tap, y->tap);
}

static int firewall_validate(const NatEntry *sorted, size_t n, const char *out_if, const Ipv4Subnet *subnet) {
        char buf[IPV4_STRLEN];
        if (!ifname_is_valid(out_if))
                return error_setf(-EINVAL, "invalid outgoing interface name '%s'", out_if ? out_if : "");
        if (tap_name_is_valid(out_if))
                return error_setf(-EINVAL, "outgoing interface %s is a banger TAP", out_if);
        for (size_t i = 0; i < n; i++) {
                if (!tap_name_is_valid(sorted[i].tap))
                        return error_setf(-EINVAL, "invalid TAP name '%s'", sorted[i].tap ? sorted[i].tap : "");
                if (!ipv4_subnet_contains_host(subnet, sorted[i].guest))
                        return error_setf(-EINVAL, "guest address %s is outside the VM subnet",
                                          ipv4_format(sorted[i].guest, buf));
                if (i > 0 && sorted[i].guest.s_addr == sorted[i - 1].guest.s_addr)
                        return error_setf(-EINVAL, "guest address %s is listed twice",
                                          ipv4_format(sorted[i].guest, buf));
                for (size_t j = 0; j < i; j++)
                        if (streq(sorted[i].tap, sorted[j].tap))
                                return error_setf(-EINVAL, "TAP %s is listed twice", sorted[i].tap);
        }
        return 0;
}

/* The bridge whose helper owns table: firewall_table_name() backwards. */
static void table_bridge(const char *table, char ret[static IFNAMSIZ]) {
        const char *suffix = startswith(table, FIREWALL_TABLE_PREFIX "-");
        snprintf(ret, IFNAMSIZ, BRIDGE_DEFAULT_NAME "%s%s", suffix ? "-" : "", suffix ? suffix : "");
}

/* Routed traffic from a VM arrives on the bridge (its TAP is a port of it),
 * so the forward chain matches the bridge and the VM's address. Only NAT VMs
 * go out, to the uplink only; from outside only their replies come back;
 * everything else from or to the bridge is dropped, whatever else turned
 * forwarding on. VMs reach each other on the bridge (bridged, or routed
 * back into it) and the host (input, not forward). */
static void render_forward(FILE *f, const char *br, const NatEntry *e, size_t n, const char *out_if) {
        char ip[IPV4_STRLEN];
        fputs("\tchain forward {\n"
              "\t\ttype filter hook forward priority filter; policy accept;\n",
              f);
        fprintf(f, "\t\tiifname \"%s\" oifname \"%s\" accept\n", br, br);
        for (size_t i = 0; i < n; i++) {
                ipv4_format(e[i].guest, ip);
                fprintf(f, "\t\tiifname \"%s\" ip saddr %s oifname \"%s\" accept comment \"%s\"\n", br, ip, out_if,
                        e[i].tap);
                fprintf(f,
                        "\t\tiifname \"%s\" oifname \"%s\" ip daddr %s ct state established,related accept comment "
                        "\"%s\"\n",
                        out_if, br, ip, e[i].tap);
        }
        fprintf(f, "\t\tiifname \"%s\" drop\n\t\toifname \"%s\" drop\n\t}\n", br, br);
}

static void render_rules(FILE *f, const char *table, const NatEntry *e, size_t n, const char *out_if,
                         bool forward_was_off) {
        char ip[IPV4_STRLEN], br[IFNAMSIZ];
        table_bridge(table, br);
        fprintf(f, "table ip %s {\n", table);
        fputs("\tchain postrouting {\n"
              "\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
              f);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "\t\tip saddr %s oifname \"%s\" masquerade\n", ipv4_format(e[i].guest, ip), out_if);
        fputs("\t}\n\n", f);
        render_forward(f, br, e, n, out_if);
        if (forward_was_off)
                fputs("\n\tchain " FIREWALL_FORWARD_MARK " {\n\t}\n", f);
        fputs("}\n", f);
}

int firewall_render(const char *table, const NatEntry *entries, size_t n, const char *out_if, const Ipv4Subnet *subnet,
                    bool forward_was_off, char **ret) {
        if (!firewall_table_is_banger(table))
                return error_setf(-EINVAL, "invalid nft table name '%s'", table ? table : "");
        if (n > FIREWALL_MAX_ENTRIES)
                return error_setf(-E2BIG, "too many NAT entries (%zu)", n);
        _cleanup_free_ NatEntry *sorted = calloc(n ? n : 1, sizeof(NatEntry));
        if (!sorted)
                return -ENOMEM;
        if (n > 0)
                memcpy(sorted, entries, n * sizeof(NatEntry));
        for (size_t i = 0; i < n; i++)
                if (!sorted[i].tap)
                        return error_setf(-EINVAL, "NAT entry without a TAP");
        qsort(sorted, n, sizeof(NatEntry), nat_entry_compare);
        int r = firewall_validate(sorted, n, out_if, subnet);
        if (r < 0)
                return r;

        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        render_rules(f, table, sorted, n, out_if, forward_was_off);
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(text);
        return 0;
}

/* Run nft commands; on failure record nft's own message. */
static int nft_run(const char *cmds, bool json, char **ret_output) {
        _cleanup_(nft_ctx_freep) struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!ctx)
                return -ENOMEM;
        if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0)
                return -ENOMEM;
        if (json)
                nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
        if (nft_run_cmd_from_buffer(ctx, cmds) != 0) {
                const char *err = nft_ctx_get_error_buffer(ctx);
                int r = err && strstr(err, "No such file or directory") ? -ENOENT : -EIO;
                log_debug("nft failed: %s", err ? err : "(no message)");
                return error_setf(r, "nftables: %s", err && *err ? err : "command failed");
        }
        if (ret_output) {
                const char *out = nft_ctx_get_output_buffer(ctx);
                char *copy = strdup(out ? out : "");
                if (!copy)
                        return -ENOMEM;
                *ret_output = copy;
        }
        return 0;
}

/* What the banger tables in this namespace say, from `nft -j list chains ip`
 * (every banger table has chains, so it shows there). */
typedef struct FirewallScan {
        bool own;         /* table exists */
        bool own_mark;    /* ... and carries FIREWALL_FORWARD_MARK */
        bool others;      /* another banger table exists */
        bool others_mark; /* ... and one of them carries the mark */
} FirewallScan;

static void scan_chain(json_t *chain, const char *table, FirewallScan *s) {
        const char *t = json_string_value(json_object_get(chain, "table"));
        const char *name = json_string_value(json_object_get(chain, "name"));
        if (!streq_ptr(json_string_value(json_object_get(chain, "family")), "ip") || !firewall_table_is_banger(t) ||
            !name)
                return;
        bool mark = streq(name, FIREWALL_FORWARD_MARK);
        if (streq(t, table)) {
                s->own = true;
                s->own_mark |= mark;
        } else {
                s->others = true;
                s->others_mark |= mark;
        }
}

static int firewall_scan(const char *table, FirewallScan *ret) {
        _cleanup_free_ char *out = NULL;
        int r = nft_run("list chains ip\n", true, &out);
        if (r < 0)
                return r;
        json_error_t e;
        json_t *j = json_loads(out, 0, &e);
        if (!j)
                return error_setf(-EBADMSG, "nftables: unreadable chain list: %s", e.text);
        FirewallScan s = {};
        json_t *item;
        size_t i;
        json_array_foreach (json_object_get(j, "nftables"), i, item)
                scan_chain(json_object_get(item, "chain"), table, &s);
        json_decref(j);
        *ret = s;
        return 0;
}

/* "add" is a no-op when the table exists, so the "delete" that follows never
 * fails on a missing table; all of it is one transaction. */
static int table_reset_cmds(const char *table, const char *rules, char **ret) {
        return asprintf(ret, "add table ip %s\ndelete table ip %s\n%s", table, table, rules ? rules : "") < 0 ? -ENOMEM
                                                                                                              : 0;
}

int firewall_apply(const char *table, const NatEntry *entries, size_t n, const char *out_if, const Ipv4Subnet *subnet) {
        if (n == 0)
                return firewall_delete(table);
        FirewallScan s;
        int r = firewall_scan(table, &s);
        if (r < 0)
                return r;
        /* Off before banger: as this table recorded it, else as another banger
         * table did, else as ip_forward is now (no banger table: nobody of
         * ours turned it on). */
        bool was_off;
        if (s.own)
                was_off = s.own_mark;
        else if (s.others)
                was_off = s.others_mark;
        else {
                int on = ip_forward_get();
                if (on < 0)
                        return on;
                was_off = on == 0;
        }
        _cleanup_free_ char *rules = NULL, *cmds = NULL;
        r = firewall_render(table, entries, n, out_if, subnet, was_off, &rules);
        if (r >= 0)
                r = table_reset_cmds(table, rules, &cmds);
        if (r >= 0)
                r = nft_run(cmds, false, NULL);
        if (r < 0)
                return r;
        log_debug("nft table %s applied with %zu NAT entries", table, n);
        return ip_forward_set(true);
}

int firewall_delete(const char *table) {
        if (!firewall_table_is_banger(table))
                return error_setf(-EINVAL, "invalid nft table name '%s'", table ? table : "");
        FirewallScan s;
        _cleanup_free_ char *cmds = NULL;
        int r = firewall_scan(table, &s);
        if (r < 0)
                return r;
        if (!s.own)
                return 0;
        if ((r = table_reset_cmds(table, NULL, &cmds)) < 0 || (r = nft_run(cmds, false, NULL)) < 0)
                return r;
        /* Another helper's table still needs forwarding; it carries the mark
         * on, and the last one to go puts ip_forward back. */
        if (s.own_mark && !s.others) {
                log_debug("last banger table gone: turning ip_forward off again, as it was found");
                return ip_forward_set(false);
        }
        return 0;
}

int firewall_list(const char *table, bool json, char **ret) {
        if (!firewall_table_is_banger(table))
                return error_setf(-EINVAL, "invalid nft table name '%s'", table ? table : "");
        _cleanup_free_ char *cmd = NULL;
        if (asprintf(&cmd, "list table ip %s\n", table) < 0)
                return -ENOMEM;
        return nft_run(cmd, json, ret);
}

static int open_ip_forward(int flags) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, "/proc/sys/net/ipv4");
        if (dfd < 0)
                return error_setf(dfd, "opening /proc/sys/net/ipv4: %s", strerror(-dfd));
        int fd = openat(dfd, "ip_forward", flags | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                int r = negative_errno();
                return error_setf(r, "opening net.ipv4.ip_forward: %s", strerror(-r));
        }
        return fd;
}

int ip_forward_get(void) {
        _cleanup_close_ int fd = open_ip_forward(O_RDONLY);
        if (fd < 0)
                return fd;
        char c = 0;
        ssize_t n = read(fd, &c, 1);
        if (n < 0) {
                int r = negative_errno();
                return error_setf(r, "reading net.ipv4.ip_forward: %s", strerror(-r));
        }
        return c == '0' ? 0 : 1;
}

int ip_forward_set(bool on) {
        _cleanup_close_ int fd = open_ip_forward(O_WRONLY);
        if (fd < 0)
                return fd;
        int r = loop_write(fd, on ? "1\n" : "0\n", 2);
        if (r < 0)
                return error_setf(r, "setting net.ipv4.ip_forward to %d: %s", on, strerror(-r));
        return 0;
}
