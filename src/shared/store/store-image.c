/* SPDX-License-Identifier: MIT */
/* Image records. */
#include <errno.h>
#include <stdlib.h>

#include "error.h"
#include "store-internal.h"

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

static void image_done_void(void *p) {
        image_record_done(p);
}

#define IMAGE_COLUMNS "id, name, kernel_id, rootfs_path, work_seed_path, managed, size, sha256, source, created_at"

static int image_from_row(sqlite3_stmt *st, void *ret) {
        ImageRecord *i = ret;
        char **const fields[] = { &i->id, &i->name, &i->kernel_id, &i->rootfs_path, &i->work_seed_path,
                                  NULL,   NULL,     &i->sha256,    &i->source };
        if (store_columns_strdup(st, fields, ELEMENTSOF(fields)) < 0) {
                image_record_done(i);
                return -ENOMEM;
        }
        i->managed = sqlite3_column_int64(st, 5) != 0;
        i->size = (uint64_t) sqlite3_column_int64(st, 6);
        i->created_at = (usec_t) sqlite3_column_int64(st, 9);
        return 0;
}

static const StoreEntity image_entity = {
        .label = "image",
        .select = "SELECT " IMAGE_COLUMNS " FROM images ",
        .size = sizeof(ImageRecord),
        .row = image_from_row,
        .done = image_done_void,
};

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
        int q = store_bind_texts(s, st, v, is_text, ELEMENTSOF(v));
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
                q = store_entity_write(s, &image_entity, st, r->id, r->name, update);
        return q;
}

int store_image_insert(Store *s, ImageRecord *r) {
        usec_t saved = r->created_at;
        if (!r->created_at)
                r->created_at = now_realtime();
        int q = image_write(
                s, r, "INSERT INTO images (" IMAGE_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", false);
        if (q < 0)
                r->created_at = saved;
        return q;
}

int store_image_insert_with_kernel(Store *s, KernelRecord *k, ImageRecord *img) {
        int q = store_begin_immediate(s);
        if (q < 0)
                return q;
        if (k)
                q = store_kernel_insert(s, k);
        if (q >= 0)
                q = store_image_insert(s, img);
        if (q >= 0)
                return store_commit(s);
        store_rollback(s);
        return q;
}

int store_image_update(Store *s, const ImageRecord *r) {
        return image_write(s, r,
                           "UPDATE images SET name = ?2, kernel_id = ?3, rootfs_path = ?4, work_seed_path = ?5, "
                           "managed = ?6, size = ?7, sha256 = ?8, source = ?9 WHERE id = ?1",
                           true);
}

int store_image_get_by_id(Store *s, const char *id, ImageRecord *ret) {
        return store_entity_get(s, &image_entity, "WHERE id = ?1", id, ret);
}

int store_image_get_by_name(Store *s, const char *name, ImageRecord *ret) {
        return store_entity_get(s, &image_entity, "WHERE name = ?1", name, ret);
}

int store_image_find_by_prefix(Store *s, const char *prefix, ImageRecord **ret, size_t *ret_n) {
        void *a;
        int q = store_entity_find_by_prefix(s, &image_entity, prefix, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_image_list(Store *s, ImageRecord **ret, size_t *ret_n) {
        void *a;
        int q = store_entity_list(s, &image_entity, "ORDER BY created_at, id", NULL, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_image_delete(Store *s, const char *id) {
        return store_entity_delete(s, &image_entity, "images", id,
                                   "SELECT trim(ifnull('VM(s) ' || (SELECT group_concat(name, ', ') FROM vms "
                                   "WHERE image_id = ?1), '') || ifnull('; snapshot(s) ' || (SELECT "
                                   "group_concat(name, ', ') FROM snapshots WHERE image_id = ?1), ''), '; ')");
}
