/* SPDX-License-Identifier: MIT */
/* banger doctor: what this host can do for banger. Works with the daemon
 * down: every check looks at the host directly. */
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "disk-clone.h"
#include "error.h"
#include "firecracker.h"
#include "fs-util.h"
#include "macro.h"
#include "qemu.h"
#include "spawn.h"
#include "store.h"
#include "string-util.h"

typedef enum { PASS, WARN, FAIL } Status;
static const char *const status_names[] = { "PASS", "WARN", "FAIL" };

typedef struct Doctor {
        json_t *rows;
        unsigned n_fail, n_warn;
        BangerConfig config;
} Doctor;

_printf_(4, 5) static void row(Doctor *d, Status s, const char *check, const char *fmt, ...) {
        char detail[1024] = "";
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(detail, sizeof(detail), fmt, ap);
                va_end(ap);
        }
        json_t *details = json_array();
        char *save = NULL;
        for (char *l = strtok_r(detail, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                json_array_append_new(details, json_string(l));
        json_array_append_new(d->rows, json_pack("{s:s, s:s, s:o}", "status", status_names[s], "check", check,
                                                 "details", details));
        if (s == FAIL)
                d->n_fail++;
        else if (s == WARN)
                d->n_warn++;
}

static bool dev_rw(const char *path, int *ret_errno) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                *ret_errno = errno;
                return false;
        }
        close(fd);
        return true;
}

static void check_devices(Doctor *d) {
        int e = 0;
        /* The QEMU driver's own test: a /dev/kvm that opens is not enough
         * (a paravirtual one in a nested guest cannot run ordinary guests). */
        const char *why = NULL;
        if (qemu_kvm_usable(&why))
                row(d, PASS, "/dev/kvm", "read-write: hardware virtualisation available");
        else
                row(d, WARN, "/dev/kvm", "%s\nFirecracker cannot run; QEMU will use software emulation (slow)", why);
        if (dev_rw("/dev/vhost-vsock", &e))
                row(d, PASS, "/dev/vhost-vsock", "read-write");
        else
                row(d, WARN, "/dev/vhost-vsock", "%s\nQEMU guests reach their agent over virtio-serial instead",
                    strerror(e));
        if (dev_rw("/dev/net/tun", &e))
                row(d, PASS, "/dev/net/tun", "read-write");
        else
                row(d, FAIL, "/dev/net/tun", "%s: VMs cannot get network devices", strerror(e));
}

static void check_firecracker(Doctor *d) {
        _cleanup_free_ char *bin = fc_resolve_binary(d->config.firecracker_bin);
        if (!bin) {
                row(d, WARN, "firecracker", "not found (config firecracker_bin or PATH)\nVMs will use QEMU");
                return;
        }
        _cleanup_free_ char *out = NULL;
        char *argv[] = { bin, "--version", NULL };
        int r = spawn_run_capture(argv, 5 * USEC_PER_SEC, 4096, true, &out);
        FcVersion v;
        if (r != 0 || fc_parse_version(out, &v) < 0) {
                row(d, FAIL, "firecracker", "%s: cannot read its version", bin);
                return;
        }
        error_clear();
        if (fc_version_check(&v) < 0)
                row(d, FAIL, "firecracker", "%s: %s", bin, error_last_message());
        else
                row(d, PASS, "firecracker", "%s: v%u.%u.%u", bin, v.major, v.minor, v.patch);

        const char *jn = d->config.jailer_bin ? d->config.jailer_bin : "jailer";
        _cleanup_free_ char *jailer = find_executable(jn);
        if (jailer)
                row(d, PASS, "jailer", "%s", jailer);
        else
                row(d, d->config.jailer_enabled ? FAIL : WARN, "jailer", "%s not found%s", jn,
                    d->config.jailer_enabled ? " but jailer_enabled is set" : "");
}

