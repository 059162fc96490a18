/* SPDX-License-Identifier: MIT */
/* Kernel records. */
#include <errno.h>
#include <stdlib.h>

#include "error.h"
#include "store-internal.h"

void kernel_record_done(KernelRecord *r) {
        if (!r)
                return;
        free(r->id);
        free(r->name);
        free(r->version);
        free(r->kernel_path);
        free(r->initrd_path);
        free(r->modules_path);
        free(r->elf_path);
        free(r->sha256);
        *r = (KernelRecord){};
}

void kernel_record_array_free(KernelRecord *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                kernel_record_done(&a[i]);
        free(a);
}

static void kernel_done_void(void *p) {
        kernel_record_done(p);
}

#define KERNEL_COLUMNS "id, name, version, kernel_path, initrd_path, modules_path, elf_path, sha256, size, created_at"

static int kernel_from_row(sqlite3_stmt *st, void *ret) {
        KernelRecord *k = ret;
        char **const fields[] = { &k->id,          &k->name,         &k->version,  &k->kernel_path,
                                  &k->initrd_path, &k->modules_path, &k->elf_path, &k->sha256 };
        if (store_columns_strdup(st, fields, ELEMENTSOF(fields)) < 0) {
                kernel_record_done(k);
                return -ENOMEM;
        }
        k->size = (uint64_t) sqlite3_column_int64(st, 8);
        k->created_at = (usec_t) sqlite3_column_int64(st, 9);
        return 0;
}

static const StoreEntity kernel_entity = {
        .label = "kernel",
        .select = "SELECT " KERNEL_COLUMNS " FROM kernels ",
        .size = sizeof(KernelRecord),
        .row = kernel_from_row,
        .done = kernel_done_void,
};

static int kernel_validate(const KernelRecord *r) {
        int q = store_check_id(r->id, "kernel");
        if (q >= 0)
                q = store_check_name(r->name, "kernel");
        if (q >= 0 && (!r->kernel_path || r->kernel_path[0] != '/'))
                q = error_setf(-EINVAL, "kernel \"%s\": kernel path must be absolute", r->name);
        if (q >= 0 && r->size > INT64_MAX)
                q = error_setf(-EINVAL, "kernel \"%s\": size out of range", r->name);
        return q;
}

/* An UPDATE has no ?10: created_at never changes. */
static int kernel_bind(Store *s, sqlite3_stmt *st, const KernelRecord *r, bool update) {
        const char *v[] = { r->id,          r->name,         r->version,  r->kernel_path,
                            r->initrd_path, r->modules_path, r->elf_path, r->sha256 };
        static const bool is_text[] = { 1, 1, 1, 1, 1, 1, 1, 1 };
        int q = store_bind_texts(s, st, v, is_text, ELEMENTSOF(v));
        if (q >= 0)
                q = store_bind_int64(s, st, 9, (int64_t) r->size);
        if (q >= 0 && !update)
                q = store_bind_int64(s, st, 10, (int64_t) r->created_at);
        return q;
}

static int kernel_write(Store *s, const KernelRecord *r, const char *sql, bool update) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int q = kernel_validate(r);
        if (q >= 0)
                q = store_prepare(s, sql, &st);
        if (q >= 0)
                q = kernel_bind(s, st, r, update);
        if (q >= 0)
                q = store_entity_write(s, &kernel_entity, st, r->id, r->name, update);
        return q;
}

int store_kernel_insert(Store *s, KernelRecord *r) {
        usec_t saved = r->created_at;
        if (!r->created_at)
                r->created_at = now_realtime();
        int q = kernel_write(
                s, r, "INSERT INTO kernels (" KERNEL_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                false);
        if (q < 0)
                r->created_at = saved;
        return q;
}

int store_kernel_update(Store *s, const KernelRecord *r) {
        return kernel_write(s, r,
                            "UPDATE kernels SET name = ?2, version = ?3, kernel_path = ?4, initrd_path = ?5, "
                            "modules_path = ?6, elf_path = ?7, sha256 = ?8, size = ?9 WHERE id = ?1",
                            true);
}

int store_kernel_get_by_id(Store *s, const char *id, KernelRecord *ret) {
        return store_entity_get(s, &kernel_entity, "WHERE id = ?1", id, ret);
}

int store_kernel_get_by_name(Store *s, const char *name, KernelRecord *ret) {
        return store_entity_get(s, &kernel_entity, "WHERE name = ?1", name, ret);
}

int store_kernel_find_by_prefix(Store *s, const char *prefix, KernelRecord **ret, size_t *ret_n) {
        void *a;
        int q = store_entity_find_by_prefix(s, &kernel_entity, prefix, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_kernel_list(Store *s, KernelRecord **ret, size_t *ret_n) {
        void *a;
        int q = store_entity_list(s, &kernel_entity, "ORDER BY created_at, id", NULL, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_kernel_delete(Store *s, const char *id) {
        return store_entity_delete(s, &kernel_entity, "kernels", id,
                                   "SELECT trim(coalesce('image(s) ' || (SELECT group_concat(name, ', ') FROM images "
                                   "WHERE kernel_id = ?1), '') || ' ' || coalesce('VM(s) ' || (SELECT "
                                   "group_concat(name, ', ') FROM vms WHERE kernel_id = ?1), '') || ' ' || "
                                   "coalesce('snapshot(s) ' || (SELECT group_concat(name, ', ') FROM snapshots "
                                   "WHERE kernel_id = ?1), ''))");
}
