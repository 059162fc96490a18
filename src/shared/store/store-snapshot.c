/* SPDX-License-Identifier: MIT */
/* Snapshot records: a VM's saved state and disk copies (see migration 3). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "error.h"
#include "store-internal.h"
#include "string-util.h"

/* Storage names, frozen by the schema's CHECK constraints. */
static const char *const snapshot_kind_table[_SNAPSHOT_KIND_MAX] = {
        [SNAPSHOT_USER] = "user",
        [SNAPSHOT_TEMPLATE] = "template",
        [SNAPSHOT_WORKSPACE] = "workspace",
};

static const char *const snapshot_state_table[_SNAPSHOT_STATE_MAX] = {
        [SNAPSHOT_SAVING] = "saving",
        [SNAPSHOT_READY] = "ready",
};

const char *snapshot_kind_to_string(SnapshotKind k) {
        return k >= 0 && k < _SNAPSHOT_KIND_MAX ? snapshot_kind_table[k] : NULL;
}

SnapshotKind snapshot_kind_from_string(const char *s) {
        for (int i = 0; s && i < _SNAPSHOT_KIND_MAX; i++)
                if (streq(snapshot_kind_table[i], s))
                        return (SnapshotKind) i;
        return _SNAPSHOT_KIND_INVALID;
}

const char *snapshot_state_to_string(SnapshotState s) {
        return s >= 0 && s < _SNAPSHOT_STATE_MAX ? snapshot_state_table[s] : NULL;
}

static SnapshotState snapshot_state_from_string(const char *s) {
        for (int i = 0; s && i < _SNAPSHOT_STATE_MAX; i++)
                if (streq(snapshot_state_table[i], s))
                        return (SnapshotState) i;
        return _SNAPSHOT_STATE_INVALID;
}

void snapshot_record_done(SnapshotRecord *r) {
        if (!r)
                return;
        char **strings[] = {
                &r->id,          &r->name, &r->vm_id,      &r->vm_name,   &r->image_id,    &r->kernel_id,
                &r->vmm_version, &r->dir,  &r->disks_json, &r->spec_json, &r->fingerprint, &r->repository
        };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                free(*strings[i]);
        *r = (SnapshotRecord){};
}

void snapshot_record_array_free(SnapshotRecord *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                snapshot_record_done(&a[i]);
        free(a);
}

static void snapshot_done_void(void *p) {
        snapshot_record_done(p);
}

/* Columns in bind order: ?1..?23. */
#define SNAPSHOT_COLUMNS                                                                                    \
        "id, name, kind, state, vm_id, vm_name, image_id, kernel_id, vmm, vmm_version, vcpus, mem_mib, "    \
        "disk_bytes, dir, state_bytes, memory_bytes, disk_used_bytes, disks_json, spec_json, fingerprint, " \
        "created_at, repository, last_used_at"

static int snapshot_from_row(sqlite3_stmt *st, void *ret) {
        SnapshotRecord *n = ret;
        char *kind = NULL, *state = NULL, *vmm = NULL;
        char **const fields[] = { &n->id,      &n->name,      &kind,          &state,        &n->vm_id,
                                  &n->vm_name, &n->image_id,  &n->kernel_id,  &vmm,          &n->vmm_version,
                                  NULL,        NULL,          NULL,           &n->dir,       NULL,
                                  NULL,        NULL,          &n->disks_json, &n->spec_json, &n->fingerprint,
                                  NULL,        &n->repository };
        int q = store_columns_strdup(st, fields, ELEMENTSOF(fields));
        if (q >= 0) {
                n->kind = snapshot_kind_from_string(kind);
                n->state = snapshot_state_from_string(state);
                n->vmm = store_vmm_from_storage(vmm);
                n->vcpus = (unsigned) sqlite3_column_int64(st, 10);
                n->mem_mib = (uint64_t) sqlite3_column_int64(st, 11);
                n->disk_bytes = (uint64_t) sqlite3_column_int64(st, 12);
                n->state_bytes = (uint64_t) sqlite3_column_int64(st, 14);
                n->memory_bytes = (uint64_t) sqlite3_column_int64(st, 15);
                n->disk_used_bytes = (uint64_t) sqlite3_column_int64(st, 16);
                n->created_at = (usec_t) sqlite3_column_int64(st, 20);
                n->last_used_at = (usec_t) sqlite3_column_int64(st, 22);
        }
        free(kind), free(state), free(vmm);
        if (q < 0)
                snapshot_record_done(n);
        return q < 0 ? -ENOMEM : 0;
}

