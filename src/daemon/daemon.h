/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon as a whole: what it holds, and daemon_run(), where it starts
 * (paths, config, database, the VM service, the RPC server and DNS on one
 * sd-event loop), serves until SIGTERM, SIGINT or daemon.shutdown, and
 * stops. Everything here is touched by the loop only, except the fields
 * marked otherwise. */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "paths.h"
#include "time-util.h"

typedef struct ConsoleStreams ConsoleStreams;
typedef struct EventBus EventBus;
typedef struct ExitWatches ExitWatches;
typedef struct Operations Operations;
typedef struct Server Server;
typedef struct Store Store;
typedef struct StorePool StorePool;
typedef struct VmManager VmManager;
typedef struct Workers Workers;

typedef struct DaemonOptions {
        bool system;
        int log_level; /* -1: not given */
} DaemonOptions;

typedef struct Daemon {
        sd_event *event;
        /* Read-only once running; workers may read them. */
        BangerPaths paths;
        BangerConfig config;
        int runtime_dir_fd;
        int state_dir_fd;
        int log_fd;
        int default_vmm; /* VmmKind for new VMs, worked out once at start */

        Store *store;          /* the loop's own connection: workers take theirs from store_pool */
        StorePool *store_pool; /* thread-safe */
        Workers *workers;
        ExitWatches *exits;       /* processes watched for their exit; adding is thread-safe */
        ConsoleStreams *consoles; /* VM consoles read on the loop; opening is thread-safe */
        VmManager *vms;           /* thread-safe */
        Server *server;
        EventBus *events;       /* publishing is thread-safe */
        Operations *operations; /* the long operations in flight (operation.h) */
        sd_event_source *dns_source;

        usec_t started_at; /* monotonic */
        bool shutting_down;
} Daemon;

/* Run until asked to stop; returns the process exit code. */
int daemon_run(const DaemonOptions *o);

/* bangerd --check-migrations: 0 compatible, 1 migrations pending, 2 the
 * database is newer than this build, 3 it cannot be read. */
int daemon_check_migrations(bool system);

/* Any thread: a Store on the daemon's database for the caller alone, from
 * the pool (store_close() gives it back), with the event bus observing it. */
int daemon_open_store(Daemon *d, Store **ret);

/* Any thread: path relative to the state directory ("images/x/rootfs.ext4")
 * when path lies beneath it, for *_beneath(d->state_dir_fd, ...); else NULL. */
const char *daemon_state_relative(const Daemon *d, const char *path);

/* Where banger-agent is (installed into images); NULL when it is nowhere. */
char *daemon_find_agent(void);
