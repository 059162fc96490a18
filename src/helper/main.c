/* SPDX-License-Identifier: MIT */
/* bangerd-root: banger's privileged helper. Runs as root, serves the owner
 * (and root) on a private socket, and does only what its fixed method table
 * allows, inside the bridge/CIDR/state directory it was started with. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "banger-build.h"
#include "bridge.h"
#include "config.h"
#include "error.h"
#include "fs-util.h"
#include "helper-client.h"
#include "helper.h"
#include "log.h"
#include "program-options.h"
#include "netlink.h"
#include "string-util.h"
#include "tap.h"

#define SYSTEM_CONFIG_DIR "/etc/banger"
#define SYSTEM_STATE_DIR "/var/lib/banger"
#define OWNER_FILE "owner"

typedef struct Args {
        bool system;
        long long owner_uid, owner_gid; /* -1: not given */
        const char *state_dir, *socket_path, *cidr, *bridge, *bridge_ip, *uplink;
        long dns_port;                 /* -1: not given */
        long long tap_pool;            /* -1: not given */
        long long max_taps, max_loops; /* -1: not given */
        int log_level;
} Args;

static void help(void) {
        printf("Usage: bangerd-root [OPTIONS]\n"
               "\n"
               "banger's privileged helper: creates the bridge, TAPs, NAT table and loop/dm\n"
               "devices for bangerd, over a socket only root and the owner can use.\n"
               "\n"
               "  --system             read /etc/banger/config.toml and /etc/banger/owner;\n"
               "                       defaults --state-dir " SYSTEM_STATE_DIR " and\n"
               "                       --socket " HELPER_SYSTEM_SOCKET "\n"
               "  --owner-uid N        the uid allowed to call (besides root)\n"
               "  --owner-gid N        the owner's gid (default: from the user database)\n"
               "  --state-dir PATH     the managed state directory (absolute)\n"
               "  --socket PATH        the socket; its directory is kept root-owned 0711\n"
               "  --cidr A.B.C.D/N     the VM network (default 172.16.0.0/24)\n"
               "  --bridge NAME        br-fc or br-fc-<suffix> (default br-fc)\n"
               "  --bridge-ip A.B.C.D  the bridge address (default: first host of the CIDR)\n"
               "  --uplink IF          NAT out of IF (default: the default route's interface)\n"
               "  --dns-port N         port of banger's DNS responder for resolved (default 5354)\n"
               "  --tap-pool N         keep N TAPs (0..64) ready for fast VM starts (default 0)\n"
               "  --max-taps N         the most TAPs the owner may hold, pool included (default 1024)\n"
               "  --max-loops N        the most loop devices the owner may hold (default 256)\n"
               "  --log-level LEVEL    error, warning, notice, info or debug\n"
               "  --version, -h/--help\n");
}

static int parse_number(const char *opt, const char *s, long long max, long long *ret) {
        unsigned long long v;
        if (safe_atou64(s, &v) < 0 || v > (unsigned long long) max) {
                fprintf(stderr, "bangerd-root: invalid %s '%s'\n", opt, s);
                return -EINVAL;
        }
        *ret = (long long) v;
        return 0;
}

enum {
        A_SYSTEM = 0x100,
        A_UID,
        A_GID,
        A_STATE,
        A_SOCKET,
        A_CIDR,
        A_BRIDGE,
        A_BRIDGE_IP,
        A_UPLINK,
        A_DNS_PORT,
        A_TAP_POOL,
        A_MAX_TAPS,
        A_MAX_LOOPS,
};

static const ProgramInfo program = { .name = "bangerd-root", .help = help };

