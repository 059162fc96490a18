/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ipv4-subnet.h"
#include "string-util.h"

static uint32_t prefix_mask(unsigned prefixlen) {
        return prefixlen == 0 ? 0 : ~((UINT32_C(1) << (32 - prefixlen)) - 1);
}

int ipv4_parse(const char *s, struct in_addr *ret) {
        if (!s || strlen(s) >= IPV4_STRLEN)
                return -EINVAL;
        /* inet_pton(AF_INET) accepts only the four-part decimal form, but
         * also "01.2.3.4"; refuse leading zeros, which some tools read as octal. */
        for (const char *p = s; *p; p++)
                if (*p == '0' && (p == s || p[-1] == '.') && p[1] >= '0' && p[1] <= '9')
                        return -EINVAL;
        struct in_addr a;
        if (inet_pton(AF_INET, s, &a) != 1)
                return -EINVAL;
        *ret = a;
        return 0;
}

int ipv4_subnet_from_addr(struct in_addr addr, unsigned prefixlen, Ipv4Subnet *ret) {
        if (prefixlen < 1 || prefixlen > 30)
                return -EINVAL;
        uint32_t net = ntohl(addr.s_addr) & prefix_mask(prefixlen);
        *ret = (Ipv4Subnet){ .network.s_addr = htonl(net), .prefixlen = prefixlen };
        return 0;
}

int ipv4_subnet_parse(const char *s, Ipv4Subnet *ret) {
        char buf[IPV4_STRLEN];
        const char *slash = s ? strchr(s, '/') : NULL;
        if (!slash || (size_t) (slash - s) >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, (size_t) (slash - s));
        buf[slash - s] = 0;
        struct in_addr a;
        int prefix;
        if (ipv4_parse(buf, &a) < 0 || safe_atoi(slash + 1, &prefix) < 0 || !(slash[1] >= '0' && slash[1] <= '9'))
                return -EINVAL;
        if (prefix < 1 || prefix > 30)
                return -EINVAL;
        Ipv4Subnet sn;
        (void) ipv4_subnet_from_addr(a, (unsigned) prefix, &sn);
        if (sn.network.s_addr != a.s_addr)
                return -EINVAL;
        *ret = sn;
        return 0;
}

bool ipv4_subnet_contains_host(const Ipv4Subnet *s, struct in_addr addr) {
        if (!s || s->prefixlen < 1 || s->prefixlen > 30)
                return false;
        uint32_t mask = prefix_mask(s->prefixlen), a = ntohl(addr.s_addr), net = ntohl(s->network.s_addr);
        if ((a & mask) != net)
                return false;
        return a != net && a != (net | ~mask);
}

const char *ipv4_format(struct in_addr addr, char buf[static IPV4_STRLEN]) {
        uint32_t a = ntohl(addr.s_addr);
        snprintf(buf, IPV4_STRLEN, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
        return buf;
}
