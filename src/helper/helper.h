/* SPDX-License-Identifier: MIT */
#pragma once

/* bangerd-root: the privileged helper. It holds the only root privileges
 * banger uses and exposes them through a small fixed method table over a
 * Unix socket that only root and the owner can reach. Every argument is
 * validated against the helper's own configuration (owner, state directory,
 * bridge, CIDR) before anything touches the host. */

#include <jansson.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "firewall.h"
#include "ipv4-subnet.h"
#include "macro.h"
#include "tap.h"

#define HELPER_MAX_REQUEST (64 * 1024)
#define HELPER_MAX_DEPTH 8
#define HELPER_REQUEST_TIMEOUT_SEC 10
/* Open connections per uid: the owner (its daemon's workers) and root each
 * have their own budget, so an owner holding all of its connections never
 * locks root out. */
#define HELPER_MAX_OWNER_CONNECTIONS 32
#define HELPER_MAX_ROOT_CONNECTIONS 8
/* Range of --max-taps/max_taps and --max-loops/max_loop_devices. */
#define HELPER_MAX_TAPS_LIMIT 4096
#define HELPER_MAX_LOOPS_LIMIT 4096
/* Bounds on client-supplied lists (entries in nat.apply, keep lists). */
#define HELPER_MAX_LIST 4096

typedef struct HelperLoop {
        int nr; /* /dev/loop<nr> */
        dev_t dev;
        ino_t ino;
} HelperLoop;

typedef struct Helper {
        uid_t owner_uid;
        gid_t owner_gid;

        char *state_dir; /* canonical absolute path of state_fd */
        int state_fd;

        char *socket_path;
        int socket_dir_fd;
        const char *socket_name; /* points into socket_path */
        int listen_fd;

        Ipv4Subnet subnet;
        struct in_addr bridge_ip;
        char bridge[IFNAMSIZ];
        char nft_table[FIREWALL_TABLE_MAX]; /* named from the bridge */
        char *uplink;                       /* NULL: the interface of the default route */
        uint16_t dns_port;

        sd_event *event;
        sd_event_source *listen_source;
        unsigned n_conn_root, n_conn_owner;

        /* TAPs made in advance (tap_pool_size); they live only as long as
         * this process: drained on exit, removed by reconcile after a crash. */
        TapPool tap_pool;
        sd_event_source *pool_refill; /* idle-priority, oneshot */

        /* TAPs this process made with tap.create and has not deleted. */
        char **taps_made;
        /* Loop devices loop.attach made, by backing inode: still counted
         * against max_loops when their file is renamed out of the state
         * directory. Pruned when a device is detached or rebound. */
        HelperLoop *loops_made;
        size_t n_loops_made;

        unsigned max_taps;  /* TAPs owned by the owner, pooled ones included */
        unsigned max_loops; /* loop devices over the owner's files */
} Helper;

/* A method validates its params (an object) and returns 0 with *ret_result
 * (a new object) or -errno with the reason recorded through error_setf(). */
typedef int (*HelperMethodFn)(Helper *h, json_t *params, json_t **ret_result);

typedef struct HelperMethod {
        const char *name;
        HelperMethodFn fn;
} HelperMethod;

const HelperMethod *helper_method_find(const char *name);

/* helper-server.c */
int helper_listen(Helper *h);
void helper_unlisten(Helper *h);

/* helper-params.c: strict parameter checking. */
typedef enum HelperFieldType {
        FIELD_STRING,
        FIELD_BOOL,
        FIELD_UINT,
        FIELD_ARRAY,
} HelperFieldType;

typedef struct HelperField {
        const char *name;
        HelperFieldType type;
        bool required;
} HelperField;

/* One request's bytes: a JSON object of at most HELPER_MAX_DEPTH levels, with
 * no duplicate keys, and nothing after it. */
int helper_request_parse(const char *buf, size_t len, json_t **ret);

/* Reject unknown fields, missing required ones and wrong types. fields is
 * terminated by an entry with name NULL. */
int params_check(const char *method, json_t *params, const HelperField *fields);
const char *params_string(json_t *params, const char *name); /* NULL when absent */

/* A printable, length-limited copy of client text for error messages. */
const char *shorten(const char *s, char buf[static 48]);

int check_tap_name(const char *name);
int check_bridge_name(const Helper *h, const char *name);
/* A guest address: inside the CIDR, not network/broadcast, not the bridge. */
int check_guest_ip(const Helper *h, const char *s, struct in_addr *ret);
/* Open relpath beneath the state directory as a regular file owned by the
 * owner (O_PATH first, so nothing is opened that fails the checks; then
 * reopened with flags). */
int open_state_file(const Helper *h, const char *relpath, int flags);
/* Validate a state-relative path syntactically and map open errors. */
int check_state_path(const char *relpath);
int map_open_error(int r, const char *relpath);
/* A list of strings each passing check (NULL: any); returns a strv. */
int params_strv(json_t *array, const char *what, int (*check)(const char *), char ***ret);

/* helper-pool.c: the TAP pool. */
int helper_pool_setup(Helper *h);
/* Refill later, at idle priority, so the reply that used a TAP goes first. */
void helper_pool_schedule_refill(Helper *h);
/* A pooled TAP renamed to name, owned by the owner, enslaved and up;
 * -EAGAIN when the pool is empty or the TAP could not be adopted (it is
 * then deleted): the caller creates one from scratch. */
int helper_pool_take_as(Helper *h, Netlink *nl, const char *name);
/* Names the pool holds, for reconcile to keep (appended to *keep). */
int helper_pool_keep(const Helper *h, char ***keep);
void helper_pool_done(Helper *h);

/* helper-taps.c: the TAPs this helper may act on (TapScope). */
int helper_taps_record(Helper *h, const char *name);
void helper_taps_forget(Helper *h, const char *name);
/* The scope for tap_list/tap_delete_scoped/tap_reconcile; *storage holds
 * the recorded names and must be freed after use. */
int helper_tap_scope(const Helper *h, TapScope *ret, char ***storage);

/* Refuse a new TAP when the owner already holds max_taps of them (pooled
 * ones included); -EDQUOT with the reason. */
int helper_taps_check_room(const Helper *h, Netlink *nl);
/* How many more TAPs the owner may have (0 when at the limit). */
int helper_taps_room(const Helper *h, Netlink *nl, size_t *ret);

/* helper-loops.c: one loop device per file, at most max_loops per owner. */
/* -EBUSY when fd's file is bound to a loop device already. */
int helper_loops_check_unattached(const Helper *h, int fd, const char *relpath);
/* -EDQUOT when n more loop devices would exceed max_loops. */
int helper_loops_check_room(Helper *h, unsigned n);
int helper_loops_record(Helper *h, int nr, int backing_fd);
void helper_loops_done(Helper *h);

/* main.c helpers shared with the server */
const char *errno_name(int r);
