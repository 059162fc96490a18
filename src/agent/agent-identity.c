/* SPDX-License-Identifier: MIT */
/* A restored clone takes an identity of its own (docs/agent-protocol.md,
 * the identity stream): the clock is stepped to the host's, fresh entropy
 * goes into the kernel's pool and the CRNG is reseeded (so no two clones of
 * one snapshot draw the same random bytes), the NIC gets the new MAC,
 * address and default route, the hostname is set, and /etc/banger/
 * network.conf, /etc/hostname and /etc/hosts are rewritten so a later cold
 * boot comes up as the same new VM. On request, the SSH host keys and
 * machine id are made anew (agent-hostkeys.c). A VM resumed in place
 * (RESUMED=1) only has its clock stepped and its CRNG reseeded. */
#include "agent-identity.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/random.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent-hostkeys.h"
#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "string-util.h"

/* Keys of the request that are not network.conf's: they are not written. */
static bool transient_key(const char *line) {
        return startswith(line, "FROM_MAC=") || startswith(line, "TIME_NS=") || startswith(line, "ENTROPY=") ||
               startswith(line, "NEW_HOST_KEYS=") || startswith(line, "RESUMED=");
}

static int parse_hex(const char *v, uint8_t *out, size_t max, size_t *ret_n) {
        size_t n = strlen(v);
        if (n % 2 || n / 2 > max)
                return -EINVAL;
        for (size_t i = 0; i < n / 2; i++) {
                unsigned b;
                if (sscanf(v + 2 * i, "%2x", &b) != 1 || !strchr("0123456789abcdefABCDEF", v[2 * i]) ||
                    !strchr("0123456789abcdefABCDEF", v[2 * i + 1]))
                        return -EINVAL;
                out[i] = (uint8_t) b;
        }
        *ret_n = n / 2;
        return 0;
}

static int parse_transient(AgentIdentity *id, const char *line) {
        const char *v;
        if ((v = startswith(line, "FROM_MAC=")))
                return strlen(v) == 17 ? (strcpy(id->from_mac, v), 0) : -EINVAL;
        if ((v = startswith(line, "TIME_NS="))) {
                char *end = NULL;
                errno = 0;
                unsigned long long t = strtoull(v, &end, 10);
                if (errno || !end || *end || end == v)
                        return -EINVAL;
                id->time_ns = t;
                return 0;
        }
        if ((v = startswith(line, "ENTROPY=")))
                return parse_hex(v, id->entropy, sizeof(id->entropy), &id->n_entropy);
        if ((v = startswith(line, "NEW_HOST_KEYS="))) {
                if (!streq(v, "0") && !streq(v, "1"))
                        return -EINVAL;
                id->new_host_keys = streq(v, "1");
                return 0;
        }
        if ((v = startswith(line, "RESUMED="))) {
                if (!streq(v, "0") && !streq(v, "1"))
                        return -EINVAL;
                id->resumed = streq(v, "1");
                return 0;
        }
        return 0;
}

int agent_identity_parse(const char *text, AgentIdentity *ret) {
        AgentIdentity id = {};
        if (strlen(text) > AGENT_IDENTITY_MAX)
                return -E2BIG;
        int r = network_config_parse(text, &id.net);
        if (r < 0)
                return r;
        _cleanup_free_ char *copy = strdup(text), *conf = calloc(1, strlen(text) + 1);
        if (!copy || !conf)
                return -ENOMEM;
        for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (!transient_key(line)) {
                        strcat(strcat(conf, line), "\n");
                        continue;
                }
                if ((r = parse_transient(&id, line)) < 0)
                        return log_debug_errno(r, "identity: invalid %.20s...", line);
        }
        if (id.resumed && id.new_host_keys)
                return log_debug_errno(-EINVAL, "identity: RESUMED=1 cannot ask for NEW_HOST_KEYS");
        if (!id.resumed && (!id.net.hostname[0] || !id.net.address[0] || !id.net.mac[0]))
                return log_debug_errno(-EINVAL, "identity: HOSTNAME, ADDRESS and MAC are required");
        id.conf = TAKE_PTR(conf);
        *ret = id;
        return 0;
}

void agent_identity_done(AgentIdentity *id) {
        free(id->conf);
        explicit_bzero(id->entropy, sizeof(id->entropy));
        *id = (AgentIdentity){};
}

