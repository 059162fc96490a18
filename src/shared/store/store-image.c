/* SPDX-License-Identifier: MIT */
/* Image and kernel records. Both are "named, id'd, listed, deleted unless
 * referenced", so lookups go through one small descriptor. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store-internal.h"
#include "string-util.h"

typedef struct Entity {
        const char *label;  /* "image" */
        const char *select; /* "SELECT <columns> FROM <table> " */
        size_t size;
        StoreRowFn row;
        StoreDoneFn done;
} Entity;

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

void image_record_done(ImageRecord *r) {
        if (!r)
                return;
        free(r->id);
        free(r->name);
        free(r->kernel_id);
        free(r->rootfs_path);
        free(r->work_seed_path);
        free(r->sha256);
        free(r->source);
        *r = (ImageRecord){};
}

void image_record_array_free(ImageRecord *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                image_record_done(&a[i]);
        free(a);
}

static void kernel_done_void(void *p) {
        kernel_record_done(p);
}
static void image_done_void(void *p) {
        image_record_done(p);
}

/* Read text columns 0..n-1 into the given fields (NULL slots skipped). */
static int columns_strdup(sqlite3_stmt *st, char **const *fields, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (fields[i] && store_column_strdup(st, (int) i, fields[i]) < 0)
                        return -ENOMEM;
        return 0;
}

/* Bind parameters 1..n from strings (NULL slots left unbound for numbers). */
static int bind_texts(Store *s, sqlite3_stmt *st, const char *const *v, const bool *is_text, size_t n) {
        int q = 0;
        for (size_t i = 0; q >= 0 && i < n; i++)
                if (is_text[i])
                        q = store_bind_text(s, st, (int) i + 1, v[i]);
        return q;
}

#define KERNEL_COLUMNS \
        "id, name, version, kernel_path, initrd_path, modules_path, elf_path, sha256, size, created_at"

static int kernel_from_row(sqlite3_stmt *st, void *ret) {
        KernelRecord *k = ret;
        char **const fields[] = { &k->id,      &k->name,     &k->version, &k->kernel_path,
                                  &k->initrd_path, &k->modules_path, &k->elf_path, &k->sha256 };
        if (columns_strdup(st, fields, ELEMENTSOF(fields)) < 0) {
                kernel_record_done(k);
                return -ENOMEM;
        }
        k->size = (uint64_t) sqlite3_column_int64(st, 8);
        k->created_at = (usec_t) sqlite3_column_int64(st, 9);
        return 0;
}

#define IMAGE_COLUMNS \
        "id, name, kernel_id, rootfs_path, work_seed_path, managed, size, sha256, source, created_at"

static int image_from_row(sqlite3_stmt *st, void *ret) {
        ImageRecord *i = ret;
        char **const fields[] = { &i->id, &i->name, &i->kernel_id, &i->rootfs_path, &i->work_seed_path,
                                  NULL,   NULL,     &i->sha256,    &i->source };
        if (columns_strdup(st, fields, ELEMENTSOF(fields)) < 0) {
                image_record_done(i);
                return -ENOMEM;
        }
        i->managed = sqlite3_column_int64(st, 5) != 0;
        i->size = (uint64_t) sqlite3_column_int64(st, 6);
        i->created_at = (usec_t) sqlite3_column_int64(st, 9);
        return 0;
}

static const Entity kernel_entity = {
        .label = "kernel",
        .select = "SELECT " KERNEL_COLUMNS " FROM kernels ",
        .size = sizeof(KernelRecord),
        .row = kernel_from_row,
        .done = kernel_done_void,
};

static const Entity image_entity = {
        .label = "image",
        .select = "SELECT " IMAGE_COLUMNS " FROM images ",
        .size = sizeof(ImageRecord),
        .row = image_from_row,
        .done = image_done_void,
};

