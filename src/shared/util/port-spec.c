/* SPDX-License-Identifier: MIT */
#include "port-spec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "string-util.h"

#define SPEC_USAGE "expected [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp]"

/* A port number 1..65535 in decimal, nothing else. */
static int parse_port(const char *s, size_t len, uint16_t *ret) {
        unsigned v = 0;
        if (len == 0 || len > 5)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        if (v == 0 || v > 65535)
                return -ERANGE;
        *ret = (uint16_t) v;
        return 0;
}

/* The address as inet_ntop writes it; -EINVAL when it is not one. */
static int canonical_address(const char *s, size_t len, char out[INET6_ADDRSTRLEN]) {
        char buf[INET6_ADDRSTRLEN];
        unsigned char bin[sizeof(struct in6_addr)];
        if (len == 0 || len >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = 0;
        int af = inet_pton(AF_INET, buf, bin) == 1 ? AF_INET : inet_pton(AF_INET6, buf, bin) == 1 ? AF_INET6 : 0;
        if (!af || !inet_ntop(af, bin, out, INET6_ADDRSTRLEN))
                return -EINVAL;
        return 0;
}

static int check_proto(const char *text, const char *proto, PortSpec *p) {
        if (streq(proto, "tcp")) {
                snprintf(p->proto, sizeof(p->proto), "tcp");
                return 0;
        }
        if (streq(proto, "udp"))
                return error_setf(-EPROTONOSUPPORT, "port forward \"%s\": only tcp can be forwarded, not udp", text);
        return error_setf(-EINVAL, "port forward \"%s\": unknown protocol \"%s\" (only tcp)", text, proto);
}

/* Split off the host address: "[v6]:", "v4:" or nothing. */
static int split_host(const char *text, const char **rest, PortSpec *p) {
        const char *s = text;
        const char *host = NULL;
        size_t host_len = 0;
        if (*s == '[') {
                const char *end = strchr(s, ']');
                if (!end || end[1] != ':')
                        return error_setf(-EINVAL, "port forward \"%s\": " SPEC_USAGE, text);
                host = s + 1;
                host_len = (size_t) (end - host);
                s = end + 2;
        } else {
                const char *c1 = strchr(s, ':');
                const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (c2) { /* three fields: the first is the address */
                        host = s;
                        host_len = (size_t) (c1 - s);
                        s = c1 + 1;
                }
        }
        if (!host)
                snprintf(p->host_ip, sizeof(p->host_ip), PORT_SPEC_DEFAULT_HOST_IP);
        else if (canonical_address(host, host_len, p->host_ip) < 0)
                return error_setf(-EINVAL, "port forward \"%s\": \"%.*s\" is not an IP address", text,
                                  (int) MIN(host_len, (size_t) 64), host);
        *rest = s;
        return 0;
}

int port_spec_parse(const char *text, PortSpec *ret) {
        PortSpec p = {};
        const char *s = NULL;
        if (!text || strlen(text) > 128)
                return error_setf(-EINVAL, "port forward too long: " SPEC_USAGE);
        int r = split_host(text, &s, &p);
        if (r < 0)
                return r;
        const char *colon = strchr(s, ':');
        const char *slash = strchr(s, '/');
        if (!colon || (slash && slash < colon))
                return error_setf(-EINVAL, "port forward \"%s\": " SPEC_USAGE, text);
        size_t guest_len = slash ? (size_t) (slash - colon - 1) : strlen(colon + 1);
        if (parse_port(s, (size_t) (colon - s), &p.host_port) < 0 ||
            parse_port(colon + 1, guest_len, &p.guest_port) < 0)
                return error_setf(-EINVAL, "port forward \"%s\": ports are numbers from 1 to 65535 (" SPEC_USAGE ")",
                                  text);
        r = check_proto(text, slash ? slash + 1 : "tcp", &p);
        if (r < 0)
                return r;
        *ret = p;
        return 0;
}

int port_spec_parse_host(const char *text, PortSpec *ret) {
        PortSpec p = {};
        if (!text || strlen(text) > 128)
                return error_setf(-EINVAL, "host port too long: expected [HOST_IP:]HOST_PORT[/tcp]");
        const char *slash = strchr(text, '/');
        size_t len = slash ? (size_t) (slash - text) : strlen(text);
        const char *port = text;
        int r = 0;
        if (*text == '[') {
                const char *end = memchr(text, ']', len);
                if (!end || end[1] != ':' || canonical_address(text + 1, (size_t) (end - text - 1), p.host_ip) < 0)
                        r = -EINVAL;
                port = end ? end + 2 : text;
        } else {
                const char *colon = memchr(text, ':', len);
                if (colon && canonical_address(text, (size_t) (colon - text), p.host_ip) < 0)
                        r = -EINVAL;
                if (!colon)
                        snprintf(p.host_ip, sizeof(p.host_ip), PORT_SPEC_DEFAULT_HOST_IP);
                port = colon ? colon + 1 : text;
        }
        if (r < 0 || port > text + len || parse_port(port, (size_t) (text + len - port), &p.host_port) < 0)
                return error_setf(-EINVAL, "host port \"%s\": expected [HOST_IP:]HOST_PORT[/tcp]", text);
        r = check_proto(text, slash ? slash + 1 : "tcp", &p);
        if (r < 0)
                return r;
        *ret = p;
        return 0;
}

int port_spec_from_fields(const char *host_ip, uint64_t host_port, uint64_t guest_port, const char *proto,
                          PortSpec *ret) {
        PortSpec p = {};
        const char *ip = host_ip ? host_ip : PORT_SPEC_DEFAULT_HOST_IP;
        if (canonical_address(ip, strlen(ip), p.host_ip) < 0)
                return error_setf(-EINVAL, "\"%.64s\" is not an IP address", ip);
        if (host_port < 1 || host_port > 65535 || guest_port < 1 || guest_port > 65535)
                return error_setf(-EINVAL, "ports are numbers from 1 to 65535");
        p.host_port = (uint16_t) host_port;
        p.guest_port = (uint16_t) guest_port;
        char text[160];
        snprintf(text, sizeof(text), "%s:%u:%u/%.8s", p.host_ip, p.host_port, p.guest_port, proto ? proto : "tcp");
        int r = check_proto(text, proto ? proto : "tcp", &p);
        if (r < 0)
                return r;
        *ret = p;
        return 0;
}

void port_spec_host_format(const PortSpec *p, char *buf, size_t size) {
        bool v6 = strchr(p->host_ip, ':');
        snprintf(buf, size, "%s%s%s:%u", v6 ? "[" : "", p->host_ip, v6 ? "]" : "", p->host_port);
}