static const StoreEntity snapshot_entity = {
        .label = "snapshot",
        .select = "SELECT " SNAPSHOT_COLUMNS " FROM snapshots ",
        .size = sizeof(SnapshotRecord),
        .row = snapshot_from_row,
        .done = snapshot_done_void,
};

static int snapshot_validate(const SnapshotRecord *r) {
        int q = store_check_id(r->id, "snapshot");
        if (q >= 0)
                q = store_check_name(r->name, "snapshot");
        if (q >= 0 && r->vm_id)
                q = store_check_id(r->vm_id, "VM");
        if (q >= 0)
                q = store_check_id(r->image_id, "image");
        if (q >= 0 && r->kernel_id)
                q = store_check_id(r->kernel_id, "kernel");
        if (q >= 0 &&
            (!snapshot_kind_to_string(r->kind) || !snapshot_state_to_string(r->state) || !store_vmm_to_storage(r->vmm)))
                q = error_setf(-EINVAL, "snapshot \"%s\": bad kind, state or VMM", r->name);
        if (q >= 0 && (!r->dir || r->dir[0] != '/'))
                q = error_setf(-EINVAL, "snapshot \"%s\": its directory must be an absolute path", r->name);
        if (q >= 0 && (!r->vmm_version || !*r->vmm_version))
                q = error_setf(-EINVAL, "snapshot \"%s\": the VMM version is missing", r->name);
        if (q >= 0 && (r->mem_mib > INT64_MAX || r->disk_bytes > INT64_MAX || r->state_bytes > INT64_MAX ||
                       r->memory_bytes > INT64_MAX || r->disk_used_bytes > INT64_MAX))
                q = error_setf(-EINVAL, "snapshot \"%s\": a size is out of range", r->name);
        return q;
}

/* An UPDATE has no ?21: created_at never changes. */
static int snapshot_bind(Store *s, sqlite3_stmt *st, const SnapshotRecord *r, bool update) {
        const char *v[] = { r->id,
                            r->name,
                            snapshot_kind_to_string(r->kind),
                            snapshot_state_to_string(r->state),
                            r->vm_id,
                            r->vm_name,
                            r->image_id,
                            r->kernel_id,
                            store_vmm_to_storage(r->vmm),
                            r->vmm_version,
                            NULL,
                            NULL,
                            NULL,
                            r->dir,
                            NULL,
                            NULL,
                            NULL,
                            r->disks_json ? r->disks_json : "[]",
                            r->spec_json ? r->spec_json : "{}",
                            r->fingerprint,
                            NULL,
                            r->repository };
        static const bool is_text[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 1 };
        const int64_t numbers[][2] = { { 11, r->vcpus },
                                       { 12, (int64_t) r->mem_mib },
                                       { 13, (int64_t) r->disk_bytes },
                                       { 15, (int64_t) r->state_bytes },
                                       { 16, (int64_t) r->memory_bytes },
                                       { 17, (int64_t) r->disk_used_bytes },
                                       { 23, (int64_t) r->last_used_at } };
        int q = store_bind_texts(s, st, v, is_text, ELEMENTSOF(v));
        for (size_t i = 0; q >= 0 && i < ELEMENTSOF(numbers); i++)
                q = store_bind_int64(s, st, (int) numbers[i][0], numbers[i][1]);
        if (q >= 0 && !update)
                q = store_bind_int64(s, st, 21, (int64_t) r->created_at);
        return q;
}

