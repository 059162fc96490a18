/* SPDX-License-Identifier: MIT */
/* banger doctor: what this host can do for banger. Works with the daemon
 * down: every check looks at the host directly. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-rows.h"
#include "cli.h"
#include "config.h"
#include "disk-clone.h"
#include "error.h"
#include "firecracker.h"
#include "fs-util.h"
#include "macro.h"
#include "nftables-dl.h"
#include "output.h"
#include "qemu.h"
#include "rpc-client.h"
#include "spawn.h"
#include "store.h"
#include "string-util.h"
#include "verbs.h"

typedef struct Doctor {
        CheckRows rows;
        BangerConfig config;
} Doctor;

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
                check_row(&d->rows, CHECK_PASS, "/dev/kvm", "read-write: hardware virtualisation available");
        else
                check_row(&d->rows, CHECK_WARN, "/dev/kvm",
                          "%s\nFirecracker cannot run; QEMU will use software emulation (slow)", why);
        if (dev_rw("/dev/vhost-vsock", &e))
                check_row(&d->rows, CHECK_PASS, "/dev/vhost-vsock", "read-write");
        else
                check_row(&d->rows, CHECK_WARN, "/dev/vhost-vsock",
                          "%s\nQEMU guests reach their agent over virtio-serial instead", strerror(e));
        if (dev_rw("/dev/net/tun", &e))
                check_row(&d->rows, CHECK_PASS, "/dev/net/tun", "read-write");
        else
                check_row(&d->rows, CHECK_FAIL, "/dev/net/tun", "%s: VMs cannot get network devices", strerror(e));
}

static void check_firecracker(Doctor *d) {
        _cleanup_free_ char *bin = fc_resolve_binary(d->config.firecracker_bin);
        if (!bin) {
                check_row(&d->rows, CHECK_WARN, "firecracker",
                          "not found (config firecracker_bin or PATH)\nVMs will use QEMU");
                return;
        }
        _cleanup_free_ char *out = NULL;
        char *argv[] = { bin, "--version", NULL };
        int r = spawn_run_capture(argv, 5 * USEC_PER_SEC, 4096, true, &out);
        FcVersion v;
        if (r != 0 || fc_parse_version(out, &v) < 0) {
                check_row(&d->rows, CHECK_FAIL, "firecracker", "%s: cannot read its version", bin);
                return;
        }
        error_clear();
        if (fc_version_check(&v) < 0)
                check_row(&d->rows, CHECK_FAIL, "firecracker", "%s: %s", bin, error_last_message());
        else
                check_row(&d->rows, CHECK_PASS, "firecracker", "%s: v%u.%u.%u", bin, v.major, v.minor, v.patch);

        const char *jn = d->config.jailer_bin ? d->config.jailer_bin : "jailer";
        _cleanup_free_ char *jailer = find_executable(jn);
        if (jailer)
                check_row(&d->rows, CHECK_PASS, "jailer", "%s", jailer);
        else
                check_row(&d->rows, d->config.jailer_enabled ? CHECK_FAIL : CHECK_WARN, "jailer", "%s not found%s", jn,
                          d->config.jailer_enabled ? " but jailer_enabled is set" : "");
}

static void check_qemu(Doctor *d) {
        const char *name = d->config.qemu_bin ? d->config.qemu_bin : "qemu-system-x86_64";
        _cleanup_free_ char *bin = find_executable(name);
        if (!bin) {
                check_row(&d->rows, CHECK_WARN, "qemu", "%s not found: no fallback VMM for hosts without KVM", name);
                return;
        }
        _cleanup_free_ char *out = NULL;
        char *argv[] = { bin, "--version", NULL };
        int r = spawn_run_capture(argv, 10 * USEC_PER_SEC, 4096, true, &out);
        char *nl = out ? strchr(out, '\n') : NULL;
        if (nl)
                *nl = '\0';
        check_row(&d->rows, r == 0 ? CHECK_PASS : CHECK_FAIL, "qemu", "%s: %s\naccelerator: %s", bin,
                  r == 0 && out ? out : "does not run",
                  qemu_kvm_usable(NULL) ? "kvm" : "tcg (software emulation: slow)");
}

static void check_network(Doctor *d) {
        struct nft_ctx *nft = NULL;
        if (nftables_dl_open() < 0)
                check_row(&d->rows, CHECK_FAIL, "nftables", "%s", error_last_message());
        else if (!(nft = sym_nft_ctx_new(NFT_CTX_DEFAULT)))
                check_row(&d->rows, CHECK_FAIL, "nftables", "libnftables cannot create a context");
        else {
                sym_nft_ctx_buffer_output(nft);
                sym_nft_ctx_buffer_error(nft);
                if (geteuid() != 0)
                        check_row(&d->rows, CHECK_PASS, "nftables",
                                  "libnftables present (rules are applied by the root helper)");
                else if (sym_nft_run_cmd_from_buffer(nft, "list tables ip") == 0)
                        check_row(&d->rows, CHECK_PASS, "nftables", "kernel nf_tables answers");
                else
                        check_row(&d->rows, CHECK_FAIL, "nftables", "%s", sym_nft_ctx_get_error_buffer(nft));
                sym_nft_ctx_free(nft);
        }
        _cleanup_free_ char *fwd = NULL;
        if (read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", 64, &fwd, NULL) < 0)
                check_row(&d->rows, CHECK_WARN, "ip_forward", "cannot read /proc/sys/net/ipv4/ip_forward");
        else if (fwd[0] == '1')
                check_row(&d->rows, CHECK_PASS, "ip_forward", "enabled");
        else
                check_row(&d->rows, CHECK_WARN, "ip_forward", "disabled; banger enables it when a VM asks for NAT");
}

static void check_runtime(Doctor *d, Cli *cli) {
        const char *dir = cli->paths.runtime_dir;
        struct stat st;
        if (lstat(dir, &st) < 0)
                check_row(&d->rows, CHECK_PASS, "runtime dir", "%s does not exist yet (created 0700 on first use)",
                          dir);
        else if (S_ISLNK(st.st_mode))
                check_row(&d->rows, CHECK_FAIL, "runtime dir", "%s is a symlink; banger refuses it", dir);
        else if (!S_ISDIR(st.st_mode))
                check_row(&d->rows, CHECK_FAIL, "runtime dir", "%s is not a directory", dir);
        else if (st.st_uid != geteuid())
                check_row(&d->rows, CHECK_FAIL, "runtime dir", "%s is owned by uid %u, not %u", dir,
                          (unsigned) st.st_uid, (unsigned) geteuid());
        else if ((st.st_mode & 07777) != 0700)
                check_row(&d->rows, cli->paths.runtime_is_fallback ? CHECK_FAIL : CHECK_WARN, "runtime dir",
                          "%s has mode %04o; %s", dir, (unsigned) (st.st_mode & 07777),
                          cli->paths.runtime_is_fallback ? "banger refuses it" : "the daemon tightens it to 0700");
        else
                check_row(&d->rows, CHECK_PASS, "runtime dir", "%s: 0700, owner uid %u", dir, (unsigned) st.st_uid);

        const char *sock = cli->socket_path;
        if (lstat(sock, &st) < 0)
                check_row(&d->rows, CHECK_PASS, "daemon socket", "%s: not present (daemon not running)", sock);
        else if (!S_ISSOCK(st.st_mode))
                check_row(&d->rows, CHECK_FAIL, "daemon socket", "%s is not a socket", sock);
        else if ((st.st_mode & 077) != 0 || (st.st_uid != geteuid() && st.st_uid != 0))
                check_row(&d->rows, CHECK_FAIL, "daemon socket", "%s: mode %04o owner uid %u", sock,
                          (unsigned) (st.st_mode & 07777), (unsigned) st.st_uid);
        else
                check_row(&d->rows, CHECK_PASS, "daemon socket", "%s: mode %04o, owner uid %u", sock,
                          (unsigned) (st.st_mode & 07777), (unsigned) st.st_uid);
}

static void check_state(Doctor *d, Cli *cli) {
        const char *dir = cli->paths.state_dir;
        _cleanup_close_ int fd = open_dir_nofollow(AT_FDCWD, dir);
        if (fd < 0) {
                check_row(&d->rows, fd == -ENOENT ? CHECK_PASS : CHECK_FAIL, "state dir", "%s: %s", dir,
                          fd == -ENOENT ? "does not exist yet (created 0700 on first use)" : strerror(-fd));
        } else {
                int w = faccessat(fd, ".", W_OK, AT_EACCESS);
                check_row(&d->rows, w == 0 ? CHECK_PASS : CHECK_FAIL, "state dir", "%s: %s", dir,
                          w == 0 ? "writable" : "not writable");
                unsigned long long free_b = 0;
                if (fd_free_bytes(fd, &free_b) == 0) {
                        double gib = (double) free_b / (1ULL << 30);
                        check_row(&d->rows,
                                  gib < 1   ? CHECK_FAIL
                                  : gib < 5 ? CHECK_WARN
                                            : CHECK_PASS,
                                  "free disk space", "%.1f GiB free under %s", gib, dir);
                }
                DiskCloneMethod m;
                if (disk_clone_probe(fd, &m) >= 0)
                        check_row(&d->rows, m == DISK_CLONE_SPARSE_COPY ? CHECK_WARN : CHECK_PASS, "disk clones",
                                  "%s%s", disk_clone_method_to_string(m),
                                  m == DISK_CLONE_SPARSE_COPY ? "\nroot disks are copied; put the state dir on XFS or "
                                                                "btrfs for instant clones"
                                                              : "");
        }
        unsigned cur = 0, latest = 0;
        error_clear();
        int r = store_check_migrations(cli->paths.db_path, &cur, &latest);
        if (r < 0)
                check_row(&d->rows, CHECK_FAIL, "database", "%s: %s", cli->paths.db_path,
                          error_last_message() ? error_last_message() : strerror(-r));
        else if (r == STORE_MIGRATIONS_CURRENT)
                check_row(&d->rows, CHECK_PASS, "database", "%s: schema %u (current)", cli->paths.db_path, cur);
        else if (r == STORE_MIGRATIONS_PENDING)
                check_row(&d->rows, CHECK_PASS, "database",
                          "%s: schema %u, migrations to %u pending (applied at daemon start)", cli->paths.db_path, cur,
                          latest);
        else
                check_row(&d->rows, CHECK_FAIL, "database",
                          "%s: schema %u is newer than this build (%u); upgrade banger", cli->paths.db_path, cur,
                          latest);
}

/* Warm starts: on or off, and what templates and snapshots take on disk. */
static void check_snapshots(Doctor *d, Cli *cli) {
        SnapshotUsage u = {};
        char tb[16], sb[16];
        error_clear();
        int r = store_snapshot_usage_readonly(cli->paths.db_path, &u);
        if (r < 0) {
                check_row(&d->rows, CHECK_WARN, "templates", "%s (config vm_templates); usage unknown: %s",
                          d->config.vm_templates ? "on" : "off",
                          error_last_message() ? error_last_message() : strerror(-r));
                return;
        }
        check_row(&d->rows, CHECK_PASS, "templates", "%s (config vm_templates): %u template(s), %s; %u snapshot(s), %s",
                  d->config.vm_templates ? "on: vm create/run restore a template of the image's shape"
                                         : "off: every VM boots cold",
                  u.templates, format_size(tb, sizeof(tb), u.template_bytes), u.snapshots,
                  format_size(sb, sizeof(sb), u.snapshot_bytes));
}

