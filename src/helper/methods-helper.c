/* SPDX-License-Identifier: MIT */
/* helper.ping, reconcile and the method table lookup. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "banger-build.h"
#include "disk-reconcile.h"
#include "dm-snapshot.h"
#include "error.h"
#include "helper.h"
#include "log.h"
#include "loopdev.h"
#include "netlink.h"
#include "string-util.h"
#include "tap.h"

extern const HelperMethod helper_net_methods[];
extern const HelperMethod helper_disk_methods[];

static int method_ping(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = { {} };
        int r = params_check("helper.ping", params, fields);
        if (r < 0)
                return r;
        char ip[IPV4_STRLEN], net[IPV4_STRLEN];
        *ret = json_pack("{s:s, s:i, s:I, s:I, s:s, s:s, s:s, s:i, s:s, s:{s:I, s:I}}", "version", BANGER_VERSION,
                         "pid", (int) getpid(), "owner_uid", (json_int_t) h->owner_uid, "owner_gid",
                         (json_int_t) h->owner_gid, "state_dir", h->state_dir, "bridge", h->bridge, "bridge_ip",
                         ipv4_format(h->bridge_ip, ip), "prefixlen", (int) h->subnet.prefixlen, "network",
                         ipv4_format(h->subnet.network, net), "tap_pool", "size", (json_int_t) h->tap_pool.n, "target",
                         (json_int_t) h->tap_pool.target);
        return *ret ? 0 : -ENOMEM;
}

static bool strv_has(char **l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

typedef struct ReconcileState {
        const Helper *h;
        char **keep_files; /* state-relative */
        char **keep_dm;
        json_t *dms; /* dm devices reconcile tried to remove */
} ReconcileState;

static bool reconcile_owned(DiskHandleKind kind, const char *id, void *userdata) {
        ReconcileState *s = userdata;
        if (kind == DISK_HANDLE_DM) {
                if (strv_has(s->keep_dm, id))
                        return true;
                json_array_append_new(s->dms, json_string(id));
                return false;
        }
        const char *rel = startswith(id, s->h->state_dir);
        return rel && *rel == '/' && strv_has(s->keep_files, rel + 1);
}

/* The loops that were bound to managed files before and are gone after. */
static int reconcile_disks(ReconcileState *s, json_t **ret_loops) {
        LoopInfo *before = NULL, *after = NULL;
        size_t nb = 0, na = 0;
        int r = loop_list_beneath(s->h->state_dir, &before, &nb);
        if (r < 0)
                return error_setf(r, "reconcile: listing loop devices: %s", strerror(-r));
        int k = disk_reconcile(s->h->state_dir, reconcile_owned, s);
        r = loop_list_beneath(s->h->state_dir, &after, &na);
        json_t *loops = json_array();
        for (size_t i = 0; r >= 0 && loops && i < nb; i++) {
                bool gone = true;
                for (size_t j = 0; j < na && gone; j++)
                        gone = !streq(before[i].node, after[j].node) || !streq(before[i].backing, after[j].backing);
                if (gone)
                        json_array_append_new(
                                loops, json_pack("{s:s, s:s}", "device", before[i].node, "file", before[i].backing));
        }
        loop_info_free_many(before, nb);
        loop_info_free_many(after, na);
        *ret_loops = loops;
        if (k < 0)
                return error_last_message() ? k : error_setf(k, "reconcile: removing disks: %s", strerror(-k));
        if (r < 0)
                return error_setf(r, "reconcile: listing loop devices: %s", strerror(-r));
        return loops ? 0 : -ENOMEM;
}

static int check_keep_file(const char *p) {
        return check_state_path(p);
}

static int check_keep_dm(const char *p) {
        char b[48];
        if (!name_is_valid(p))
                return error_setf(-EINVAL, "reconcile: invalid dm name '%s' in keep_dm", shorten(p, b));
        return 0;
}

static int reconcile_taps(Helper *h, json_t *keep_json, json_t **ret_removed) {
        _cleanup_strv_free_ char **keep = NULL, **before = NULL, **after = NULL, **recorded = NULL;
        _cleanup_netlink_ Netlink *nl = NULL;
        TapScope scope;
        int r = params_strv(keep_json, "reconcile: keep_taps", check_tap_name, &keep);
        /* The daemon knows only its VMs' TAPs; the pool's are the helper's. */
        if (r >= 0)
                r = helper_pool_keep(h, &keep);
        if (r >= 0)
                r = helper_tap_scope(h, &scope, &recorded);
        if (r < 0 || (r = netlink_open(&nl)) < 0 || (r = tap_list(nl, &scope, &before)) < 0)
                return r;
        int k = tap_reconcile(nl, &scope, keep);
        if ((r = tap_list(nl, &scope, &after)) < 0)
                return r;
        json_t *removed = json_array();
        for (char **t = before; removed && *t; t++)
                if (!strv_has(after, *t)) {
                        json_array_append_new(removed, json_string(*t));
                        helper_taps_forget(h, *t);
                }
        *ret_removed = removed;
        if (k < 0)
                return error_last_message() ? k : error_setf(k, "reconcile: removing TAPs: %s", strerror(-k));
        return removed ? 0 : -ENOMEM;
}

static int method_reconcile(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = {
                { "keep_taps", FIELD_ARRAY, true }, { "keep_files", FIELD_ARRAY, true }, { "keep_dm", FIELD_ARRAY }, {}
        };
        _cleanup_strv_free_ char **keep_files = NULL, **keep_dm = NULL;
        json_t *empty = json_array();
        int r = params_check("reconcile", params, fields);
        if (r >= 0)
                r = params_strv(json_object_get(params, "keep_files"), "reconcile: keep_files", check_keep_file,
                                &keep_files);
        if (r >= 0) {
                json_t *kd = json_object_get(params, "keep_dm");
                r = params_strv(kd ? kd : empty, "reconcile: keep_dm", check_keep_dm, &keep_dm);
        }
        json_decref(empty);
        if (r < 0)
                return r;
        json_t *taps = NULL;
        r = reconcile_taps(h, json_object_get(params, "keep_taps"), &taps);
        if (r < 0) {
                json_decref(taps);
                return r;
        }
        ReconcileState s = { .h = h, .keep_files = keep_files, .keep_dm = keep_dm, .dms = json_array() };
        json_t *loops = NULL;
        r = reconcile_disks(&s, &loops);
        log_info("reconcile: removed %zu TAP(s), %zu loop(s), %zu dm device(s)", json_array_size(taps),
                 json_array_size(loops), json_array_size(s.dms));
        json_t *result = json_pack("{s:o, s:o*, s:o}", "taps", taps, "loops", loops, "dm", s.dms);
        if (r < 0) {
                json_decref(result);
                return r;
        }
        *ret = result;
        return result ? 0 : -ENOMEM;
}

static const HelperMethod helper_own_methods[] = {
        { "helper.ping", method_ping },
        { "reconcile", method_reconcile },
        {},
};

const HelperMethod *helper_method_find(const char *name) {
        const HelperMethod *tables[] = { helper_own_methods, helper_net_methods, helper_disk_methods };
        for (size_t t = 0; t < ELEMENTSOF(tables); t++)
                for (const HelperMethod *m = tables[t]; m->name; m++)
                        if (streq(m->name, name))
                                return m;
        return NULL;
}
