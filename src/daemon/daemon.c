/* SPDX-License-Identifier: MIT */
/* Where bangerd starts: daemon_run() sets up paths, config, log and
 * database, recovers what a previous run left, starts the VM service, the
 * worker mailbox, DNS and the RPC server on one sd-event loop, runs the loop
 * and tears it all down again. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "banger-build.h"
#include "dns-server.h"
#include "error.h"
#include "events.h"
#include "operation.h"
#include "console-stream.h"
#include "exit-watch.h"
#include "fs-util.h"
#include "image-dir.h"
#include "kernel-store.h"
#include "log.h"
#include "macro.h"
#include "methods.h"
#include "path-beneath.h"
#include "server.h"
#include "spawn.h"
#include "store.h"
#include "string-util.h"
#include "vm-manager.h"
#include "worker.h"

#define DAEMON_MAX_WORKERS 64
#define DAEMON_DRAIN_TIMEOUT (60 * USEC_PER_SEC)
/* Idle connections kept for the workers: enough for the usual concurrency;
 * a burst beyond it opens more and closes them when done. */
#define DAEMON_STORE_POOL_IDLE 8

static const RpcMethod *const method_tables[] = {
        daemon_methods,
        vm_methods,
        vm_query_methods,
        vm_port_methods,
        snapshot_methods,
        kernel_methods,
        image_methods,
        image_import_methods,
        catalog_methods,
        catalog_pull_methods,
        event_methods,
        operation_methods,
        NULL,
};

static const char *message_or_errno(int r) {
        return error_last_message() ? error_last_message() : strerror(-r);
}

/* Once per pooled connection: a connection observed twice would tell
 * every change twice. */
static int store_pool_setup(Store *s, void *userdata) {
        Daemon *d = userdata;
        return d->events ? store_observe(s, event_bus_store_observer, d->events) : 0;
}

