/* SPDX-License-Identifier: MIT */
#pragma once

/* A port forward as the user writes it: [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp]
 * (an IPv6 HOST_IP in brackets: [::1]:8080:80). HOST_IP defaults to
 * 127.0.0.1: a forward is reachable from elsewhere only when asked. TCP
 * only: "/udp" is refused by name. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define PORT_SPEC_DEFAULT_HOST_IP "127.0.0.1"

typedef struct PortSpec {
        char host_ip[INET6_ADDRSTRLEN]; /* canonical text (inet_ntop) */
        uint16_t host_port;
        uint16_t guest_port;
        char proto[4]; /* "tcp" */
} PortSpec;

/* Parse; -EINVAL (or -EPROTONOSUPPORT for udp) with a message through
 * error_setf() that quotes the text. */
int port_spec_parse(const char *text, PortSpec *ret);

/* The host side alone, as `vm port rm` takes it: [HOST_IP:]HOST_PORT[/tcp]. */
int port_spec_parse_host(const char *text, PortSpec *ret);

/* Check fields that arrive separately (the RPC): the address is made
 * canonical in ret. */
int port_spec_from_fields(const char *host_ip, uint64_t host_port, uint64_t guest_port, const char *proto,
                          PortSpec *ret);

/* "127.0.0.1:8080" or "[::1]:8080". */
void port_spec_host_format(const PortSpec *p, char *buf, size_t size);