static int entity_get(Store *s, const Entity *e, const char *where, const char *arg, void *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sql = NULL;
        union {
                KernelRecord k;
                ImageRecord i;
        } tmp = {};
        char what[96];

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

static int entity_list(Store *s, const Entity *e, const char *where, const char *arg, void **ret,
                       size_t *ret_n) {
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

static int entity_find_by_prefix(Store *s, const Entity *e, const char *prefix, void **ret, size_t *ret_n) {
        if (!store_prefix_is_valid(prefix)) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        return entity_list(s, e, "WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id", prefix, ret, ret_n);
}

/* Run a prepared write; map constraint failures to sentences. */
static int entity_write(Store *s, const Entity *e, sqlite3_stmt *st, const char *id, const char *name,
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

/* Delete by id; when a RESTRICT key refuses, name who still uses it. */
static int entity_delete(Store *s, const Entity *e, const char *table, const char *id, const char *users_sql) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *users = NULL;
        _cleanup_free_ char *sql = NULL;
        char what[96];

        if (asprintf(&sql, "DELETE FROM %s WHERE id = ?1", table) < 0)
                return -ENOMEM;
        int q = store_prepare(s, sql, &st);
        if (q >= 0)
                q = store_bind_text(s, st, 1, id);
        if (q >= 0)
                q = store_step_done(s, st, "deleting");
        if (q == -EBUSY && store_prepare(s, users_sql, &users) >= 0 && store_bind_text(s, users, 1, id) >= 0 &&
            sqlite3_step(users) == SQLITE_ROW)
                return error_setf(q, "%s %s is still in use by %s", e->label, id,
                                  (const char *) sqlite3_column_text(users, 0));
        if (q < 0)
                return q;
        snprintf(what, sizeof(what), "%s %s", e->label, id);
        return store_check_changed(s, what);
}

/* ---- kernels ---- */

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
        const char *v[] = { r->id,       r->name,         r->version, r->kernel_path,
                            r->initrd_path, r->modules_path, r->elf_path, r->sha256 };
        static const bool is_text[] = { 1, 1, 1, 1, 1, 1, 1, 1 };
        int q = bind_texts(s, st, v, is_text, ELEMENTSOF(v));
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
                q = entity_write(s, &kernel_entity, st, r->id, r->name, update);
        return q;
}

int store_kernel_insert(Store *s, KernelRecord *r) {
        usec_t saved = r->created_at;
        if (!r->created_at)
                r->created_at = now_realtime();
        int q = kernel_write(s, r,
                             "INSERT INTO kernels (" KERNEL_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
        return entity_get(s, &kernel_entity, "WHERE id = ?1", id, ret);
}

int store_kernel_get_by_name(Store *s, const char *name, KernelRecord *ret) {
        return entity_get(s, &kernel_entity, "WHERE name = ?1", name, ret);
}

int store_kernel_find_by_prefix(Store *s, const char *prefix, KernelRecord **ret, size_t *ret_n) {
        void *a;
        int q = entity_find_by_prefix(s, &kernel_entity, prefix, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_kernel_list(Store *s, KernelRecord **ret, size_t *ret_n) {
        void *a;
        int q = entity_list(s, &kernel_entity, "ORDER BY created_at, id", NULL, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_kernel_delete(Store *s, const char *id) {
        return entity_delete(s, &kernel_entity, "kernels", id,
                             "SELECT trim(coalesce('image(s) ' || (SELECT group_concat(name, ', ') FROM images "
                             "WHERE kernel_id = ?1), '') || ' ' || coalesce('VM(s) ' || (SELECT "
                             "group_concat(name, ', ') FROM vms WHERE kernel_id = ?1), ''))");
}

/* ---- images ---- */

static int image_validate(const ImageRecord *r) {
        int q = store_check_id(r->id, "image");
        if (q >= 0)
                q = store_check_name(r->name, "image");
        if (q >= 0 && r->kernel_id)
                q = store_check_id(r->kernel_id, "kernel");
        if (q >= 0 && (!r->rootfs_path || r->rootfs_path[0] != '/'))
                q = error_setf(-EINVAL, "image \"%s\": rootfs path must be absolute", r->name);
        if (q >= 0 && r->size > INT64_MAX)
                q = error_setf(-EINVAL, "image \"%s\": size out of range", r->name);
        return q;
}

/* An UPDATE has no ?10: created_at never changes. */
static int image_bind(Store *s, sqlite3_stmt *st, const ImageRecord *r, bool update) {
        const char *v[] = { r->id, r->name, r->kernel_id, r->rootfs_path, r->work_seed_path,
                            NULL,  NULL,    r->sha256,    r->source };
        static const bool is_text[] = { 1, 1, 1, 1, 1, 0, 0, 1, 1 };
        int q = bind_texts(s, st, v, is_text, ELEMENTSOF(v));
        if (q >= 0)
                q = store_bind_int64(s, st, 6, r->managed);
        if (q >= 0)
                q = store_bind_int64(s, st, 7, (int64_t) r->size);
        if (q >= 0 && !update)
                q = store_bind_int64(s, st, 10, (int64_t) r->created_at);
        return q;
}

static int image_write(Store *s, const ImageRecord *r, const char *sql, bool update) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int q = image_validate(r);
        if (q >= 0)
                q = store_prepare(s, sql, &st);
        if (q >= 0)
                q = image_bind(s, st, r, update);
        if (q >= 0)
                q = entity_write(s, &image_entity, st, r->id, r->name, update);
        return q;
}

int store_image_insert(Store *s, ImageRecord *r) {
        usec_t saved = r->created_at;
        if (!r->created_at)
                r->created_at = now_realtime();
        int q = image_write(s, r,
                            "INSERT INTO images (" IMAGE_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                            false);
        if (q < 0)
                r->created_at = saved;
        return q;
}

int store_image_update(Store *s, const ImageRecord *r) {
        return image_write(s, r,
                           "UPDATE images SET name = ?2, kernel_id = ?3, rootfs_path = ?4, work_seed_path = ?5, "
                           "managed = ?6, size = ?7, sha256 = ?8, source = ?9 WHERE id = ?1",
                           true);
}

int store_image_get_by_id(Store *s, const char *id, ImageRecord *ret) {
        return entity_get(s, &image_entity, "WHERE id = ?1", id, ret);
}

int store_image_get_by_name(Store *s, const char *name, ImageRecord *ret) {
        return entity_get(s, &image_entity, "WHERE name = ?1", name, ret);
}

int store_image_find_by_prefix(Store *s, const char *prefix, ImageRecord **ret, size_t *ret_n) {
        void *a;
        int q = entity_find_by_prefix(s, &image_entity, prefix, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_image_list(Store *s, ImageRecord **ret, size_t *ret_n) {
        void *a;
        int q = entity_list(s, &image_entity, "ORDER BY created_at, id", NULL, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_image_delete(Store *s, const char *id) {
        return entity_delete(s, &image_entity, "images", id,
                             "SELECT 'VM(s) ' || group_concat(name, ', ') FROM vms WHERE image_id = ?1");
}
