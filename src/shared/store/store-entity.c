/* SPDX-License-Identifier: MIT */
/* What images, kernels and snapshots share: all are "named, id'd, listed,
 * deleted unless referenced", so their lookups and writes go through one small
 * descriptor (StoreEntity in store-internal.h). */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store-internal.h"
#include "string-util.h"

int store_entity_get(Store *s, const StoreEntity *e, const char *where, const char *arg, void *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sql = NULL;
        /* Room for any entity's record, so ret is written only on success. */
        union {
                KernelRecord k;
                ImageRecord i;
                SnapshotRecord n;
        } tmp = {};
        char what[96];

        assert(e->size <= sizeof(tmp));

        if (asprintf(&sql, "%s%s", e->select, where) < 0)
                return -ENOMEM;
        snprintf(what, sizeof(what), "%s \"%s\"", e->label, arg ? arg : "");
        int q = store_prepare(s, sql, &st);
        if (q >= 0)
                q = store_bind_text(s, st, 1, arg);
        if (q >= 0)
                q = store_query_one(s, st, e->row, what, &tmp);
        if (q < 0)
                return q;
        memcpy(ret, &tmp, e->size);
        return 0;
}

int store_entity_list(Store *s, const StoreEntity *e, const char *where, const char *arg, void **ret, size_t *ret_n) {
        void *a;
        size_t n;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sql = NULL;
        char what[64];

        if (asprintf(&sql, "%s%s", e->select, where) < 0)
                return -ENOMEM;
        snprintf(what, sizeof(what), "listing %ss", e->label);
        int q = store_prepare(s, sql, &st);
        if (q >= 0 && arg)
                q = store_bind_text(s, st, 1, arg);
        if (q >= 0)
                q = store_query_list(s, st, e->size, e->row, e->done, what, &a, &n);
        if (q < 0)
                return q;
        *ret = a;
        *ret_n = n;
        return 0;
}

int store_entity_find_by_prefix(Store *s, const StoreEntity *e, const char *prefix, void **ret, size_t *ret_n) {
        if (!store_prefix_is_valid(prefix)) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        return store_entity_list(s, e, "WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id", prefix, ret, ret_n);
}

/* Run a prepared write; map constraint failures to sentences. */
int store_entity_write(Store *s, const StoreEntity *e, sqlite3_stmt *st, const char *id, const char *name,
                       bool update) {
        int q = store_step_done(s, st, update ? "updating" : "inserting");
        if (q == -EEXIST) {
                if (streq(store_failed_column(s), "name"))
                        return error_setf(q, "%s name \"%s\" is already in use", e->label, name);
                return error_setf(q, "%s id %s already exists", e->label, id);
        }
        if (q == -EBUSY) /* only images reference anything: their kernel */
                return error_setf(-ENOENT, "%s \"%s\": its kernel does not exist", e->label, name);
        if (q < 0)
                return q;
        if (update) {
                char what[96];
                snprintf(what, sizeof(what), "%s %s", e->label, id);
                return store_check_changed(s, what);
        }
        return 0;
}

/* "kernel k1 is still in use by image(s) debian": the record and its users
 * named as the user knows them (the id only when the name cannot be read). */
static int refuse_in_use(Store *s, const StoreEntity *e, const char *table, const char *id, const char *users_sql) {
        _cleanup_stmt_ sqlite3_stmt *users = NULL, *named = NULL;
        _cleanup_free_ char *sql = NULL;
        const char *name = id;
        if (asprintf(&sql, "SELECT name FROM %s WHERE id = ?1", table) >= 0 && store_prepare(s, sql, &named) >= 0 &&
            store_bind_text(s, named, 1, id) >= 0 && sqlite3_step(named) == SQLITE_ROW && sqlite3_column_text(named, 0))
                name = (const char *) sqlite3_column_text(named, 0);
        if (store_prepare(s, users_sql, &users) >= 0 && store_bind_text(s, users, 1, id) >= 0 &&
            sqlite3_step(users) == SQLITE_ROW)
                return error_setf(-EBUSY, "%s %s is still in use by %s", e->label, name,
                                  (const char *) sqlite3_column_text(users, 0));
        return error_setf(-EBUSY, "%s %s is still in use", e->label, name);
}

/* Delete by id; when a RESTRICT key refuses, name who still uses it. */
int store_entity_delete(Store *s, const StoreEntity *e, const char *table, const char *id, const char *users_sql) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sql = NULL;
        char what[96];

        if (asprintf(&sql, "DELETE FROM %s WHERE id = ?1", table) < 0)
                return -ENOMEM;
        int q = store_prepare(s, sql, &st);
        if (q >= 0)
                q = store_bind_text(s, st, 1, id);
        if (q >= 0)
                q = store_step_done(s, st, "deleting");
        if (q == -EBUSY)
                return refuse_in_use(s, e, table, id, users_sql);
        if (q < 0)
                return q;
        snprintf(what, sizeof(what), "%s %s", e->label, id);
        return store_check_changed(s, what);
}
