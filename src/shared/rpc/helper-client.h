/* SPDX-License-Identifier: MIT */
#pragma once

/* Client of bangerd-root, banger's privileged helper. One call is one
 * connection: the request {"method", "params"} is written, the write side
 * shut down, and one reply read: {"ok":true,"result":{...}} or
 * {"ok":false,"error":"sentence","errno":"EINVAL"}. A refusal comes back as
 * the matching -errno with the helper's sentence recorded via error_setf(),
 * so the daemon can hand it to the user unchanged.
 *
 * The helper acts only inside its own configuration: the bridge, CIDR,
 * owner and state directory it was started with. Paths are relative to its
 * state directory. */

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "spawn.h"
#include "time-util.h"

#define HELPER_SYSTEM_SOCKET "/run/banger-root/bangerd-root.sock"
#define HELPER_BINARY_NAME "bangerd-root"
#define HELPER_CALL_TIMEOUT (30 * USEC_PER_SEC)
#define HELPER_MAX_REPLY (4 * 1024 * 1024)

/* Call method with params (an object, stolen; NULL: none). Returns 0 and
 * *ret_result (new reference; may be NULL to discard), or -errno: the
 * helper's refusal, -ENOENT/-ECONNREFUSED when no helper listens, -ETIMEDOUT,
 * -EBADMSG for a reply that is not the helper's protocol. */
int helper_call(const char *socket_path, const char *method, json_t *params, usec_t timeout, json_t **ret_result);

/* helper.ping: the helper's version, pid and configuration. */
int helper_ping(const char *socket_path, usec_t timeout, json_t **ret_info);

/* Typed wrappers (timeout HELPER_CALL_TIMEOUT). */
int helper_bridge_ensure(const char *socket_path, bool *ret_created);
int helper_tap_create(const char *socket_path, const char *name);
int helper_tap_delete(const char *socket_path, const char *name);
int helper_tap_list(const char *socket_path, char ***ret);
/* One VM's NAT: its address and its TAP (the wire form of the helper's
 * nat.apply entries; the helper turns them into firewall rules). */
typedef struct HelperNatEntry {
        struct in_addr guest;
        const char *tap;
} HelperNatEntry;

/* Replace banger's NAT table with these entries (n == 0 removes it). */
int helper_nat_apply(const char *socket_path, const HelperNatEntry *entries, size_t n);
int helper_loop_attach(const char *socket_path, const char *relpath, bool read_only, char **ret_device);
int helper_loop_detach(const char *socket_path, const char *device);
int helper_dm_snapshot_create(const char *socket_path, const char *dm_name, const char *base_relpath,
                              const char *cow_relpath, char **ret_device);
int helper_dm_snapshot_remove(const char *socket_path, const char *dm_name);
/* -EOPNOTSUPP when systemd-resolved is not running. */
int helper_resolved_configure(const char *socket_path);
/* Remove banger TAPs not in keep_taps and loop/dm devices backed by managed
 * files not in keep_files / keep_dm (NULL-terminated strv, NULL: empty).
 * *ret_removed (may be NULL) gets {"taps":[..], "loops":[{device,file}],
 * "dm":[..]}. */
int helper_reconcile(const char *socket_path, char *const *keep_taps, char *const *keep_files,
                     char *const *keep_dm, json_t **ret_removed);

typedef struct HelperSpawnOptions {
        const char *binary;      /* NULL: next to the running program, then the libexec dir */
        const char *socket_path; /* required */
        const char *state_dir;   /* required, absolute */
        uid_t owner_uid;
        gid_t owner_gid;
        const char *cidr;        /* NULL: the helper's default (172.16.0.0/24) */
        const char *bridge;      /* NULL: br-fc */
        const char *bridge_ip;   /* NULL: first host of the CIDR */
        const char *uplink;      /* NULL: the default route's interface */
        unsigned dns_port;       /* 0: the helper's default */
        unsigned tap_pool;       /* TAPs kept ready (--tap-pool); 0: none */
        int log_fd;              /* the helper's stderr; < 0: /dev/null */
        usec_t timeout;          /* readiness deadline; 0: 10 s */
} HelperSpawnOptions;

/* For a daemon running as root (development, tests): make sure a helper
 * answers on o->socket_path. When one already answers (a previous daemon's,
 * or the system service) and serves the same owner, it is reused: returns 0
 * with *ret = PROCESS_NULL. Otherwise starts bangerd-root in its own session
 * (so a terminal's Ctrl-C aimed at the daemon cannot kill it half way
 * through a request; the daemon stops it with SIGTERM, or restarts it when a
 * call finds it missing), waits until it answers helper.ping, and returns 1
 * with its {pid, pidfd}. A helper that exits before answering gives -ECHILD
 * with its exit status in the message. */
int helper_spawn(const HelperSpawnOptions *o, Process *ret);

/* Where helper_spawn() looks for bangerd-root; newly allocated. */
char *helper_find_binary(void);
