/* SPDX-License-Identifier: MIT */
/* Host resource handles: the write-ahead list of what exists on the host. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store-internal.h"
#include "string-util.h"

static const char *const handle_kind_table[_STORE_HANDLE_KIND_MAX] = {
        [STORE_HANDLE_TAP] = "tap",   [STORE_HANDLE_LOOP] = "loop", [STORE_HANDLE_DM] = "dm",
        [STORE_HANDLE_FILE] = "file", [STORE_HANDLE_NFT] = "nft",
};

const char *store_handle_kind_to_string(StoreHandleKind k) {
        return k >= 0 && k < _STORE_HANDLE_KIND_MAX ? handle_kind_table[k] : NULL;
}

StoreHandleKind store_handle_kind_from_string(const char *s) {
        for (int i = 0; s && i < _STORE_HANDLE_KIND_MAX; i++)
                if (streq(handle_kind_table[i], s))
                        return (StoreHandleKind) i;
        return _STORE_HANDLE_KIND_INVALID;
}

static void handle_done(void *p) {
        StoreHandle *h = p;
        free(h->vm_id);
        free(h->name);
        free(h->detail);
        *h = (StoreHandle){};
}

void store_handle_array_free(StoreHandle *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                handle_done(&a[i]);
        free(a);
}

static int handle_from_row(sqlite3_stmt *st, void *ret) {
        StoreHandle *h = ret;
        h->id = sqlite3_column_int64(st, 0);
        h->kind = store_handle_kind_from_string((const char *) sqlite3_column_text(st, 2));
        h->created_at = (usec_t) sqlite3_column_int64(st, 5);
        if (store_column_strdup(st, 1, &h->vm_id) < 0 || store_column_strdup(st, 3, &h->name) < 0 ||
            store_column_strdup(st, 4, &h->detail) < 0) {
                handle_done(h);
                return -ENOMEM;
        }
        if (h->kind < 0) {
                handle_done(h);
                return error_setf(-EBADMSG, "host handle with unknown kind");
        }
        return 0;
}

static int handle_validate(const char *vm_id, StoreHandleKind kind, const char *name) {
        if (!store_handle_kind_to_string(kind))
                return error_setf(-EINVAL, "invalid host handle kind %d", (int) kind);
        if (!name || !*name || strlen(name) > 4096)
                return error_setf(-EINVAL, "invalid %s handle name", store_handle_kind_to_string(kind));
        return vm_id ? store_check_id(vm_id, "VM") : 0;
}

/* After a UNIQUE failure: who holds it already? */
static int handle_conflict(Store *s, const char *vm_id, StoreHandleKind kind, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const char *k = store_handle_kind_to_string(kind);
        int r = store_prepare(s, "SELECT vm_id FROM host_handles WHERE kind = ?1 AND name = ?2", &st);
        if (r >= 0)
                r = store_bind_text(s, st, 1, k);
        if (r >= 0)
                r = store_bind_text(s, st, 2, name);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) /* removed meanwhile: let the caller retry */
                return error_setf(-EAGAIN, "%s %s changed while being recorded", k, name);
        const char *holder = (const char *) sqlite3_column_text(st, 0);
        if (streq_ptr(holder, vm_id))
                return 0;
        return error_setf(-EEXIST, "%s %s is already recorded for %s%s", k, name, holder ? "VM " : "no VM",
                          holder ? holder : "");
}

int store_handle_add(Store *s, const char *vm_id, StoreHandleKind kind, const char *name, const char *detail) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = handle_validate(vm_id, kind, name);
        if (r < 0)
                return r;
        r = store_prepare(s,
                          "INSERT INTO host_handles (vm_id, kind, name, detail, created_at) "
                          "VALUES (?1, ?2, ?3, ?4, ?5)",
                          &st);
        if (r >= 0)
                r = store_bind_text(s, st, 1, vm_id);
        if (r >= 0)
                r = store_bind_text(s, st, 2, store_handle_kind_to_string(kind));
        if (r >= 0)
                r = store_bind_text(s, st, 3, name);
        if (r >= 0)
                r = store_bind_text(s, st, 4, detail);
        if (r >= 0)
                r = store_bind_int64(s, st, 5, (int64_t) now_realtime());
        if (r < 0)
                return r;
        r = store_step_done(s, st, "recording host handle");
        if (r == -EEXIST)
                return handle_conflict(s, vm_id, kind, name);
        if (r == -EBUSY)
                return error_setf(-ENOENT, "VM %s not found", vm_id);
        return r < 0 ? r : 1;
}

int store_handle_remove(Store *s, StoreHandleKind kind, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char what[128];
        const char *k = store_handle_kind_to_string(kind);
        if (!k)
                return error_setf(-EINVAL, "invalid host handle kind %d", (int) kind);
        int r = store_prepare(s, "DELETE FROM host_handles WHERE kind = ?1 AND name = ?2", &st);
        if (r >= 0)
                r = store_bind_text(s, st, 1, k);
        if (r >= 0)
                r = store_bind_text(s, st, 2, name);
        if (r >= 0)
                r = store_step_done(s, st, "removing host handle");
        if (r < 0)
                return r;
        snprintf(what, sizeof(what), "%s handle %s", k, name ? name : "");
        return store_check_changed(s, what);
}

#define HANDLE_SELECT "SELECT id, vm_id, kind, name, detail, created_at FROM host_handles "

static int handle_list(Store *s, const char *sql, const char *arg, StoreHandle **ret, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        void *a;
        size_t n;
        int r = store_prepare(s, sql, &st);
        if (r >= 0 && arg)
                r = store_bind_text(s, st, 1, arg);
        if (r >= 0)
                r = store_query_list(s, st, sizeof(StoreHandle), handle_from_row, handle_done,
                                     "listing host handles", &a, &n);
        if (r < 0)
                return r;
        *ret = a;
        *ret_n = n;
        return 0;
}

int store_handle_list(Store *s, StoreHandleKind kind, StoreHandle **ret, size_t *ret_n) {
        if (kind == _STORE_HANDLE_KIND_INVALID)
                return handle_list(s, HANDLE_SELECT "ORDER BY id", NULL, ret, ret_n);
        const char *k = store_handle_kind_to_string(kind);
        if (!k)
                return error_setf(-EINVAL, "invalid host handle kind %d", (int) kind);
        return handle_list(s, HANDLE_SELECT "WHERE kind = ?1 ORDER BY id", k, ret, ret_n);
}

int store_handle_list_vm(Store *s, const char *vm_id, StoreHandle **ret, size_t *ret_n) {
        int r = store_check_id(vm_id, "VM");
        if (r < 0)
                return r;
        return handle_list(s, HANDLE_SELECT "WHERE vm_id = ?1 ORDER BY id", vm_id, ret, ret_n);
}