static uint64_t clock_ns(clockid_t id) {
        struct timespec ts;
        (void) clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int step_clock(uint64_t ns) {
        int64_t by = (int64_t) (ns - clock_ns(CLOCK_REALTIME));
        struct timespec ts = { .tv_sec = (time_t) (ns / 1000000000ULL), .tv_nsec = (long) (ns % 1000000000ULL) };
        if (clock_settime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        log_info("identity: clock stepped by %+.3f s", (double) by / 1e9);
        return 0;
}

/* Credited to the pool (the host's getrandom() bytes are as good as it
 * gets), then the CRNG reseeded from it at once. */
static int feed_entropy(const uint8_t *bytes, size_t n) {
        _cleanup_close_ int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        _cleanup_free_ struct rand_pool_info *info = calloc(1, sizeof(*info) + n);
        if (!info)
                return -ENOMEM;
        info->entropy_count = (int) (n * 8);
        info->buf_size = (int) n;
        memcpy(info->buf, bytes, n);
        int r = RET_NERRNO(ioctl(fd, RNDADDENTROPY, info));
        explicit_bzero(info->buf, n);
        if (r >= 0)
                r = RET_NERRNO(ioctl(fd, RNDRESEEDCRNG));
        return r;
}

static int set_link_down(int sock, const char *name) {
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags &= (short) ~IFF_UP;
        return RET_NERRNO(ioctl(sock, SIOCSIFFLAGS, &ifr));
}

/* virtio-net takes a new MAC while up; a NIC that cannot (-EBUSY) gets it
 * while down (agent_configure_iface() brings it up again). */
static int set_mac(int sock, const char *name, const char *mac) {
        struct ifreq ifr = {};
        unsigned b[6];
        if (sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
                return -EINVAL;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
        for (size_t i = 0; i < 6; i++)
                ifr.ifr_hwaddr.sa_data[i] = (char) b[i];
        int r = RET_NERRNO(ioctl(sock, SIOCSIFHWADDR, &ifr));
        if (r != -EBUSY)
                return r;
        r = set_link_down(sock, name);
        return r < 0 ? r : RET_NERRNO(ioctl(sock, SIOCSIFHWADDR, &ifr));
}

/* Whether the NIC already has this identity's address (a VM resumed in
 * place, not a clone): then it is left alone, and its connections with it. */
static bool iface_has_address(int sock, const char *name, const char *address) {
        struct ifreq ifr = {};
        char have[INET_ADDRSTRLEN];
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        ifr.ifr_addr.sa_family = AF_INET;
        if (ioctl(sock, SIOCGIFADDR, &ifr) < 0)
                return false;
        const struct sockaddr_in *sin = (const struct sockaddr_in *) &ifr.ifr_addr;
        return inet_ntop(AF_INET, &sin->sin_addr, have, sizeof(have)) && streq(have, address);
}

/* The NIC the snapshot left (found by its old MAC, else by the new one)
 * gets the new MAC; the old address goes (0.0.0.0 removes every IPv4
 * address, and the routes through them) before the new one is set. */
static int renumber(const AgentIdentity *id) {
        _cleanup_close_ int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
                return -errno;
        NetworkConfig find = id->net;
        if (id->from_mac[0])
                strcpy(find.mac, id->from_mac);
        char name[IF_NAMESIZE];
        int r = agent_find_iface(sock, &find, name);
        if (r < 0 && id->from_mac[0])
                r = agent_find_iface(sock, &id->net, name);
        if (r < 0)
                return log_error_errno(r, "identity: no interface with MAC %s: %m", find.mac);
        bool same_mac = agent_iface_has_mac(sock, name, id->net.mac);
        if (same_mac && iface_has_address(sock, name, id->net.address)) {
                log_info("identity: %s is already %s, MAC %s", name, id->net.address, id->net.mac);
                return 0;
        }
        if (!same_mac && (r = set_mac(sock, name, id->net.mac)) < 0)
                return log_error_errno(r, "identity: %s: setting MAC %s: %m", name, id->net.mac);
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        ifr.ifr_addr.sa_family = AF_INET;
        if (ioctl(sock, SIOCSIFADDR, &ifr) < 0 && errno != EADDRNOTAVAIL)
                log_warning_errno(errno, "identity: %s: removing the old address: %m", name);
        r = agent_configure_iface(sock, &id->net, name);
        if (r >= 0)
                log_info("identity: %s is %s/%u, MAC %s", name, id->net.address, id->net.prefix, id->net.mac);
        return r;
}

/* One file of write_files(): written under a temporary name first, renamed
 * over the real one once every file's content is on disk. */
typedef struct Staged {
        int dfd;
        const char *name;
        char tmp[64];
} Staged;

static int stage(const char *root, const char *sub, const char *name, const char *text, Staged *st) {
        _cleanup_free_ char *dir = path_join(root, sub);
        st->dfd = dir ? open_dir_nofollow(AT_FDCWD, dir) : -ENOMEM;
        if (st->dfd < 0)
                return st->dfd;
        st->name = name;
        snprintf(st->tmp, sizeof(st->tmp), ".#%s.banger-identity", name);
        (void) unlinkat(st->dfd, st->tmp, 0); /* a leftover of a crash */
        _cleanup_close_ int fd = openat(st->dfd, st->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        int r = loop_write(fd, text, strlen(text));
        if (r < 0)
                (void) unlinkat(st->dfd, st->tmp, 0);
        return r;
}

static bool etc_file_is(const char *root, const char *sub, const char *name, const char *text) {
        _cleanup_free_ char *dir = path_join(root, sub);
        _cleanup_close_ int dfd = dir ? open_dir_nofollow(AT_FDCWD, dir) : -ENOMEM;
        _cleanup_free_ char *have = NULL;
        return dfd >= 0 && read_file_at(dfd, name, AGENT_IDENTITY_MAX + 1, &have, NULL) >= 0 && streq(have, text);
}

/* What a later cold boot of this VM reads: network.conf, hostname, hosts and
 * resolv.conf replaced atomically. The contents reach the disk with one
 * syncfs() and the renames with another, not two fsyncs per file: each is a
 * flush through the VMM to the host's disk, which a clone waits for. Left
 * alone (and no sync at all) when they already say so: a VM resumed in place. */
static int write_files(const char *root, const AgentIdentity *id) {
        char hostname[80], hosts[512], resolv[256];
        snprintf(hostname, sizeof(hostname), "%s\n", id->net.hostname);
        if (etc_file_is(root, "etc/banger", "network.conf", id->conf) && etc_file_is(root, "etc", "hostname", hostname))
                return 0;
        snprintf(hosts, sizeof(hosts),
                 "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
                 id->net.hostname);
        agent_resolv_conf_text(&id->net, resolv, sizeof(resolv));
        const struct {
                const char *sub, *name, *text;
        } files[] = {
                { "etc/banger", "network.conf", id->conf },
                { "etc", "hostname", hostname },
                { "etc", "hosts", hosts },
                { "etc", "resolv.conf", resolv },
        };
        size_t n = id->net.n_dns > 0 ? 4 : 3;
        Staged st[4] = { [0 ... 3] = { .dfd = -EBADF } };
        int r = 0;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = stage(root, files[i].sub, files[i].name, files[i].text, &st[i]);
        if (r >= 0 && syncfs(st[0].dfd) < 0)
                r = -errno;
        for (size_t i = 0; i < n && r >= 0; i++)
                if (renameat(st[i].dfd, st[i].tmp, st[i].dfd, st[i].name) < 0)
                        r = -errno;
        if (r >= 0 && syncfs(st[0].dfd) < 0)
                r = -errno;
        for (size_t i = 0; i < n; i++)
                if (st[i].dfd >= 0) {
                        (void) unlinkat(st[i].dfd, st[i].tmp, 0); /* left only when its rename did not happen */
                        safe_close(st[i].dfd);
                }
        return r;
}

/* Milliseconds since *since (monotonic), which moves to now. */
static unsigned lap_ms(uint64_t *since) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC), d = now - *since;
        *since = now;
        return (unsigned) (d / 1000000);
}

int agent_identity_apply(const char *root, const AgentIdentity *id, bool guest) {
        int r, ret = 0;
        unsigned ms[3] = {};
        uint64_t t = clock_ns(CLOCK_MONOTONIC);
        if (!guest)
                log_info("identity: not a guest (--listen-unix): leaving the clock and files alone");
        /* First, so what follows is logged at the right time. */
        if (guest && id->time_ns && (r = step_clock(id->time_ns)) < 0)
                ret = log_error_errno(r, "identity: stepping the clock: %m");
        if (id->n_entropy && (r = feed_entropy(id->entropy, id->n_entropy)) < 0)
                ret = log_error_errno(r, "identity: reseeding the kernel's random generator: %m");
        ms[0] = lap_ms(&t);
        if (id->resumed) {
                if (ret >= 0)
                        log_info("identity: resumed in place (clock and entropy %u ms)", ms[0]);
                return ret;
        }
        if ((r = renumber(id)) < 0)
                ret = r;
        if (sethostname(id->net.hostname, strlen(id->net.hostname)) < 0)
                ret = log_error_errno(errno, "identity: sethostname %s: %m", id->net.hostname);
        ms[1] = lap_ms(&t);
        if (guest && (r = write_files(root, id)) < 0)
                ret = log_error_errno(r, "identity: writing network.conf, hostname and hosts: %m");
        ms[2] = lap_ms(&t);
        /* After the reseed: the new keys come from the clone's own entropy. */
        if (guest && id->new_host_keys && (r = agent_new_host_keys(root)) < 0)
                ret = r;
        /* Where the time went, for the host's debug log (a TCG guest
         * retranslates every code path it runs first after a restore). */
        if (ret >= 0)
                log_info("identity: this guest is now %s (clock and entropy %u ms, network %u ms, files %u ms)",
                         id->net.hostname, ms[0], ms[1], ms[2]);
        return ret;
}

int agent_identity_builtin(const void *arg) {
        const AgentIdentityJob *job = arg;
        AgentIdentity id = {};
        int r = agent_identity_parse(job->text, &id);
        if (r < 0) {
                log_error_errno(r, "identity: malformed request: %m");
                return 1;
        }
        if (job->received_ns)
                log_info("identity: child running %u ms after the request arrived",
                         (unsigned) ((clock_ns(CLOCK_MONOTONIC) - job->received_ns) / 1000000));
        if (id.time_ns && job->received_ns)
                id.time_ns += clock_ns(CLOCK_MONOTONIC) - job->received_ns;
        r = agent_identity_apply(job->root, &id, job->guest);
        agent_identity_done(&id);
        return r < 0 ? 1 : 0;
}