int daemon_open_store(Daemon *d, Store **ret) {
        if (d->store_pool)
                return store_pool_get(d->store_pool, ret);
        _cleanup_store_close_ Store *s = NULL;
        int r = store_open(d->paths.db_path, STORE_OPEN_NO_MIGRATE, &s);
        if (r >= 0)
                r = store_pool_setup(s, d);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

const char *daemon_state_relative(const Daemon *d, const char *path) {
        const char *rest = path ? startswith(path, d->paths.state_dir) : NULL;
        if (!rest || rest[0] != '/')
                return NULL;
        rest += strspn(rest, "/");
        return path_beneath_is_valid(rest) ? rest : NULL;
}

/* banger-agent: next to bangerd, in the build tree, or installed. */
char *daemon_find_agent(void) {
        static const char *const rel[] = { "banger-agent", "../agent/banger-agent", "../libexec/banger/banger-agent" };
        char *p = find_program_beside_self(rel, ELEMENTSOF(rel));
        if (p)
                return p;
        p = path_join(BANGER_LIBEXECDIR, "banger/banger-agent");
        if (p && access(p, X_OK) < 0) {
                free(p);
                p = NULL;
        }
        return p;
}

int daemon_check_migrations(bool system) {
        BangerPaths p = {};
        int r = paths_resolve(system, &p);
        if (r < 0) {
                log_error("%s", message_or_errno(r));
                return 1;
        }
        unsigned cur = 0, latest = 0;
        r = store_check_migrations(p.db_path, &cur, &latest);
        if (r < 0) {
                fprintf(stderr, "bangerd: cannot inspect %s: %s\n", p.db_path, message_or_errno(r));
                paths_done(&p);
                return 3;
        }
        const char *what = r == STORE_MIGRATIONS_CURRENT   ? "compatible"
                           : r == STORE_MIGRATIONS_PENDING ? "migrations pending"
                                                           : "database is newer than this build";
        printf("%s: schema %u, this build %u: %s\n", p.db_path, cur, latest, what);
        paths_done(&p);
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

/* State and config directories, the log file, config.toml, the database. */
static int setup_state(Daemon *d, const DaemonOptions *o) {
        int r = paths_ensure_private_dir(d->paths.state_dir, &d->state_dir_fd);
        if (r < 0)
                return log_error_errno(r, "state directory: %s", error_last_message());
        d->log_fd =
                openat(d->state_dir_fd, "bangerd.log", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (d->log_fd < 0)
                return log_error_errno(-errno, "cannot open %s: %m", d->paths.log_path);
        log_set_file_fd(d->log_fd);

        _cleanup_close_ int cfd = -EBADF;
        r = paths_ensure_private_dir(d->paths.config_dir, &cfd);
        if (r < 0)
                return log_error_errno(r, "config directory: %s", error_last_message());
        r = config_load(cfd, CONFIG_FILE_NAME, &d->config);
        if (r < 0)
                return log_error_errno(r, "%s", message_or_errno(r));
        /* Precedence: --log-level, then BANGER_LOG_LEVEL, then the file. */
        (void) config_apply_log_level(&d->config);
        if (o->log_level >= 0)
                log_set_max_level(o->log_level);

        r = paths_ensure_runtime_dir(&d->paths, &d->runtime_dir_fd);
        if (r < 0)
                return log_error_errno(r, "runtime directory: %s", error_last_message());
        r = store_open(d->paths.db_path, 0, &d->store);
        if (r < 0)
                return log_error_errno(r, "database %s: %s", d->paths.db_path, message_or_errno(r));
        return 0;
}

static int setup_loop(Daemon *d) {
        int r = sd_event_default(&d->event);
        if (r < 0)
                return log_error_errno(r, "cannot create the event loop: %m");
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        (void) sd_event_add_signal(d->event, NULL, SIGTERM, on_signal, d);
        (void) sd_event_add_signal(d->event, NULL, SIGINT, on_signal, d);
        r = workers_new(d->event, DAEMON_MAX_WORKERS, &d->workers);
        if (r >= 0)
                r = exit_watches_new(d->event, d->workers, &d->exits);
        if (r >= 0)
                r = console_streams_new(d->event, d->workers, d->config.console_log_max, &d->consoles);
        if (r >= 0)
                r = event_bus_new(d, &d->events);
        if (r >= 0)
                r = operations_new(&d->operations);
        if (r >= 0)
                r = store_observe(d->store, event_bus_store_observer, d->events);
        if (r >= 0)
                r = store_pool_new(d->paths.db_path, STORE_OPEN_NO_MIGRATE, store_pool_setup, d, DAEMON_STORE_POOL_IDLE,
                                   &d->store_pool);
        if (r < 0)
                return log_error_errno(r, "cannot set up the worker mailbox: %m");
        return 0;
}

/* Sweep what interrupted work left, start the VM service (re-attaching to
 * running VMs), DNS, and the RPC server last: once it listens, clients are
 * served. */
static int setup_services(Daemon *d) {
        if (kernel_store_sweep(d->store, d->paths.state_dir) < 0)
                log_warning("cannot sweep interrupted kernel imports: %s",
                            error_last_message() ? error_last_message() : "?");
        image_dirs_sweep(d, d->store);

        int r = vm_manager_new(d, &d->vms);
        if (r < 0)
                return log_error_errno(r, "cannot set up the VM service: %s", message_or_errno(r));
        d->default_vmm = (int) vm_manager_default_vmm(d->vms); /* may run firecracker --version: not on the loop */
        r = vm_manager_recover(d->vms);
        if (r < 0)
                log_warning_errno(r, "recovering VMs: %s", message_or_errno(r));

        r = dns_server_start(d);
        if (r < 0)
                log_warning("no DNS for <name>.vm: %s", message_or_errno(r));
        r = server_new(d, method_tables, &d->server);
        if (r < 0)
                return log_error_errno(r, "cannot listen: %s", message_or_errno(r));
        return 0;
}

static void daemon_teardown(Daemon *d) {
        if (d->workers)
                workers_drain(d->workers, DAEMON_DRAIN_TIMEOUT);
        d->server = server_free(d->server);
        d->dns_source = sd_event_source_disable_unref(d->dns_source);
        /* VMMs keep running. Workers still running after the drain may hold
         * the VM service: then only the helper process it owns is stopped. */
        bool idle = !d->workers || workers_idle(d->workers);
        if (idle)
                d->vms = vm_manager_free(d->vms);
        else if (d->vms)
                vm_manager_shutdown(d->vms);
        d->exits = exit_watches_free(d->exits);
        d->consoles = console_streams_free(d->consoles);
        d->workers = workers_free(d->workers);
        d->store = d->store ? store_close(d->store) : NULL;
        /* Connections a worker that outlived the drain still holds are closed
         * when it gives them back (the event bus is kept for them below). */
        d->store_pool = store_pool_free(d->store_pool);
        if (idle) /* else a worker that outlived the drain may still publish */
                d->events = event_bus_free(d->events);
        if (idle)
                d->operations = operations_free(d->operations);
        d->event = sd_event_unref(d->event);
        safe_close(d->runtime_dir_fd);
        safe_close(d->state_dir_fd);
        log_set_file_fd(-EBADF);
        safe_close(d->log_fd);
        config_done(&d->config);
        paths_done(&d->paths);
}

int daemon_run(const DaemonOptions *o) {
        umask(0077);
        signal(SIGPIPE, SIG_IGN);
        if (log_parse_environment() < 0)
                fprintf(stderr, "bangerd: ignoring invalid BANGER_LOG_LEVEL\n");
        if (o->log_level >= 0)
                log_set_max_level(o->log_level);
        log_set_journal_prefix(stderr_is_journal());

        Daemon d = { .runtime_dir_fd = -EBADF, .state_dir_fd = -EBADF, .log_fd = -EBADF };
        int r = paths_resolve(o->system, &d.paths);
        if (r < 0) {
                log_error("%s", message_or_errno(r));
                return 1;
        }
        d.started_at = now_monotonic();
        r = setup_state(&d, o);
        if (r >= 0)
                r = setup_loop(&d);
        if (r >= 0)
                r = setup_services(&d);
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
