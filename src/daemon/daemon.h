/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "macro.h"
#include "paths.h"
#include "time-util.h"

#define DAEMON_MAX_CONNECTIONS 256
#define DAEMON_MAX_CALLS_PER_CONNECTION 64
#define DAEMON_MAX_WORKERS 64
#define DAEMON_MAX_REFUSING 64

typedef struct Connection Connection;
typedef struct RpcCall RpcCall;
typedef struct Store Store;
typedef struct VmManager VmManager;

typedef struct Daemon {
        sd_event *event;
        BangerPaths paths;
        BangerConfig config;
        bool socket_activated;
        bool owns_socket_file;
        int listen_fd;
        sd_event_source *listen_source;
        int runtime_dir_fd;
        int state_dir_fd;
        int log_fd;
        sd_event_source *dns_source;

        Store *store;
        VmManager *vms;
        int default_vmm; /* VmmKind for new VMs, worked out once at start */
        int schema_version;

        usec_t started_at; /* monotonic */
        bool shutting_down;

        Connection *connections;
        unsigned n_connections;
        unsigned n_refused;

        /* Worker threads post finished lines here; the loop drains it. */
        pthread_mutex_t mailbox_lock;
        struct MailItem *mailbox_head, *mailbox_tail;
        int mailbox_efd;
        sd_event_source *mailbox_source;
        unsigned n_workers;
} Daemon;

/* dns-server.c */
int dns_server_start(Daemon *d);

/* server.c */
int server_listen(Daemon *d);
void server_close_all(Daemon *d);
int server_mailbox_setup(Daemon *d);
/* After the loop ended: let running workers finish (bounded). */
void server_drain_workers(Daemon *d, usec_t timeout);

/* A call being answered. Handlers either answer at once (rpc_call_reply*) or
 * hand the work to a worker thread with rpc_call_defer(); a worker may stream
 * progress notifications with rpc_call_notify() before its result. */
typedef int (*RpcMethodFn)(Daemon *d, RpcCall *call, json_t *params);
typedef int (*RpcWorkFn)(RpcCall *call, void *userdata, json_t **ret_result);

typedef struct RpcMethod {
        const char *name;
        RpcMethodFn fn;
} RpcMethod;

void rpc_call_reply(RpcCall *call, json_t *result); /* steals */
void rpc_call_reply_error(RpcCall *call, int code, const char *fmt, ...) _printf_(3, 4);
/* Reply with the JSON-RPC code for -errno r and error_last_message() (or strerror). */
void rpc_call_reply_errno(RpcCall *call, int r);
int rpc_call_defer(RpcCall *call, RpcWorkFn fn, void *userdata, void (*free_userdata)(void *));
/* Thread-safe: from a worker, queue a notification on the caller's connection. */
void rpc_call_notify(RpcCall *call, const char *method, json_t *params);
int rpc_errno_to_code(int r);
/* From a worker: extra "data" for the error reply if the work fails (steals). */
void rpc_call_set_error_data(RpcCall *call, json_t *data);

/* methods-*.c: the method tables, looked up by name. */
const RpcMethod *rpc_method_find(const char *name);
extern const RpcMethod daemon_methods[];
extern const RpcMethod vm_methods[];
extern const RpcMethod image_methods[];
extern const RpcMethod image_build_methods[];

/* Where banger-agent is (installed into images). */
char *daemon_find_agent(void);
/* Remove image directories no image row names (interrupted imports/builds). */
void daemon_sweep_images(Daemon *d);

/* Parameter helpers: on failure they reply -32602 naming the field and return -EINVAL. */
int rpc_params_check_keys(RpcCall *call, json_t *params, const char *const *allowed);
