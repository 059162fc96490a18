/* SPDX-License-Identifier: MIT */
#pragma once

/* IPv4 addresses and the configured VM subnet (config bridge_ip + cidr).
 * Parsing is strict: dotted-quad decimal only, no shorthand forms. */

#include <netinet/in.h>
#include <stdbool.h>

typedef struct Ipv4Subnet {
        struct in_addr network; /* host bits cleared */
        unsigned prefixlen;     /* 1..30: a VM subnet needs room for hosts */
} Ipv4Subnet;

#define IPV4_STRLEN 16

int ipv4_parse(const char *s, struct in_addr *ret);
/* "a.b.c.d/n"; host bits in the address are rejected with -EINVAL. */
int ipv4_subnet_parse(const char *s, Ipv4Subnet *ret);
/* Subnet containing addr with the given prefix length (host bits cleared). */
int ipv4_subnet_from_addr(struct in_addr addr, unsigned prefixlen, Ipv4Subnet *ret);
/* Inside the subnet and neither its network nor its broadcast address. */
bool ipv4_subnet_contains_host(const Ipv4Subnet *s, struct in_addr addr);
/* Format into buf (>= IPV4_STRLEN bytes); returns buf. */
const char *ipv4_format(struct in_addr addr, char buf[static IPV4_STRLEN]);