/* One option; 1 to go on, 0 to exit successfully (--help), -EINVAL. */
static int parse_option(int c, Args *a) {
        long long v;
        switch (c) {
        case A_SYSTEM:
                a->system = true;
                return 1;
        case A_UID:
                return parse_number("--owner-uid", optarg, 0xfffffffeLL, &a->owner_uid) < 0 ? -EINVAL : 1;
        case A_GID:
                return parse_number("--owner-gid", optarg, 0xfffffffeLL, &a->owner_gid) < 0 ? -EINVAL : 1;
        case A_STATE:
                a->state_dir = optarg;
                return 1;
        case A_SOCKET:
                a->socket_path = optarg;
                return 1;
        case A_CIDR:
                a->cidr = optarg;
                return 1;
        case A_BRIDGE:
                a->bridge = optarg;
                return 1;
        case A_BRIDGE_IP:
                a->bridge_ip = optarg;
                return 1;
        case A_UPLINK:
                a->uplink = optarg;
                return 1;
        case A_DNS_PORT:
                if (parse_number("--dns-port", optarg, 65535, &v) < 0 || v == 0)
                        return -EINVAL;
                a->dns_port = (long) v;
                return 1;
        case A_TAP_POOL:
                return parse_number("--tap-pool", optarg, TAP_POOL_MAX, &a->tap_pool) < 0 ? -EINVAL : 1;
        case A_MAX_TAPS:
                if (parse_number("--max-taps", optarg, HELPER_MAX_TAPS_LIMIT, &a->max_taps) < 0 || a->max_taps == 0)
                        return -EINVAL;
                return 1;
        case A_MAX_LOOPS:
                if (parse_number("--max-loops", optarg, HELPER_MAX_LOOPS_LIMIT, &a->max_loops) < 0 || a->max_loops == 0)
                        return -EINVAL;
                return 1;
        default:
                return program_common_option(&program, c, optarg, &a->log_level);
        }
}

static int parse_args(int argc, char **argv, Args *a) {
        static const struct option opts[] = {
                { "system", no_argument, NULL, A_SYSTEM },
                { "owner-uid", required_argument, NULL, A_UID },
                { "owner-gid", required_argument, NULL, A_GID },
                { "state-dir", required_argument, NULL, A_STATE },
                { "socket", required_argument, NULL, A_SOCKET },
                { "cidr", required_argument, NULL, A_CIDR },
                { "bridge", required_argument, NULL, A_BRIDGE },
                { "bridge-ip", required_argument, NULL, A_BRIDGE_IP },
                { "uplink", required_argument, NULL, A_UPLINK },
                { "dns-port", required_argument, NULL, A_DNS_PORT },
                { "tap-pool", required_argument, NULL, A_TAP_POOL },
                { "max-taps", required_argument, NULL, A_MAX_TAPS },
                { "max-loops", required_argument, NULL, A_MAX_LOOPS },
                PROGRAM_COMMON_OPTIONS,
                {},
        };
        *a = (Args){ .owner_uid = -1,
                     .owner_gid = -1,
                     .dns_port = -1,
                     .tap_pool = -1,
                     .max_taps = -1,
                     .max_loops = -1,
                     .log_level = -1 };
        for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) >= 0;) {
                int r = parse_option(c, a);
                if (r <= 0)
                        return r;
        }
        return program_no_operands(&program, argc, argv);
}

/* /etc/banger/owner: "UID" or "UID:GID". It decides who may drive a root
 * process, so it must be root's and not writable by anyone else. */
static int read_owner_file(int dirfd, long long *uid, long long *gid) {
        _cleanup_close_ int fd = openat(dirfd, OWNER_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return error_setf(-errno,
                                  SYSTEM_CONFIG_DIR "/" OWNER_FILE ": %s (write the owner's uid there, "
                                                    "or pass --owner-uid)",
                                  strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 0022))
                return error_setf(-EPERM, SYSTEM_CONFIG_DIR "/" OWNER_FILE " must be a regular file owned by root "
                                                            "and not writable by group or others");
        char buf[64] = {};
        ssize_t n = loop_read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return (int) n;
        buf[strcspn(buf, "\n")] = '\0';
        char *colon = strchr(buf, ':');
        if (colon)
                *colon++ = '\0';
        if (parse_number("owner uid in " SYSTEM_CONFIG_DIR "/" OWNER_FILE, buf, 0xfffffffeLL, uid) < 0 ||
            (colon && parse_number("owner gid in " SYSTEM_CONFIG_DIR "/" OWNER_FILE, colon, 0xfffffffeLL, gid) < 0))
                return error_setf(-EINVAL, SYSTEM_CONFIG_DIR "/" OWNER_FILE ": expected UID or UID:GID");
        return 0;
}

