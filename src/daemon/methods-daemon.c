/* SPDX-License-Identifier: MIT */
/* daemon.*: liveness, status and shutdown. */
#include <unistd.h>

#include "banger-build.h"
#include "daemon.h"
#include "methods.h"
#include "log.h"
#include "server.h"
#include "store.h"

static int method_ping(Daemon *d, RpcCall *call, void *args) {
        rpc_call_reply(call,
                       json_pack("{s:b, s:s, s:s}", "pong", 1, "version", BANGER_VERSION, "commit", BANGER_COMMIT));
        return 0;
}

static json_t *counts_json(Daemon *d) {
        StoreCounts c;
        if (store_counts(d->store, &c) < 0)
                return json_null();
        json_t *by_state = json_object();
        for (int s = 0; s < _VM_STATE_MAX; s++)
                json_object_set_new(by_state, vm_state_to_string((VmState) s), json_integer(c.vms_by_state[s]));
        return json_pack("{s:i, s:o, s:i, s:i}", "vms", (int) c.vms, "vms_by_state", by_state, "images", (int) c.images,
                         "kernels", (int) c.kernels);
}

static int method_status(Daemon *d, RpcCall *call, void *args) {
        unsigned schema = 0;
        (void) store_schema_version(d->store, &schema);
        usec_t up = now_monotonic() - d->started_at;
        json_t *r = json_pack("{s:i, s:s, s:s, s:f, s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:i, s:b}", "pid",
                              (int) getpid(), "version", BANGER_VERSION, "commit", BANGER_COMMIT, "uptime_sec",
                              (double) up / USEC_PER_SEC, "mode", d->paths.system ? "system" : "user",
                              "socket_activated", server_socket_activated(d->server), "socket", d->paths.socket_path,
                              "runtime_dir", d->paths.runtime_dir, "state_dir", d->paths.state_dir, "database",
                              d->paths.db_path, "log_file", d->paths.log_path, "schema_version", (int) schema,
                              "schema_latest", (int) store_latest_version(), "counts", counts_json(d), "connections",
                              (int) server_connections(d->server), "shutting_down", d->shutting_down);
        rpc_call_reply(call, r);
        return 0;
}

static int method_shutdown(Daemon *d, RpcCall *call, void *args) {
        log_info("shutdown requested over RPC");
        d->shutting_down = true;
        rpc_call_reply(call, json_pack("{s:b}", "stopping", 1));
        /* The reply is flushed before the loop looks at the exit request. */
        return sd_event_exit(d->event, 0);
}

const RpcMethod daemon_methods[] = {
        { "daemon.ping", .run = method_ping },
        { "daemon.status", .run = method_status },
        { "daemon.shutdown", .run = method_shutdown },
        {},
};
