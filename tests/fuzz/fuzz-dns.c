/* SPDX-License-Identifier: MIT */
/* Fuzz the DNS responder exactly as the daemon calls it: one datagram in,
 * at most one reply out. Every reply must fit the 512-byte UDP limit, keep
 * the query id, be a response, and (when it carries a question) parse back
 * as the same question. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lookup(const char *name, struct in_addr *ret, void *userdata) {
        if (strcmp(name, "web") == 0) {
                ret->s_addr = htonl(0xac100002);
                return 0;
        }
        return name[0] == 'x' ? -EIO : -ENOENT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t out[DNS_MAX_UDP];
        size_t len = 0;
        DnsQuestion q;
        int parsed = dns_parse_query(data, size, &q);
        if (parsed == 0 && strlen(q.name) > DNS_MAX_NAME)
                abort();

        if (dns_server_handle_packet(data, size, lookup, NULL, out, sizeof(out), &len) < 0)
                return 0;
        if (len < DNS_HEADER_SIZE || len > sizeof(out))
                abort();
        if (memcmp(out, data, 2) != 0 || !(out[2] & 0x80))
                abort();
        if (out[5] == 1) {
                /* Echoed question: same bytes as in the query, parses the same. */
                if (parsed != 0 || memcmp(out + DNS_HEADER_SIZE, data + DNS_HEADER_SIZE, q.wire_len) != 0)
                        abort();
        }
        return 0;
}