/* System mode: fill what the command line left open from /etc/banger. */
static int load_system_config(Args *a, BangerConfig *c) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, SYSTEM_CONFIG_DIR);
        if (dfd < 0 && dfd != -ENOENT)
                return error_setf(dfd, "cannot open " SYSTEM_CONFIG_DIR ": %s", strerror(-dfd));
        int r = dfd >= 0 ? config_load(dfd, CONFIG_FILE_NAME, c) : config_init(c);
        if (r < 0)
                return r;
        long long uid = -1, gid = -1;
        if (a->owner_uid < 0) {
                if (dfd < 0)
                        return error_setf(-ENOENT, SYSTEM_CONFIG_DIR " is missing: pass --owner-uid");
                if ((r = read_owner_file(dfd, &uid, &gid)) < 0)
                        return r;
                a->owner_uid = uid;
                if (a->owner_gid < 0)
                        a->owner_gid = gid;
        }
        a->state_dir = a->state_dir ?: SYSTEM_STATE_DIR;
        a->socket_path = a->socket_path ?: HELPER_SYSTEM_SOCKET;
        return 0;
}

static int resolve_owner_gid(Args *a) {
        if (a->owner_uid < 0)
                return error_setf(-EINVAL,
                                  "--owner-uid is required (or --system with " SYSTEM_CONFIG_DIR "/" OWNER_FILE ")");
        if (a->owner_gid >= 0)
                return 0;
        struct passwd *pw = getpwuid((uid_t) a->owner_uid);
        if (!pw)
                return error_setf(-ESRCH, "uid %lld has no user database entry: pass --owner-gid", a->owner_uid);
        a->owner_gid = pw->pw_gid;
        return 0;
}

/* The state directory is opened once; every path a client names is resolved
 * beneath this fd. Its canonical path is what the kernel reports as a loop
 * device's backing file, so that is what reconcile compares against. */
static int open_state_dir(Helper *h, const char *path) {
        if (!path || path[0] != '/')
                return error_setf(-EINVAL, "--state-dir must be an absolute path");
        h->state_fd = open_dir_nofollow(AT_FDCWD, path);
        if (h->state_fd < 0)
                return error_setf(h->state_fd, "cannot open state directory %s: %s", path, strerror(-h->state_fd));
        struct stat st;
        if (fstat(h->state_fd, &st) < 0)
                return -errno;
        if ((st.st_uid != 0 && st.st_uid != h->owner_uid) || (st.st_mode & 0022))
                return error_setf(-EPERM,
                                  "state directory %s must be owned by root or the owner and not writable "
                                  "by group or others",
                                  path);
        char proc[64], canon[4096];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", h->state_fd);
        ssize_t n = readlink(proc, canon, sizeof(canon) - 1);
        if (n < 0)
                return error_setf(-errno, "cannot resolve %s: %s", path, strerror(errno));
        canon[n] = '\0';
        h->state_dir = strdup(canon);
        return h->state_dir ? 0 : -ENOMEM;
}

static int configure_network(Helper *h, const Args *a, const BangerConfig *c) {
        const char *cidr = a->cidr ?: c->cidr, *bridge = a->bridge ?: c->bridge_name;
        if (ipv4_subnet_parse(cidr, &h->subnet) < 0)
                return error_setf(-EINVAL, "invalid CIDR '%s' (want A.B.C.D/N with host bits zero, N <= 30)", cidr);
        if (!bridge_name_is_valid(bridge))
                return error_setf(-EINVAL, "invalid bridge name '%s': only br-fc or br-fc-<suffix>", bridge);
        snprintf(h->bridge, sizeof(h->bridge), "%s", bridge);
        if (firewall_table_name(h->bridge, h->nft_table) < 0)
                return -EINVAL;
        /* The config's bridge_ip only applies to the config's own CIDR. */
        const char *ip = a->bridge_ip ?: (a->cidr ? NULL : c->bridge_ip);
        if (ip) {
                if (ipv4_parse(ip, &h->bridge_ip) < 0 || !ipv4_subnet_contains_host(&h->subnet, h->bridge_ip))
                        return error_setf(-EINVAL, "bridge address '%s' is not a host address inside %s", ip, cidr);
        } else
                h->bridge_ip.s_addr = htonl(ntohl(h->subnet.network.s_addr) + 1);
        if (a->uplink) {
                if (!ifname_is_valid(a->uplink) || tap_name_is_valid(a->uplink) || bridge_name_is_valid(a->uplink))
                        return error_setf(-EINVAL, "invalid uplink interface '%s'", a->uplink);
                if (!(h->uplink = strdup(a->uplink)))
                        return -ENOMEM;
        }
        h->dns_port = (uint16_t) (a->dns_port > 0 ? a->dns_port : c->dns_port);
        /* Dev mode's config is the defaults, so tap_pool_size there is 0. */
        size_t pool = a->tap_pool >= 0 ? (size_t) a->tap_pool : c->tap_pool_size;
        h->max_taps = a->max_taps > 0 ? (unsigned) a->max_taps : c->max_taps;
        h->max_loops = a->max_loops > 0 ? (unsigned) a->max_loops : c->max_loop_devices;
        if (pool > h->max_taps)
                return error_setf(-EINVAL, "a TAP pool of %zu exceeds max_taps (%u)", pool, h->max_taps);
        return tap_pool_init(&h->tap_pool, h->bridge, h->owner_uid, h->owner_gid, pool);
}