static int snapshot_write(Store *s, const SnapshotRecord *r, const char *sql, bool update) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int q = snapshot_validate(r);
        if (q >= 0)
                q = store_prepare(s, sql, &st);
        if (q >= 0)
                q = snapshot_bind(s, st, r, update);
        if (q >= 0)
                q = store_step_done(s, st, update ? "updating a snapshot" : "inserting a snapshot");
        if (q == -EEXIST && streq(store_failed_column(s), "name"))
                return error_setf(q, "snapshot name \"%s\" is already in use", r->name);
        if (q == -EEXIST && r->kind == SNAPSHOT_TEMPLATE)
                return error_setf(q, "a template of this image and size already exists");
        if (q == -EEXIST)
                return error_setf(q, "snapshot id %s already exists", r->id);
        if (q == -EBUSY)
                return error_setf(-ENOENT, "snapshot \"%s\": its VM, image or kernel does not exist", r->name);
        if (q >= 0 && update)
                q = store_check_changed(s, "snapshot");
        return q;
}

int store_snapshot_insert(Store *s, SnapshotRecord *r) {
        usec_t saved = r->created_at;
        if (!r->created_at)
                r->created_at = now_realtime();
        int q = snapshot_write(s, r,
                               "INSERT INTO snapshots (" SNAPSHOT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                               "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
                               false);
        if (q < 0)
                r->created_at = saved;
        return q;
}

int store_snapshot_update(Store *s, const SnapshotRecord *r) {
        return snapshot_write(s, r,
                              "UPDATE snapshots SET name = ?2, kind = ?3, state = ?4, vm_id = ?5, vm_name = ?6, "
                              "image_id = ?7, kernel_id = ?8, vmm = ?9, vmm_version = ?10, vcpus = ?11, "
                              "mem_mib = ?12, disk_bytes = ?13, dir = ?14, state_bytes = ?15, memory_bytes = ?16, "
                              "disk_used_bytes = ?17, disks_json = ?18, spec_json = ?19, fingerprint = ?20, "
                              "repository = ?22, last_used_at = ?23 "
                              "WHERE id = ?1",
                              true);
}

int store_snapshot_get_by_id(Store *s, const char *id, SnapshotRecord *ret) {
        return store_entity_get(s, &snapshot_entity, "WHERE id = ?1", id, ret);
}

int store_snapshot_get_by_name(Store *s, const char *name, SnapshotRecord *ret) {
        return store_entity_get(s, &snapshot_entity, "WHERE name = ?1", name, ret);
}