static void check_qemu(Doctor *d) {
        const char *name = d->config.qemu_bin ? d->config.qemu_bin : "qemu-system-x86_64";
        _cleanup_free_ char *bin = find_executable(name);
        if (!bin) {
                row(d, WARN, "qemu", "%s not found: no fallback VMM for hosts without KVM", name);
                return;
        }
        _cleanup_free_ char *out = NULL;
        char *argv[] = { bin, "--version", NULL };
        int r = spawn_run_capture(argv, 10 * USEC_PER_SEC, 4096, true, &out);
        char *nl = out ? strchr(out, '\n') : NULL;
        if (nl)
                *nl = '\0';
        row(d, r == 0 ? PASS : FAIL, "qemu", "%s: %s\naccelerator: %s", bin, r == 0 && out ? out : "does not run",
            qemu_kvm_usable(NULL) ? "kvm" : "tcg (software emulation: slow)");
}

static void check_network(Doctor *d) {
        struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!nft)
                row(d, FAIL, "nftables", "libnftables cannot create a context");
        else {
                nft_ctx_buffer_output(nft);
                nft_ctx_buffer_error(nft);
                if (geteuid() != 0)
                        row(d, PASS, "nftables", "libnftables present (rules are applied by the root helper)");
                else if (nft_run_cmd_from_buffer(nft, "list tables ip") == 0)
                        row(d, PASS, "nftables", "kernel nf_tables answers");
                else
                        row(d, FAIL, "nftables", "%s", nft_ctx_get_error_buffer(nft));
                nft_ctx_free(nft);
        }
        _cleanup_free_ char *fwd = NULL;
        if (read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", 64, &fwd, NULL) < 0)
                row(d, WARN, "ip_forward", "cannot read /proc/sys/net/ipv4/ip_forward");
        else if (fwd[0] == '1')
                row(d, PASS, "ip_forward", "enabled");
        else
                row(d, WARN, "ip_forward", "disabled; banger enables it when a VM asks for NAT");
}

static void check_runtime(Doctor *d, Cli *cli) {
        const char *dir = cli->paths.runtime_dir;
        struct stat st;
        if (lstat(dir, &st) < 0)
                row(d, PASS, "runtime dir", "%s does not exist yet (created 0700 on first use)", dir);
        else if (S_ISLNK(st.st_mode))
                row(d, FAIL, "runtime dir", "%s is a symlink; banger refuses it", dir);
        else if (!S_ISDIR(st.st_mode))
                row(d, FAIL, "runtime dir", "%s is not a directory", dir);
        else if (st.st_uid != geteuid())
                row(d, FAIL, "runtime dir", "%s is owned by uid %u, not %u", dir, (unsigned) st.st_uid,
                    (unsigned) geteuid());
        else if ((st.st_mode & 07777) != 0700)
                row(d, cli->paths.runtime_is_fallback ? FAIL : WARN, "runtime dir", "%s has mode %04o; %s", dir,
                    (unsigned) (st.st_mode & 07777),
                    cli->paths.runtime_is_fallback ? "banger refuses it" : "the daemon tightens it to 0700");
        else
                row(d, PASS, "runtime dir", "%s: 0700, owner uid %u", dir, (unsigned) st.st_uid);

        const char *sock = cli->socket_path;
        if (lstat(sock, &st) < 0)
                row(d, PASS, "daemon socket", "%s: not present (daemon not running)", sock);
        else if (!S_ISSOCK(st.st_mode))
                row(d, FAIL, "daemon socket", "%s is not a socket", sock);
        else if ((st.st_mode & 077) != 0 || (st.st_uid != geteuid() && st.st_uid != 0))
                row(d, FAIL, "daemon socket", "%s: mode %04o owner uid %u", sock, (unsigned) (st.st_mode & 07777),
                    (unsigned) st.st_uid);
        else
                row(d, PASS, "daemon socket", "%s: mode %04o, owner uid %u", sock, (unsigned) (st.st_mode & 07777),
                    (unsigned) st.st_uid);
}

