/* SPDX-License-Identifier: MIT */
#pragma once

/* Guest network bring-up from <root>/etc/banger/network.conf (format in
 * docs/guest-config.md): address, netmask, MTU, link up, default route,
 * resolv.conf, hostname. A missing file is not an error (logged, skipped). */

#include <stddef.h>

typedef struct NetworkConfig {
        char mac[18];
        char iface[16];
        char address[16]; /* dotted quad, without the prefix */
        unsigned prefix;
        char gateway[16];
        char dns[3][16];
        size_t n_dns;
        char hostname[64];
        unsigned mtu; /* 0: leave alone */
} NetworkConfig;

/* Parse the file's text; unknown keys are ignored (newer hosts may add some). */
int network_config_parse(const char *text, NetworkConfig *ret);

int agent_network_setup(const char *root);

/* The pieces, for agent-identity.c. sock: any AF_INET datagram socket. */
#include <net/if.h>
#include <stdbool.h>
bool agent_iface_has_mac(int sock, const char *name, const char *mac);
/* The interface c names (by MAC, else INTERFACE, else eth0), waiting up to
 * 5 s for it to appear. */
int agent_find_iface(int sock, const NetworkConfig *c, char name[IF_NAMESIZE]);
/* Address, netmask, MTU, link up, default route. */
int agent_configure_iface(int sock, const NetworkConfig *c, const char *name);
int agent_write_resolv_conf(const char *root, const NetworkConfig *c);
/* resolv.conf's text for c's DNS servers, into buf (truncated to size). */
void agent_resolv_conf_text(const NetworkConfig *c, char *buf, size_t size);