static int snapshot_list(Store *s, const char *where, const char *arg, SnapshotRecord **ret, size_t *ret_n) {
        void *a;
        int q = store_entity_list(s, &snapshot_entity, where, arg, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_snapshot_find_by_prefix(Store *s, const char *prefix, SnapshotRecord **ret, size_t *ret_n) {
        void *a;
        int q = store_entity_find_by_prefix(s, &snapshot_entity, prefix, &a, ret_n);
        if (q >= 0)
                *ret = a;
        return q;
}

int store_snapshot_list(Store *s, SnapshotRecord **ret, size_t *ret_n) {
        return snapshot_list(s, "ORDER BY created_at, id", NULL, ret, ret_n);
}

int store_snapshot_list_by_vm(Store *s, const char *vm_id, SnapshotRecord **ret, size_t *ret_n) {
        return snapshot_list(s, "WHERE vm_id = ?1 ORDER BY created_at, id", vm_id, ret, ret_n);
}

int store_snapshot_list_by_image(Store *s, const char *image_id, SnapshotRecord **ret, size_t *ret_n) {
        return snapshot_list(s, "WHERE image_id = ?1 ORDER BY created_at, id", image_id, ret, ret_n);
}

int store_snapshot_get_template(Store *s, const char *image_id, unsigned vcpus, uint64_t mem_mib, VmmKind vmm,
                                SnapshotRecord *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        SnapshotRecord n = {};
        int q = store_prepare(s,
                              "SELECT " SNAPSHOT_COLUMNS " FROM snapshots WHERE kind = 'template' AND "
                              "image_id = ?1 AND vcpus = ?2 AND mem_mib = ?3 AND vmm = ?4",
                              &st);
        if (q >= 0)
                q = store_bind_text(s, st, 1, image_id);
        if (q >= 0)
                q = store_bind_int64(s, st, 2, vcpus);
        if (q >= 0)
                q = store_bind_int64(s, st, 3, (int64_t) mem_mib);
        if (q >= 0)
                q = store_bind_text(s, st, 4, store_vmm_to_storage(vmm));
        if (q >= 0)
                q = store_query_one(s, st, snapshot_from_row, "template", &n);
        if (q < 0)
                return q;
        *ret = n;
        return 0;
}

int store_snapshot_touch(Store *s, const char *id, usec_t when) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int q = store_prepare(s, "UPDATE snapshots SET last_used_at = ?2 WHERE id = ?1", &st);
        if (q >= 0)
                q = store_bind_text(s, st, 1, id);
        if (q >= 0)
                q = store_bind_int64(s, st, 2, (int64_t) when);
        if (q >= 0)
                q = store_step_done(s, st, "recording a snapshot's use");
        return q;
}

int store_snapshot_get_workspace(Store *s, const SnapshotWorkspaceKey *k, SnapshotRecord *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        SnapshotRecord n = {};
        int q = store_prepare(s,
                              "SELECT " SNAPSHOT_COLUMNS " FROM snapshots WHERE kind = 'workspace' AND "
                              "state = 'ready' AND repository = ?1 AND fingerprint = ?2 AND image_id = ?3 AND "
                              "vcpus = ?4 AND mem_mib = ?5 AND disk_bytes = ?6 AND vmm = ?7 "
                              "ORDER BY created_at DESC, id LIMIT 1",
                              &st);
        const char *texts[] = { k->repository, k->fingerprint, k->image_id };
        for (size_t i = 0; q >= 0 && i < ELEMENTSOF(texts); i++)
                q = store_bind_text(s, st, (int) i + 1, texts[i]);
        if (q >= 0)
                q = store_bind_int64(s, st, 4, k->vcpus);
        if (q >= 0)
                q = store_bind_int64(s, st, 5, (int64_t) k->mem_mib);
        if (q >= 0)
                q = store_bind_int64(s, st, 6, (int64_t) k->disk_bytes);
        if (q >= 0)
                q = store_bind_text(s, st, 7, store_vmm_to_storage(k->vmm));
        if (q >= 0)
                q = store_query_one(s, st, snapshot_from_row, "workspace snapshot", &n);
        if (q < 0)
                return q;
        *ret = n;
        return 0;
}

int store_snapshot_delete(Store *s, const char *id) {
        return store_entity_delete(s, &snapshot_entity, "snapshots", id, "SELECT 'nothing'");
}

int store_snapshot_usage_readonly(const char *path, SnapshotUsage *ret) {
        _cleanup_store_close_ Store *s = NULL;
        SnapshotRecord *list = NULL;
        size_t n = 0;
        struct stat st;
        if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
                *ret = (SnapshotUsage){};
                return 0;
        }
        int r = store_open(path, STORE_OPEN_READONLY, &s);
        if (r >= 0)
                r = store_snapshot_list(s, &list, &n);
        if (r < 0)
                return r;
        SnapshotUsage u = {};
        for (size_t i = 0; i < n; i++) {
                if (list[i].state != SNAPSHOT_READY)
                        continue;
                uint64_t bytes = list[i].state_bytes + list[i].memory_bytes + list[i].disk_used_bytes;
                if (list[i].kind == SNAPSHOT_TEMPLATE) {
                        u.templates++;
                        u.template_bytes += bytes;
                } else {
                        u.snapshots++;
                        u.snapshot_bytes += bytes;
                }
        }
        snapshot_record_array_free(list, n);
        *ret = u;
        return 0;
}
