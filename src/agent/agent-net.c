/* SPDX-License-Identifier: MIT */
#include "agent-net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "string-util.h"

#define NETWORK_CONF "etc/banger/network.conf"
/* virtio_net may still be probing when we start; wait this long for the NIC. */
#define IFACE_WAIT_MS 5000

static bool is_ipv4(const char *s) {
        struct in_addr a;
        return inet_pton(AF_INET, s, &a) == 1;
}

static int copy_value(char *dst, size_t size, const char *v) {
        if (strlen(v) >= size)
                return -ENAMETOOLONG;
        strcpy(dst, v);
        return 0;
}

static int parse_address(NetworkConfig *c, const char *v) {
        const char *slash = strchr(v, '/');
        if (!slash || (size_t) (slash - v) >= sizeof(c->address))
                return -EINVAL;
        memcpy(c->address, v, (size_t) (slash - v));
        c->address[slash - v] = 0;
        int p;
        if (!is_ipv4(c->address) || safe_atoi(slash + 1, &p) < 0 || p < 1 || p > 32)
                return -EINVAL;
        c->prefix = (unsigned) p;
        return 0;
}

static int parse_dns(NetworkConfig *c, const char *v) {
        while (*v) {
                size_t n = strcspn(v, ", ");
                if (n > 0) {
                        if (c->n_dns >= ELEMENTSOF(c->dns) || n >= sizeof(c->dns[0]))
                                return -E2BIG;
                        memcpy(c->dns[c->n_dns], v, n);
                        c->dns[c->n_dns][n] = 0;
                        if (!is_ipv4(c->dns[c->n_dns]))
                                return -EINVAL;
                        c->n_dns++;
                }
                v += n + (v[n] != 0);
        }
        return 0;
}

static int parse_line(NetworkConfig *c, char *line) {
        char *eq = strchr(line, '=');
        if (!eq)
                return -EINVAL;
        *eq = 0;
        const char *k = line, *v = eq + 1;
        int n;
        if (streq(k, "ADDRESS"))
                return parse_address(c, v);
        if (streq(k, "GATEWAY"))
                return is_ipv4(v) ? copy_value(c->gateway, sizeof(c->gateway), v) : -EINVAL;
        if (streq(k, "DNS"))
                return parse_dns(c, v);
        if (streq(k, "MAC"))
                return strlen(v) == 17 ? copy_value(c->mac, sizeof(c->mac), v) : -EINVAL;
        if (streq(k, "INTERFACE"))
                return copy_value(c->iface, sizeof(c->iface), v);
        if (streq(k, "HOSTNAME"))
                return copy_value(c->hostname, sizeof(c->hostname), v);
        if (streq(k, "MTU")) {
                if (safe_atoi(v, &n) < 0 || n < 68 || n > 65535)
                        return -EINVAL;
                c->mtu = (unsigned) n;
                return 0;
        }
        log_debug("network.conf: ignoring unknown key %s", k);
        return 0;
}

int network_config_parse(const char *text, NetworkConfig *ret) {
        NetworkConfig c = {};
        _cleanup_free_ char *copy = strdup(text);
        if (!copy)
                return -ENOMEM;
        unsigned lineno = 0;
        for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                lineno++;
                line[strcspn(line, "\r")] = 0;
                line += strspn(line, " \t");
                if (!*line || *line == '#')
                        continue;
                int r = parse_line(&c, line);
                if (r < 0)
                        return log_debug_errno(r, "network.conf line %u: invalid %s", lineno, line);
        }
        *ret = c;
        return 0;
}

bool agent_iface_has_mac(int sock, const char *name, const char *mac) {
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0)
                return false;
        const unsigned char *m = (const unsigned char *) ifr.ifr_hwaddr.sa_data;
        char s[18];
        snprintf(s, sizeof(s), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
        return strcasecmp(s, mac) == 0;
}

static int find_iface_once(int sock, const NetworkConfig *c, char name[IF_NAMESIZE]) {
        const char *want = c->iface[0] ? c->iface : "eth0";
        struct if_nameindex *all = if_nameindex();
        if (!all)
                return -errno;
        int r = -ENODEV;
        for (struct if_nameindex *i = all; i->if_index != 0; i++) {
                bool match = c->mac[0] ? agent_iface_has_mac(sock, i->if_name, c->mac) : streq(i->if_name, want);
                if (match) {
                        snprintf(name, IF_NAMESIZE, "%s", i->if_name);
                        r = 0;
                        break;
                }
        }
        if_freenameindex(all);
        return r;
}

int agent_find_iface(int sock, const NetworkConfig *c, char name[IF_NAMESIZE]) {
        for (int waited = 0;; waited += 100) {
                int r = find_iface_once(sock, c, name);
                if (r != -ENODEV || waited >= IFACE_WAIT_MS)
                        return r;
                (void) poll(NULL, 0, 100);
        }
}