static void check_config(Doctor *d, Cli *cli) {
        _cleanup_close_ int fd = open_dir_nofollow(AT_FDCWD, cli->paths.config_dir);
        error_clear();
        int r = fd < 0 && fd != -ENOENT ? fd
                : fd < 0                ? config_init(&d->config)
                                        : config_load(fd, CONFIG_FILE_NAME, &d->config);
        if (r < 0) {
                check_row(&d->rows, CHECK_FAIL, "config", "%s",
                          error_last_message() ? error_last_message() : strerror(-r));
                (void) config_init(&d->config);
        } else if (fd < 0 || faccessat(fd, CONFIG_FILE_NAME, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                check_row(&d->rows, CHECK_PASS, "config", "none (defaults); %s/%s would be read", cli->paths.config_dir,
                          CONFIG_FILE_NAME);
        else
                check_row(&d->rows, CHECK_PASS, "config", "%s/%s", cli->paths.config_dir, CONFIG_FILE_NAME);
}

/* Each [[catalog]]: does it answer, and does its signature verify. The
 * daemon fetches and checks them (catalog.list), from where pulls run; the
 * CLI itself links no HTTP client, and doctor never starts the daemon. */
static void check_catalogs(Doctor *d, Cli *cli) {
        if (d->config.n_catalogs == 0) {
                check_row(&d->rows, CHECK_PASS, "catalogs", "none configured ([[catalog]] in config.toml)");
                return;
        }
        _cleanup_rpc_client_ RpcClient *c = NULL;
        json_t *res = NULL, *row;
        size_t i;
        if (rpc_client_connect(cli->socket_path, &c) < 0 ||
            rpc_client_call(c, "catalog.list", json_pack("{s:s}", "kind", "kernel"), 300 * USEC_PER_SEC, NULL, NULL,
                            &res, NULL) < 0) {
                check_row(&d->rows, CHECK_WARN, "catalogs",
                          "%zu configured, not checked: the daemon does not answer (banger daemon start)",
                          d->config.n_catalogs);
                return;
        }
        json_make_printable(res);
        json_array_foreach (json_object_get(res, "catalogs"), i, row) {
                bool ok = json_is_true(json_object_get(row, "ok"));
                bool verified = json_is_true(json_object_get(row, "verified"));
                if (!ok)
                        check_row(&d->rows, CHECK_FAIL, "catalog", "%s", json_str(row, "error", "it failed"));
                else
                        check_row(&d->rows, verified ? CHECK_PASS : CHECK_WARN, "catalog", "%s: answers, %s",
                                  json_str(row, "url", "-"),
                                  verified ? "signature verified" : "UNSIGNED (insecure = true)");
        }
        json_decref(res);
}

static void help(void) {
        printf("Usage: banger doctor [--json]\n"
               "\n"
               "Check this host for what banger needs: KVM, vsock, TUN, Firecracker and its\n"
               "jailer, QEMU, nftables, IP forwarding, banger's directories, socket and\n"
               "database, disk space, the disk clone method, and whether warm-start templates\n"
               "are on and what they take on disk, and each [[catalog]]: whether it answers\n"
               "and its signature verifies (asked of a running daemon). Works with the daemon\n"
               "down.\n"
               "Rows are PASS, WARN or FAIL; the exit code is 1 when any check FAILs.\n");
}

int cmd_doctor(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "doctor", help, argc, argv, 0, 0);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        Doctor d = {};
        check_rows_init(&d.rows);
        check_config(&d, cli);
        check_devices(&d);
        check_firecracker(&d);
        check_qemu(&d);
        check_network(&d);
        check_runtime(&d, cli);
        check_state(&d, cli);
        check_snapshots(&d, cli);
        check_catalogs(&d, cli);
        check_rows_print(&d.rows, cli->json, NULL);
        check_rows_done(&d.rows);
        config_done(&d.config);
        return d.rows.n_fail > 0 ? EXIT_FAIL : EXIT_OK;
}
