/* SPDX-License-Identifier: MIT */
#pragma once

/* The DNS messages of banger's tiny authoritative server for the "vm" zone
 * (<name>.vm -> the VM's IPv4). Pure message code: the daemon owns the UDP
 * socket and calls dns_server_handle_packet() for every datagram. Parsing
 * is strict: one question, no compression pointers in it (a query never
 * needs them), names of at most 255 bytes on the wire. */

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_ZONE "vm"
#define DNS_HEADER_SIZE 12
#define DNS_MAX_NAME 253 /* dotted text, no trailing dot */
#define DNS_MAX_UDP 512  /* replies never exceed this */
#define DNS_TTL 5        /* short: a name moves to another VM on recreate */

enum {
        DNS_TYPE_A = 1,
        DNS_TYPE_ANY = 255,
        DNS_CLASS_IN = 1,
};

enum {
        DNS_RCODE_NOERROR = 0,
        DNS_RCODE_FORMERR = 1,
        DNS_RCODE_SERVFAIL = 2,
        DNS_RCODE_NXDOMAIN = 3,
        DNS_RCODE_NOTIMP = 4,
        DNS_RCODE_REFUSED = 5,
};

typedef struct DnsQuestion {
        uint16_t id;
        uint16_t flags;              /* the query's header flags */
        char name[DNS_MAX_NAME + 1]; /* lower-case, dotted, no trailing dot; "" is the root */
        uint16_t qtype;
        uint16_t qclass;
        size_t wire_len; /* bytes of the question section, echoed verbatim in the reply */
} DnsQuestion;

/* Parse a query. -EBADMSG for anything malformed (short header, QR set,
 * not exactly one question, answer/authority records, bad labels). */
int dns_parse_query(const uint8_t *buf, size_t len, DnsQuestion *ret);

/* Build a reply for a parsed query (q from dns_parse_query over the same
 * query bytes): AA set, RD copied, the question echoed with its original
 * letter case, one A record when addr is non-NULL. With q == NULL only the
 * header is sent back (FORMERR, NOTIMP for a query we could not parse). */
int dns_build_reply(const uint8_t *query, size_t query_len, const DnsQuestion *q, int rcode,
                    const struct in_addr *addr, uint8_t *out, size_t out_size, size_t *ret_len);

/* name is the VM name (the label before ".vm", already validated). Return
 * 0 and the address, -ENOENT for no such VM, other -errno for SERVFAIL. */
typedef int (*DnsLookupFn)(const char *name, struct in_addr *ret, void *userdata);

/* Answer one datagram: A for a live <name>.vm, NXDOMAIN for unknown names
 * in the zone, an empty NOERROR for other types, REFUSED outside the zone,
 * NOTIMP for other opcodes/classes, FORMERR for malformed queries. Returns 0
 * with the reply in out (out_size >= DNS_MAX_UDP), or -EBADMSG when the
 * datagram gets no reply at all (too short, or itself a response). */
int dns_server_handle_packet(const uint8_t *in, size_t in_len, DnsLookupFn lookup, void *userdata, uint8_t *out,
                             size_t out_size, size_t *ret_len);
