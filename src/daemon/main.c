/* SPDX-License-Identifier: MIT */
/* bangerd: the banger daemon. One sd-event loop serving JSON-RPC on a
 * private Unix socket; slow work runs in worker threads. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "banger-build.h"
#include "daemon.h"
#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "kernel-store.h"
#include "store.h"
#include "vm-manager.h"

typedef struct Args {
        bool system;
        bool check_migrations;
        int log_level; /* -1: not given */
} Args;

static void help(void) {
        printf("Usage: bangerd [OPTIONS]\n"
               "\n"
               "The banger daemon: keeps banger's VMs, images and host resources, and\n"
               "serves the banger CLI over JSON-RPC on <runtime dir>/bangerd.sock.\n"
               "The banger CLI starts it on demand in user mode; under systemd it can be\n"
               "socket activated.\n"
               "\n"
               "Options:\n"
               "  --system             use the system paths (/etc, /var/lib, /run/banger)\n"
               "  --log-level LEVEL    error, warning, notice, info or debug\n"
               "                       (also BANGER_LOG_LEVEL and config log_level)\n"
               "  --check-migrations   report the database schema and exit: 0 compatible,\n"
               "                       1 migrations pending, 2 database newer than this build\n"
               "  --version            print version and exit\n"
               "  -h, --help           show this help\n");
}