static void check_state(Doctor *d, Cli *cli) {
        const char *dir = cli->paths.state_dir;
        _cleanup_close_ int fd = open_dir_nofollow(AT_FDCWD, dir);
        if (fd < 0) {
                row(d, fd == -ENOENT ? PASS : FAIL, "state dir", "%s: %s", dir,
                    fd == -ENOENT ? "does not exist yet (created 0700 on first use)" : strerror(-fd));
        } else {
                int w = faccessat(fd, ".", W_OK, AT_EACCESS);
                row(d, w == 0 ? PASS : FAIL, "state dir", "%s: %s", dir, w == 0 ? "writable" : "not writable");
                unsigned long long free_b = 0;
                if (fd_free_bytes(fd, &free_b) == 0) {
                        double gib = (double) free_b / (1ULL << 30);
                        row(d, gib < 1 ? FAIL : gib < 5 ? WARN : PASS, "free disk space", "%.1f GiB free under %s",
                            gib, dir);
                }
                DiskCloneMethod m;
                if (disk_clone_probe(fd, &m) >= 0)
                        row(d, m == DISK_CLONE_SPARSE_COPY ? WARN : PASS, "disk clones", "%s%s",
                            disk_clone_method_to_string(m),
                            m == DISK_CLONE_SPARSE_COPY
                                    ? "\nroot disks are copied; put the state dir on XFS or btrfs for instant clones"
                                    : "");
        }
        unsigned cur = 0, latest = 0;
        error_clear();
        int r = store_check_migrations(cli->paths.db_path, &cur, &latest);
        if (r < 0)
                row(d, FAIL, "database", "%s: %s", cli->paths.db_path, error_last_message() ? error_last_message() : strerror(-r));
        else if (r == STORE_MIGRATIONS_CURRENT)
                row(d, PASS, "database", "%s: schema %u (current)", cli->paths.db_path, cur);
        else if (r == STORE_MIGRATIONS_PENDING)
                row(d, PASS, "database", "%s: schema %u, migrations to %u pending (applied at daemon start)",
                    cli->paths.db_path, cur, latest);
        else
                row(d, FAIL, "database", "%s: schema %u is newer than this build (%u); upgrade banger",
                    cli->paths.db_path, cur, latest);
}

static void check_config(Doctor *d, Cli *cli) {
        _cleanup_close_ int fd = open_dir_nofollow(AT_FDCWD, cli->paths.config_dir);
        error_clear();
        int r = fd < 0 && fd != -ENOENT ? fd : fd < 0 ? config_init(&d->config) : config_load(fd, CONFIG_FILE_NAME, &d->config);
        if (r < 0) {
                row(d, FAIL, "config", "%s", error_last_message() ? error_last_message() : strerror(-r));
                (void) config_init(&d->config);
        } else
                row(d, PASS, "config", "%s/%s", cli->paths.config_dir, CONFIG_FILE_NAME);
}

static void help(void) {
        printf("Usage: banger doctor [--json]\n"
               "\n"
               "Check this host for what banger needs: KVM, vsock, TUN, Firecracker and its\n"
               "jailer, QEMU, nftables, IP forwarding, banger's directories, socket and\n"
               "database, disk space and the disk clone method. Works with the daemon down.\n"
               "Rows are PASS, WARN or FAIL; the exit code is 1 when any check FAILs.\n");
}

int cmd_doctor(Cli *cli, int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
                bool helped = false;
                if (cli_common_option(cli, argv[i], help, &helped)) {
                        if (helped)
                                return EXIT_OK;
                        continue;
                }
                fprintf(stderr, "banger doctor: unexpected argument '%s'\n", argv[i]);
                return EXIT_USAGE;
        }
        Doctor d = { .rows = json_array() };
        check_config(&d, cli);
        check_devices(&d);
        check_firecracker(&d);
        check_qemu(&d);
        check_network(&d);
        check_runtime(&d, cli);
        check_state(&d, cli);
        if (cli->json)
                cli_print_json(d.rows);
        else {
                size_t i;
                json_t *r;
                json_array_foreach(d.rows, i, r) {
                        printf("%s %s\n", json_string_value(json_object_get(r, "status")),
                               json_string_value(json_object_get(r, "check")));
                        size_t k;
                        json_t *l;
                        json_array_foreach(json_object_get(r, "details"), k, l) printf("    %s\n", json_string_value(l));
                }
                printf("\n%u failed, %u warnings\n", d.n_fail, d.n_warn);
        }
        json_decref(d.rows);
        config_done(&d.config);
        return d.n_fail > 0 ? EXIT_FAIL : EXIT_OK;
}