static int set_in_addr(int sock, const char *name, unsigned long req, in_addr_t a) {
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        struct sockaddr_in *sin = (struct sockaddr_in *) &ifr.ifr_addr;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = a;
        return RET_NERRNO(ioctl(sock, req, &ifr));
}

static int set_up(int sock, const char *name) {
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        return RET_NERRNO(ioctl(sock, SIOCSIFFLAGS, &ifr));
}

static int add_default_route(int sock, const char *gateway) {
        struct rtentry rt = {};
        struct sockaddr_in *dst = (struct sockaddr_in *) &rt.rt_dst, *gw = (struct sockaddr_in *) &rt.rt_gateway,
                           *mask = (struct sockaddr_in *) &rt.rt_genmask;
        dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
        inet_pton(AF_INET, gateway, &gw->sin_addr);
        rt.rt_flags = RTF_UP | RTF_GATEWAY;
        if (ioctl(sock, SIOCADDRT, &rt) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int agent_configure_iface(int sock, const NetworkConfig *c, const char *name) {
        struct in_addr a;
        inet_pton(AF_INET, c->address, &a);
        in_addr_t mask = htonl(c->prefix == 32 ? 0xffffffffU : ~(0xffffffffU >> c->prefix));
        int r = set_in_addr(sock, name, SIOCSIFADDR, a.s_addr);
        if (r < 0)
                return log_error_errno(r, "%s: setting address %s: %m", name, c->address);
        r = set_in_addr(sock, name, SIOCSIFNETMASK, mask);
        if (r < 0)
                return log_error_errno(r, "%s: setting netmask /%u: %m", name, c->prefix);
        if (c->mtu > 0) {
                struct ifreq ifr = { .ifr_mtu = (int) c->mtu };
                snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
                if (ioctl(sock, SIOCSIFMTU, &ifr) < 0)
                        log_warning_errno(errno, "%s: setting MTU %u: %m", name, c->mtu);
        }
        r = set_up(sock, name);
        if (r < 0)
                return log_error_errno(r, "%s: bringing link up: %m", name);
        if (c->gateway[0] && (r = add_default_route(sock, c->gateway)) < 0)
                return log_error_errno(r, "default route via %s: %m", c->gateway);
        return 0;
}

int agent_write_resolv_conf(const char *root, const NetworkConfig *c) {
        _cleanup_free_ char *etc = path_join(root, "etc");
        if (!etc)
                return -ENOMEM;
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, etc);
        if (dfd < 0)
                return dfd;
        char text[256];
        agent_resolv_conf_text(c, text, sizeof(text));
        return write_file_atomic_at(dfd, "resolv.conf", text, strlen(text), 0644);
}

void agent_resolv_conf_text(const NetworkConfig *c, char *buf, size_t size) {
        snprintf(buf, size, "# written by banger-agent from /etc/banger/network.conf\n");
        for (size_t i = 0; i < c->n_dns; i++)
                snprintf(buf + strlen(buf), size - strlen(buf), "nameserver %s\n", c->dns[i]);
}

static int read_config(const char *root, NetworkConfig *ret) {
        _cleanup_close_ int rfd = open_dir_nofollow(AT_FDCWD, root);
        if (rfd < 0)
                return rfd;
        _cleanup_free_ char *text = NULL;
        int r = read_file_at(rfd, NETWORK_CONF, 64 * 1024, &text, NULL);
        if (r < 0)
                return r;
        return network_config_parse(text, ret);
}

static int apply_config(const char *root, const NetworkConfig *c) {
        _cleanup_close_ int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
                return log_error_errno(errno, "socket: %m");
        int r = set_up(sock, "lo"), ret = 0;
        if (r < 0)
                log_warning_errno(r, "bringing lo up: %m");
        char name[IF_NAMESIZE];
        if (c->address[0]) {
                r = agent_find_iface(sock, c, name);
                if (r < 0)
                        ret = log_error_errno(r, "no interface %s%s: %m", c->mac[0] ? "with MAC " : "",
                                              c->mac[0]     ? c->mac
                                              : c->iface[0] ? c->iface
                                                            : "eth0");
                else if ((r = agent_configure_iface(sock, c, name)) < 0)
                        ret = r;
                else
                        log_info("network: %s %s/%u%s%s", name, c->address, c->prefix, c->gateway[0] ? " via " : "",
                                 c->gateway);
        }
        if (c->n_dns > 0 && (r = agent_write_resolv_conf(root, c)) < 0)
                ret = log_error_errno(r, "writing resolv.conf: %m");
        if (c->hostname[0] && sethostname(c->hostname, strlen(c->hostname)) < 0)
                ret = log_error_errno(errno, "sethostname %s: %m", c->hostname);
        return ret;
}

int agent_network_setup(const char *root) {
        NetworkConfig c;
        int r = read_config(root, &c);
        if (r == -ENOENT) {
                log_info("no /%s: skipping network setup", NETWORK_CONF);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "reading /%s: %m", NETWORK_CONF);
        return apply_config(root, &c);
}
