/* SPDX-License-Identifier: MIT */
/* Change notification: temporary triggers on one connection call back into
 * the program for every VM, image, kernel and snapshot row that appears,
 * changes state or goes away, so whoever writes the row tells, whatever code
 * path wrote it. */
#include <errno.h>

#include "store-internal.h"

typedef struct Observer {
        StoreObserver fn;
        void *userdata;
} Observer;

static const char *arg_text(sqlite3_value *v) {
        return sqlite3_value_type(v) == SQLITE_NULL ? NULL : (const char *) sqlite3_value_text(v);
}

static void observe_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
        Observer *o = sqlite3_user_data(ctx);
        if (argc != 7)
                return;
        StoreEvent e = {
                .kind = arg_text(argv[0]),
                .event = arg_text(argv[1]),
                .id = arg_text(argv[2]),
                .name = arg_text(argv[3]),
                .old_state = arg_text(argv[4]),
                .new_state = arg_text(argv[5]),
                .reason = arg_text(argv[6]),
        };
        if (e.kind && e.event && e.id)
                o->fn(o->userdata, &e);
        sqlite3_result_null(ctx);
}

#define T(name, when, table, cond, args)                                                              \
        "CREATE TEMP TRIGGER IF NOT EXISTS banger_ev_" name " AFTER " when " ON main." table " " cond \
        " BEGIN SELECT banger_event(" args "); END;\n"

/* clang-format off */
static const char observe_sql[] =
        T("vm_ins", "INSERT", "vms", "",
          "'vm', 'created', NEW.id, NEW.name, NULL, NEW.state, NULL")
        T("vm_upd", "UPDATE OF state", "vms", "WHEN OLD.state IS NOT NEW.state",
          "'vm', 'state', NEW.id, NEW.name, OLD.state, NEW.state, NEW.last_error")
        T("vm_del", "DELETE", "vms", "",
          "'vm', 'deleted', OLD.id, OLD.name, OLD.state, NULL, NULL")
        T("img_ins", "INSERT", "images", "",
          "'image', 'created', NEW.id, NEW.name, NULL, NULL, NULL")
        T("img_del", "DELETE", "images", "",
          "'image', 'deleted', OLD.id, OLD.name, NULL, NULL, NULL")
        T("krn_ins", "INSERT", "kernels", "",
          "'kernel', 'created', NEW.id, NEW.name, NULL, NULL, NULL")
        T("krn_del", "DELETE", "kernels", "",
          "'kernel', 'deleted', OLD.id, OLD.name, NULL, NULL, NULL")
        T("snap_ins", "INSERT", "snapshots", "",
          "'snapshot', 'created', NEW.id, NEW.name, NULL, NEW.state, NULL")
        T("snap_upd", "UPDATE OF state", "snapshots", "WHEN OLD.state IS NOT NEW.state",
          "'snapshot', 'state', NEW.id, NEW.name, OLD.state, NEW.state, NULL")
        T("snap_del", "DELETE", "snapshots", "",
          "'snapshot', 'deleted', OLD.id, OLD.name, OLD.state, NULL, NULL");
/* clang-format on */

int store_observe(Store *s, StoreObserver fn, void *userdata) {
        if (s->readonly || !fn)
                return -EINVAL;
        Observer *o = sqlite3_malloc(sizeof(*o));
        if (!o)
                return -ENOMEM;
        *o = (Observer){ .fn = fn, .userdata = userdata };
        /* SQLite owns o from here: it is freed with the connection. */
        int rc = sqlite3_create_function_v2(s->db, "banger_event", 7, SQLITE_UTF8 | SQLITE_DIRECTONLY, o, observe_fn,
                                            NULL, NULL, sqlite3_free);
        if (rc != SQLITE_OK)
                return store_error(s, rc, "registering the change observer");
        rc = sqlite3_exec(s->db, observe_sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return store_error(s, rc, "creating the change triggers");
        return 0;
}