static int parse_args(int argc, char **argv, Args *a) {
        enum { ARG_SYSTEM = 0x100, ARG_LOG_LEVEL, ARG_CHECK, ARG_VERSION };
        static const struct option opts[] = {
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "check-migrations", no_argument, NULL, ARG_CHECK },
                { "version", no_argument, NULL, ARG_VERSION },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        *a = (Args){ .log_level = -1 };
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case ARG_SYSTEM:
                        a->system = true;
                        break;
                case ARG_LOG_LEVEL:
                        a->log_level = log_level_from_string(optarg);
                        if (a->log_level < 0) {
                                fprintf(stderr, "bangerd: invalid log level '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_CHECK:
                        a->check_migrations = true;
                        break;
                case ARG_VERSION:
                        printf("bangerd %s (%s)\n", BANGER_VERSION, BANGER_COMMIT);
                        return 0;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "bangerd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int check_migrations(const BangerPaths *p) {
        unsigned cur = 0, latest = 0;
        int r = store_check_migrations(p->db_path, &cur, &latest);
        if (r < 0) {
                fprintf(stderr, "bangerd: cannot inspect %s: %s\n", p->db_path,
                        error_last_message() ? error_last_message() : strerror(-r));
                return 3;
        }
        const char *what = r == STORE_MIGRATIONS_CURRENT ? "compatible"
                           : r == STORE_MIGRATIONS_PENDING ? "migrations pending"
                                                            : "database is newer than this build";
        printf("%s: schema %u, this build %u: %s\n", p->db_path, cur, latest, what);
        return r;
}

static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        if (!e)
                return false;
        unsigned long long dev, ino;
        if (sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        struct stat st;
        return fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;
        log_info("received %s, shutting down", strsignal((int) si->ssi_signo));
        d->shutting_down = true;
        return sd_event_exit(d->event, 0);
}

static int daemon_setup(Daemon *d, const Args *a) {
        int r = paths_ensure_private_dir(d->paths.state_dir, &d->state_dir_fd);
        if (r < 0)
                return log_error_errno(r, "state directory: %s", error_last_message());
        d->log_fd = openat(d->state_dir_fd, "bangerd.log", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (d->log_fd < 0)
                return log_error_errno(-errno, "cannot open %s: %m", d->paths.log_path);
        log_set_file_fd(d->log_fd);

        _cleanup_close_ int cfd = -EBADF;
        r = paths_ensure_private_dir(d->paths.config_dir, &cfd);
        if (r < 0)
                return log_error_errno(r, "config directory: %s", error_last_message());
        r = config_load(cfd, CONFIG_FILE_NAME, &d->config);
        if (r < 0)
                return log_error_errno(r, "%s", error_last_message() ? error_last_message() : strerror(-r));
        /* Precedence: --log-level, then BANGER_LOG_LEVEL, then the file. */
        (void) config_apply_log_level(&d->config);
        if (a->log_level >= 0)
                log_set_max_level(a->log_level);

        r = paths_ensure_runtime_dir(&d->paths, &d->runtime_dir_fd);
        if (r < 0)
                return log_error_errno(r, "runtime directory: %s", error_last_message());

        r = store_open(d->paths.db_path, 0, &d->store);
        if (r < 0)
                return log_error_errno(r, "database %s: %s", d->paths.db_path,
                                       error_last_message() ? error_last_message() : strerror(-r));

        r = sd_event_default(&d->event);
        if (r < 0)
                return log_error_errno(r, "cannot create event loop: %m");
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        (void) sd_event_add_signal(d->event, NULL, SIGTERM, on_signal, d);
        (void) sd_event_add_signal(d->event, NULL, SIGINT, on_signal, d);

        /* Leftovers of imports a crash interrupted. */
        if (kernel_store_sweep(d->store, d->paths.state_dir) < 0)
                log_warning("cannot sweep interrupted kernel imports: %s", error_last_message() ? error_last_message() : "?");

        daemon_sweep_images(d);

        r = vm_manager_new(d, &d->vms);
        if (r < 0)
                return log_error_errno(r, "cannot set up the VM service: %s",
                                       error_last_message() ? error_last_message() : strerror(-r));
        d->default_vmm = (int) vm_manager_default_vmm(d->vms); /* may run firecracker --version: not on the loop */
        r = vm_manager_recover(d->vms);
        if (r < 0)
                log_warning_errno(r, "recovering VMs: %s", error_last_message() ? error_last_message() : strerror(-r));

        r = server_mailbox_setup(d);
        if (r < 0)
                return log_error_errno(r, "cannot set up worker mailbox: %m");
        r = dns_server_start(d);
        if (r < 0)
                log_warning("DNS for <name>.vm disabled: %s", error_last_message() ? error_last_message() : strerror(-r));
        r = server_listen(d);
        if (r < 0)
                return log_error_errno(r, "cannot listen: %s", error_last_message() ? error_last_message() : strerror(-r));
        return 0;
}

static void daemon_teardown(Daemon *d) {
        if (d->mailbox_efd >= 0)
                server_drain_workers(d, 60 * USEC_PER_SEC);
        server_close_all(d);
        d->dns_source = sd_event_source_disable_unref(d->dns_source);
        /* Workers and exit watchers may still hold the VM service; only the
         * helper process it owns is stopped. VMMs keep running. */
        if (d->vms)
                vm_manager_shutdown(d->vms);
        d->mailbox_source = sd_event_source_disable_unref(d->mailbox_source);
        safe_close(d->mailbox_efd);
        d->store = d->store ? store_close(d->store) : NULL;
        d->event = sd_event_unref(d->event);
        safe_close(d->runtime_dir_fd);
        safe_close(d->state_dir_fd);
        log_set_file_fd(-EBADF);
        safe_close(d->log_fd);
        config_done(&d->config);
        paths_done(&d->paths);
}

int main(int argc, char **argv) {
        Args a;
        log_set_program("bangerd");
        int r = parse_args(argc, argv, &a);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        umask(0077);
        signal(SIGPIPE, SIG_IGN);
        if (log_parse_environment() < 0)
                fprintf(stderr, "bangerd: ignoring invalid BANGER_LOG_LEVEL\n");
        if (a.log_level >= 0)
                log_set_max_level(a.log_level);
        log_set_journal_prefix(stderr_is_journal());

        Daemon d = { .listen_fd = -EBADF, .runtime_dir_fd = -EBADF, .state_dir_fd = -EBADF, .log_fd = -EBADF,
                     .mailbox_efd = -EBADF };
        r = paths_resolve(a.system, &d.paths);
        if (r < 0) {
                log_error("%s", error_last_message() ? error_last_message() : strerror(-r));
                return 1;
        }
        if (a.check_migrations) {
                r = check_migrations(&d.paths);
                paths_done(&d.paths);
                return r;
        }

        d.started_at = now_monotonic();
        r = daemon_setup(&d, &a);
        if (r >= 0) {
                log_info("bangerd %s (%s) listening on %s", BANGER_VERSION, BANGER_COMMIT, d.paths.socket_path);
                (void) sd_notifyf(false, "READY=1\nSTATUS=listening on %s\nMAINPID=%d", d.paths.socket_path,
                                  (int) getpid());
                r = sd_event_loop(d.event);
                (void) sd_notify(false, "STOPPING=1");
                log_info("bangerd stopped");
        }
        daemon_teardown(&d);
        return r < 0 ? 1 : 0;
}