static int helper_configure(Helper *h, Args *a) {
        _cleanup_(config_done) BangerConfig c = {};
        int r = a->system ? load_system_config(a, &c) : config_init(&c);
        if (r < 0)
                return r;
        if (a->system && a->log_level < 0)
                (void) config_apply_log_level(&c);
        if ((r = resolve_owner_gid(a)) < 0)
                return r;
        h->owner_uid = (uid_t) a->owner_uid;
        h->owner_gid = (gid_t) a->owner_gid;
        if (!a->socket_path || a->socket_path[0] != '/')
                return error_setf(-EINVAL, "--socket must be an absolute path");
        if (!(h->socket_path = strdup(a->socket_path)))
                return -ENOMEM;
        if ((r = open_state_dir(h, a->state_dir)) < 0)
                return r;
        return configure_network(h, a, &c);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Helper *h = userdata;
        log_info("received %s, shutting down", strsignal((int) si->ssi_signo));
        return sd_event_exit(h->event, 0);
}

static void helper_done(Helper *h) {
        helper_unlisten(h);
        /* After unlisten: no request can take a TAP while the pool drains. */
        helper_pool_done(h);
        h->event = sd_event_unref(h->event);
        safe_close(h->state_fd);
        safe_close(h->socket_dir_fd);
        free(h->state_dir);
        free(h->socket_path);
        free(h->uplink);
        strv_free(h->taps_made);
        helper_loops_done(h);
}

static int helper_run(Helper *h) {
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        int r = sd_event_new(&h->event);
        if (r >= 0)
                r = sd_event_add_signal(h->event, NULL, SIGTERM, on_signal, h);
        if (r >= 0)
                r = sd_event_add_signal(h->event, NULL, SIGINT, on_signal, h);
        if (r < 0)
                return log_error_errno(r, "cannot set up the event loop: %m");
        if ((r = helper_listen(h)) < 0 || (r = helper_pool_setup(h)) < 0)
                return log_error_errno(r, "%s", error_last_message() ?: strerror(-r));
        char ip[IPV4_STRLEN];
        log_info("listening on %s for uid %u (state %s, bridge %s %s/%u, TAP pool %zu/%zu)", h->socket_path,
                 (unsigned) h->owner_uid, h->state_dir, h->bridge, ipv4_format(h->bridge_ip, ip), h->subnet.prefixlen,
                 h->tap_pool.n, h->tap_pool.target);
        (void) sd_notifyf(false, "READY=1\nSTATUS=listening on %s", h->socket_path);
        r = sd_event_loop(h->event);
        (void) sd_notify(false, "STOPPING=1");
        return r;
}

int main(int argc, char **argv) {
        log_set_program(program.name);
        /* Under systemd stderr is the journal: keep each line's priority. */
        log_set_journal_prefix(getenv("JOURNAL_STREAM") != NULL);
        (void) log_parse_environment();
        Args a;
        int r = parse_args(argc, argv, &a);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (a.log_level >= 0)
                log_set_max_level(a.log_level);
        if (geteuid() != 0) {
                log_error("bangerd-root must run as root (euid 0)");
                return EXIT_FAILURE;
        }
        umask(0077);
        signal(SIGPIPE, SIG_IGN);
        Helper h = { .state_fd = -EBADF, .socket_dir_fd = -EBADF, .listen_fd = -EBADF };
        r = helper_configure(&h, &a);
        if (r < 0)
                log_error_errno(r, "%s", error_last_message() ?: strerror(-r));
        else
                r = helper_run(&h);
        helper_done(&h);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
