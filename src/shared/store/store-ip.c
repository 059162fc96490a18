/* SPDX-License-Identifier: MIT */
/* Guest IPv4 allocation: the lowest free host address of the bridge's
 * subnet, recorded on the VM row (vms.ip is UNIQUE). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ipv4-subnet.h"
#include "store-internal.h"
#include "string-util.h"

typedef struct Subnet {
        uint32_t network;   /* host order */
        uint32_t broadcast; /* host order */
} Subnet;

static int addr_parse(const char *s, uint32_t *ret) {
        struct in_addr a;
        int r = ipv4_parse(s, &a);
        if (r < 0)
                return r;
        *ret = ntohl(a.s_addr);
        return 0;
}

static void addr_format(uint32_t addr, char buf[static IPV4_STRLEN]) {
        (void) ipv4_format((struct in_addr){ .s_addr = htonl(addr) }, buf);
}

static int subnet_parse(const char *cidr, Subnet *ret) {
        Ipv4Subnet sn;
        if (ipv4_subnet_parse(cidr, &sn) < 0)
                return error_setf(-EINVAL, "invalid guest subnet \"%s\": expected a network address and a prefix "
                                  "of /1 to /30, like 172.16.0.0/24", cidr ? cidr : "");
        uint32_t mask = ~UINT32_C(0) << (32 - sn.prefixlen);
        uint32_t net = ntohl(sn.network.s_addr);
        *ret = (Subnet){ .network = net, .broadcast = net | ~mask };
        return 0;
}

static bool subnet_contains(const Subnet *n, uint32_t a) {
        return a >= n->network && a <= n->broadcast;
}

static bool subnet_is_host(const Subnet *n, uint32_t a, uint32_t reserved) {
        return a > n->network && a < n->broadcast && a != reserved;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

/* Every address in the subnet already held by some VM, sorted. */
static int used_addresses(Store *s, const Subnet *n, uint32_t **ret, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint32_t *a = NULL;
        size_t count = 0, allocated = 0;
        int r = store_prepare(s, "SELECT ip FROM vms WHERE ip IS NOT NULL", &st), rc;
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                uint32_t ip;
                if (addr_parse((const char *) sqlite3_column_text(st, 0), &ip) < 0 || !subnet_contains(n, ip))
                        continue;
                if (count == allocated) {
                        size_t m = allocated ? allocated * 2 : 64;
                        uint32_t *b = reallocarray(a, m, sizeof(uint32_t));
                        if (!b)
                                return -ENOMEM;
                        a = b;
                        allocated = m;
                }
                a[count++] = ip;
        }
        if (rc != SQLITE_DONE)
                return store_error(s, rc, "reading allocated addresses");
        if (count > 0)
                qsort(a, count, sizeof(uint32_t), cmp_u32);
        *ret = TAKE_PTR(a);
        *ret_n = count;
        return 0;
}

static int lowest_free(Store *s, const Subnet *n, uint32_t reserved, const char *cidr, uint32_t *ret) {
        _cleanup_free_ uint32_t *used = NULL;
        size_t n_used = 0, i = 0;
        int r = used_addresses(s, n, &used, &n_used);
        if (r < 0)
                return r;
        for (uint32_t a = n->network + 1; a < n->broadcast; a++) {
                while (i < n_used && used[i] < a)
                        i++;
                if (i < n_used && used[i] == a)
                        continue;
                if (a == reserved)
                        continue;
                *ret = a;
                return 0;
        }
        return error_setf(-ENOSPC, "no free guest address left in %s (%zu in use): delete a VM or use a larger subnet",
                          cidr, n_used);
}

static int vm_ip_get(Store *s, const char *vm_id, char **ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char what[96];
        snprintf(what, sizeof(what), "VM %s", vm_id);
        int r = store_prepare(s, "SELECT ip FROM vms WHERE id = ?1", &st);
        if (r >= 0)
                r = store_bind_text(s, st, 1, vm_id);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return error_setf(-ENOENT, "%s not found", what);
        if (rc != SQLITE_ROW)
                return store_error(s, rc, what);
        return store_column_strdup(st, 0, ret);
}

static int vm_ip_set(Store *s, const char *vm_id, const char *ip) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char what[96];
        int r = store_prepare(s, "UPDATE vms SET ip = ?2, updated_at = ?3 WHERE id = ?1", &st);
        if (r >= 0)
                r = store_bind_text(s, st, 1, vm_id);
        if (r >= 0)
                r = store_bind_text(s, st, 2, ip);
        if (r >= 0)
                r = store_bind_int64(s, st, 3, (int64_t) now_realtime());
        if (r >= 0)
                r = store_step_done(s, st, "recording guest address");
        if (r == -EEXIST) /* the UNIQUE guard: only reachable if the transaction logic is wrong */
                return error_setf(r, "guest address %s is already assigned to another VM", ip ? ip : "");
        if (r < 0)
                return r;
        snprintf(what, sizeof(what), "VM %s", vm_id);
        return store_check_changed(s, what);
}

/* The body of the allocation transaction. */
static int ip_allocate_locked(Store *s, const char *vm_id, const Subnet *n, uint32_t reserved, const char *cidr,
                              char **ret_ip) {
        _cleanup_free_ char *current = NULL;
        char buf[IPV4_STRLEN];
        uint32_t a = 0;

        int r = vm_ip_get(s, vm_id, &current);
        if (r < 0)
                return r;
        if (current && addr_parse(current, &a) >= 0 && subnet_is_host(n, a, reserved)) {
                *ret_ip = TAKE_PTR(current);
                return 0;
        }
        /* No address yet, or one from a subnet the host no longer uses. */
        r = lowest_free(s, n, reserved, cidr, &a);
        if (r < 0)
                return r;
        addr_format(a, buf);
        r = vm_ip_set(s, vm_id, buf);
        if (r < 0)
                return r;
        char *ip = strdup(buf);
        if (!ip)
                return -ENOMEM;
        *ret_ip = ip;
        return 0;
}

int store_ip_allocate(Store *s, const char *vm_id, const char *cidr, const char *reserved_ip, char **ret_ip) {
        uint32_t reserved = 0;
        char *ip = NULL;
        Subnet n = {};

        int r = store_check_id(vm_id, "VM");
        if (r < 0)
                return r;
        r = subnet_parse(cidr, &n);
        if (r < 0)
                return r;
        if (reserved_ip && (addr_parse(reserved_ip, &reserved) < 0 || !subnet_contains(&n, reserved)))
                return error_setf(-EINVAL, "reserved address \"%s\" is not an address inside %s", reserved_ip, cidr);

        r = store_begin_immediate(s);
        if (r < 0)
                return r;
        r = ip_allocate_locked(s, vm_id, &n, reserved, cidr, &ip);
        if (r >= 0)
                r = store_commit(s);
        if (r < 0) {
                store_rollback(s);
                free(ip);
                return r;
        }
        *ret_ip = ip;
        return 0;
}

int store_ip_release(Store *s, const char *vm_id) {
        int r = store_check_id(vm_id, "VM");
        if (r < 0)
                return r;
        return vm_ip_set(s, vm_id, NULL);
}
