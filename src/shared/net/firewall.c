/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include "tap.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nft_ctx *, nft_ctx_free);

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

static void render_rules(FILE *f, const NatEntry *e, size_t n, const char *out_if) {
        char ip[IPV4_STRLEN];
        fputs("table ip " FIREWALL_TABLE " {\n"
              "\tchain postrouting {\n"
              "\t\ttype nat hook postrouting priority srcnat; policy accept;\n", f);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "\t\tip saddr %s oifname \"%s\" masquerade\n", ipv4_format(e[i].guest, ip), out_if);
        fputs("\t}\n\n"
              "\tchain forward {\n"
              "\t\ttype filter hook forward priority filter; policy accept;\n", f);
        for (size_t i = 0; i < n; i++) {
                ipv4_format(e[i].guest, ip);
                fprintf(f, "\t\tiifname \"%s\" ip saddr %s oifname \"%s\" accept\n", e[i].tap, ip, out_if);
                fprintf(f, "\t\tiifname \"%s\" oifname \"%s\" ip daddr %s ct state established,related accept\n",
                        out_if, e[i].tap, ip);
        }
        fputs("\t}\n}\n", f);
}

int firewall_render(const NatEntry *entries, size_t n, const char *out_if, const Ipv4Subnet *subnet, char **ret) {
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
        render_rules(f, sorted, n, out_if);
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

/* "add" is a no-op when the table exists, so the "delete" that follows never
 * fails on a missing table; all of it is one transaction. */
#define TABLE_RESET "add table ip " FIREWALL_TABLE "\ndelete table ip " FIREWALL_TABLE "\n"

int firewall_apply(const NatEntry *entries, size_t n, const char *out_if, const Ipv4Subnet *subnet) {
        if (n == 0)
                return firewall_delete();
        _cleanup_free_ char *rules = NULL, *cmds = NULL;
        int r = firewall_render(entries, n, out_if, subnet, &rules);
        if (r < 0)
                return r;
        if (asprintf(&cmds, "%s%s", TABLE_RESET, rules) < 0)
                return -ENOMEM;
        r = nft_run(cmds, false, NULL);
        if (r >= 0)
                log_debug("nft table %s applied with %zu NAT entries", FIREWALL_TABLE, n);
        return r;
}

int firewall_delete(void) {
        return nft_run(TABLE_RESET, false, NULL);
}

int firewall_list(bool json, char **ret) {
        return nft_run("list table ip " FIREWALL_TABLE "\n", json, ret);
}

int ip_forward_enable(void) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, "/proc/sys/net/ipv4");
        if (dfd < 0)
                return error_setf(dfd, "opening /proc/sys/net/ipv4: %s", strerror(-dfd));
        _cleanup_close_ int fd = openat(dfd, "ip_forward", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                int r = negative_errno();
                return error_setf(r, "opening ip_forward: %s", strerror(-r));
        }
        int r = loop_write(fd, "1\n", 2);
        if (r < 0)
                return error_setf(r, "enabling ip_forward: %s", strerror(-r));
        return 0;
}
