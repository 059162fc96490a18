/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "dns.h"
#include "log.h"
#include "string-util.h"

#define DNS_FLAG_QR 0x8000u
#define DNS_FLAG_AA 0x0400u
#define DNS_FLAG_TC 0x0200u
#define DNS_FLAG_RD 0x0100u
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xfu)
#define DNS_MAX_WIRE_NAME 255
#define DNS_MAX_LABEL 63

static uint16_t get_u16(const uint8_t *p) {
        return (uint16_t) ((p[0] << 8) | p[1]);
}

static void put_u16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

/* Letters, digits, '-' and '_': anything else could not be a VM name and
 * would make the dotted text ambiguous ('.') or unprintable. */
static bool label_char_ok(uint8_t c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Decode the uncompressed name at buf[off]; *ret_end is the offset past it. */
static int parse_name(const uint8_t *buf, size_t len, size_t off, char ret[static DNS_MAX_NAME + 1],
                      size_t *ret_end) {
        size_t wire = 0, out = 0;
        for (;;) {
                if (off >= len)
                        return -EBADMSG;
                uint8_t l = buf[off++];
                wire++;
                if (l == 0)
                        break;
                if (l > DNS_MAX_LABEL) /* 0xc0 compression pointers and 0x40/0x80 label types */
                        return -EBADMSG;
                wire += l;
                if (wire + 1 > DNS_MAX_WIRE_NAME || l > len - off)
                        return -EBADMSG;
                if (out > 0)
                        ret[out++] = '.';
                for (uint8_t i = 0; i < l; i++) {
                        uint8_t c = buf[off + i];
                        if (!label_char_ok(c))
                                return -EBADMSG;
                        ret[out++] = (char) (c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
                }
                off += l;
        }
        ret[out] = 0;
        *ret_end = off;
        return 0;
}

int dns_parse_query(const uint8_t *buf, size_t len, DnsQuestion *ret) {
        if (!buf || len < DNS_HEADER_SIZE)
                return -EBADMSG;
        DnsQuestion q = { .id = get_u16(buf), .flags = get_u16(buf + 2) };
        if (q.flags & DNS_FLAG_QR)
                return -EBADMSG;
        /* Additional records (EDNS OPT) are allowed and ignored. */
        if (get_u16(buf + 4) != 1 || get_u16(buf + 6) != 0 || get_u16(buf + 8) != 0)
                return -EBADMSG;
        size_t end;
        int r = parse_name(buf, len, DNS_HEADER_SIZE, q.name, &end);
        if (r < 0)
                return r;
        if (len - end < 4)
                return -EBADMSG;
        q.qtype = get_u16(buf + end);
        q.qclass = get_u16(buf + end + 2);
        q.wire_len = end + 4 - DNS_HEADER_SIZE;
        *ret = q;
        return 0;
}

int dns_build_reply(const uint8_t *query, size_t query_len, const DnsQuestion *q, int rcode,
                    const struct in_addr *addr, uint8_t *out, size_t out_size, size_t *ret_len) {
        if (!query || query_len < DNS_HEADER_SIZE || rcode < 0 || rcode > 15)
                return -EINVAL;
        if (q && q->wire_len > query_len - DNS_HEADER_SIZE)
                return -EINVAL;
        if (!q && addr)
                return -EINVAL;
        size_t need = DNS_HEADER_SIZE + (q ? q->wire_len : 0) + (addr ? 16 : 0);
        if (need > out_size)
                return -ENOBUFS;

        uint16_t qflags = get_u16(query + 2);
        uint16_t flags = DNS_FLAG_QR | (qflags & 0x7800u) /* opcode */ | (qflags & DNS_FLAG_RD) | (uint16_t) rcode;
        if (rcode != DNS_RCODE_FORMERR && rcode != DNS_RCODE_NOTIMP)
                flags |= DNS_FLAG_AA;
        memset(out, 0, DNS_HEADER_SIZE);
        memcpy(out, query, 2); /* id */
        put_u16(out + 2, flags);
        put_u16(out + 4, q ? 1 : 0);
        put_u16(out + 6, addr ? 1 : 0);
        size_t off = DNS_HEADER_SIZE;
        if (q) {
                memcpy(out + off, query + DNS_HEADER_SIZE, q->wire_len);
                off += q->wire_len;
        }
        if (addr) {
                put_u16(out + off, 0xc000 | DNS_HEADER_SIZE); /* pointer to the question's name */
                put_u16(out + off + 2, DNS_TYPE_A);
                put_u16(out + off + 4, DNS_CLASS_IN);
                put_u16(out + off + 6, 0);
                put_u16(out + off + 8, DNS_TTL);
                put_u16(out + off + 10, 4);
                memcpy(out + off + 12, &addr->s_addr, 4);
                off += 16;
        }
        *ret_len = off;
        return 0;
}

/* The rcode for a parsed question; *ret_found tells whether addr is set. */
static int dns_resolve(const DnsQuestion *q, DnsLookupFn lookup, void *userdata, struct in_addr *addr,
                       bool *ret_found) {
        *ret_found = false;
        if (q->qclass != DNS_CLASS_IN && q->qclass != DNS_TYPE_ANY)
                return DNS_RCODE_NOTIMP;
        if (streq(q->name, DNS_ZONE))
                return DNS_RCODE_NOERROR; /* the zone apex exists but has no A record */
        if (!endswith(q->name, "." DNS_ZONE))
                return DNS_RCODE_REFUSED; /* not our zone: we are no recursive resolver */

        char vm[DNS_MAX_NAME + 1];
        size_t l = strlen(q->name) - strlen("." DNS_ZONE);
        memcpy(vm, q->name, l);
        vm[l] = 0;
        if (!name_is_valid(vm))
                return DNS_RCODE_NXDOMAIN; /* sub-names and impossible VM names */
        int r = lookup ? lookup(vm, addr, userdata) : -ENOENT;
        if (r == -ENOENT)
                return DNS_RCODE_NXDOMAIN;
        if (r < 0) {
                log_debug_errno(r, "dns: lookup of %s failed: %m", vm);
                return DNS_RCODE_SERVFAIL;
        }
        *ret_found = q->qtype == DNS_TYPE_A || q->qtype == DNS_TYPE_ANY;
        return DNS_RCODE_NOERROR;
}

int dns_server_handle_packet(const uint8_t *in, size_t in_len, DnsLookupFn lookup, void *userdata, uint8_t *out,
                             size_t out_size, size_t *ret_len) {
        if (!in || in_len < DNS_HEADER_SIZE || !out || out_size < DNS_MAX_UDP)
                return -EBADMSG;
        uint16_t flags = get_u16(in + 2);
        if (flags & DNS_FLAG_QR)
                return -EBADMSG; /* never answer a response: no reflection loops */
        if (DNS_OPCODE(flags) != 0)
                return dns_build_reply(in, in_len, NULL, DNS_RCODE_NOTIMP, NULL, out, out_size, ret_len);

        DnsQuestion q;
        if (dns_parse_query(in, in_len, &q) < 0)
                return dns_build_reply(in, in_len, NULL, DNS_RCODE_FORMERR, NULL, out, out_size, ret_len);
        struct in_addr addr = {};
        bool found;
        int rcode = dns_resolve(&q, lookup, userdata, &addr, &found);
        return dns_build_reply(in, in_len, &q, rcode, found ? &addr : NULL, out, out_size, ret_len);
}
