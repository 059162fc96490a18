/* SPDX-License-Identifier: MIT */
/* VM records. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "store-internal.h"
#include "string-util.h"

/* Storage names are frozen by the schema's CHECK constraints; they live here
 * rather than borrowing display helpers so a display rename cannot break
 * existing databases. */
static const char *const vm_state_table[_VM_STATE_MAX] = {
        [VM_STATE_CREATED] = "created",   [VM_STATE_STARTING] = "starting",   [VM_STATE_RUNNING] = "running",
        [VM_STATE_STOPPING] = "stopping", [VM_STATE_STOPPED] = "stopped",     [VM_STATE_ERROR] = "error",
        [VM_STATE_PAUSED] = "paused",     [VM_STATE_SUSPENDED] = "suspended",
};

static const char *const vmm_storage_table[_VMM_KIND_MAX] = {
        [VMM_FIRECRACKER] = "firecracker",
        [VMM_QEMU] = "qemu",
};

bool vm_state_is_live(VmState s) {
        return s == VM_STATE_STARTING || s == VM_STATE_RUNNING || s == VM_STATE_PAUSED || s == VM_STATE_STOPPING;
}

const char *vm_state_to_string(VmState s) {
        return s >= 0 && s < _VM_STATE_MAX ? vm_state_table[s] : NULL;
}

VmState vm_state_from_string(const char *s) {
        for (int i = 0; s && i < _VM_STATE_MAX; i++)
                if (streq(vm_state_table[i], s))
                        return (VmState) i;
        return _VM_STATE_INVALID;
}

static const char *const vm_idle_action_table[_VM_IDLE_MAX] = {
        [VM_IDLE_STOP] = "stop",
        [VM_IDLE_SUSPEND] = "suspend",
};

const char *vm_idle_action_to_string(VmIdleAction a) {
        return a >= 0 && a < _VM_IDLE_MAX ? vm_idle_action_table[a] : NULL;
}

VmIdleAction vm_idle_action_from_string(const char *s) {
        if (!s)
                return VM_IDLE_DEFAULT;
        for (int i = VM_IDLE_STOP; i < _VM_IDLE_MAX; i++)
                if (streq(vm_idle_action_table[i], s))
                        return (VmIdleAction) i;
        return _VM_IDLE_INVALID;
}

const char *store_vmm_to_storage(VmmKind k) {
        return k >= 0 && k < _VMM_KIND_MAX ? vmm_storage_table[k] : NULL;
}

VmmKind store_vmm_from_storage(const char *s) {
        for (int i = 0; s && i < _VMM_KIND_MAX; i++)
                if (streq(vmm_storage_table[i], s))
                        return (VmmKind) i;
        return _VMM_KIND_INVALID;
}

void vm_record_done(VmRecord *r) {
        if (!r)
                return;
        char **strings[] = { &r->id,      &r->name,      &r->image_id,     &r->kernel_id,    &r->ip,
                             &r->mac,     &r->tap,       &r->api_socket,   &r->agent_socket, &r->run_dir,
                             &r->boot_id, &r->spec_json, &r->runtime_json, &r->last_error };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                free(*strings[i]);
        *r = (VmRecord){};
}

void vm_record_array_free(VmRecord *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                vm_record_done(&a[i]);
        free(a);
}

static void vm_record_done_void(void *p) {
        vm_record_done(p);
}

/* Column order shared by every SELECT, INSERT and UPDATE below: parameter
 * ?N is column N. */
#define VM_COLUMNS                                                                                   \
        "id, name, image_id, kernel_id, state, vmm, vcpus, mem_mib, disk_bytes, nat, ip, mac, tap, " \
        "vsock_cid, pid, api_socket, agent_socket, run_dir, boot_id, spec_json, runtime_json, "      \
        "last_error, created_at, updated_at, idle_timeout_sec, idle_action"
/* last_used_at (column 26) is read with the rest, written only by store_vm_touch(). */
#define VM_SELECT "SELECT " VM_COLUMNS ", last_used_at FROM vms "

static int vm_from_row(sqlite3_stmt *st, void *ret) {
        VmRecord *v = ret;
        char **text[] = {
                [0] = &v->id,
                [1] = &v->name,
                [2] = &v->image_id,
                [3] = &v->kernel_id,
                [10] = &v->ip,
                [11] = &v->mac,
                [12] = &v->tap,
                [15] = &v->api_socket,
                [16] = &v->agent_socket,
                [17] = &v->run_dir,
                [18] = &v->boot_id,
                [19] = &v->spec_json,
                [20] = &v->runtime_json,
                [21] = &v->last_error,
        };
        for (size_t i = 0; i < ELEMENTSOF(text); i++)
                if (text[i] && store_column_strdup(st, (int) i, text[i]) < 0) {
                        vm_record_done(v);
                        return -ENOMEM;
                }
        v->state = vm_state_from_string((const char *) sqlite3_column_text(st, 4));
        v->vmm = store_vmm_from_storage((const char *) sqlite3_column_text(st, 5));
        v->vcpus = (unsigned) sqlite3_column_int64(st, 6);
        v->mem_mib = (uint64_t) sqlite3_column_int64(st, 7);
        v->disk_bytes = (uint64_t) sqlite3_column_int64(st, 8);
        v->nat = sqlite3_column_int64(st, 9) != 0;
        v->vsock_cid = (unsigned) sqlite3_column_int64(st, 13);
        v->pid = (pid_t) sqlite3_column_int64(st, 14);
        v->created_at = (usec_t) sqlite3_column_int64(st, 22);
        v->updated_at = (usec_t) sqlite3_column_int64(st, 23);
        int64_t idle = sqlite3_column_int64(st, 24);
        v->idle_timeout_sec = sqlite3_column_type(st, 24) == SQLITE_NULL ? 0 : idle == 0 ? VM_IDLE_TIMEOUT_OFF : idle;
        v->idle_action = vm_idle_action_from_string((const char *) sqlite3_column_text(st, 25));
        v->last_used_at = (usec_t) sqlite3_column_int64(st, 26);
        if (v->state < 0 || v->vmm < 0 || v->idle_action < 0) {
                vm_record_done(v);
                return error_setf(-EBADMSG, "VM row with unknown state or VMM");
        }
        return 0;
}

static int vm_validate(const VmRecord *r) {
        int q = store_check_id(r->id, "VM");
        if (q < 0)
                return q;
        q = store_check_name(r->name, "VM");
        if (q < 0)
                return q;
        q = store_check_id(r->image_id, "image");
        if (q < 0)
                return q;
        if (r->kernel_id && (q = store_check_id(r->kernel_id, "kernel")) < 0)
                return q;
        if (!vm_state_to_string(r->state))
                return error_setf(-EINVAL, "VM %s: invalid state %d", r->name, (int) r->state);
        if (r->vmm < 0 || r->vmm >= _VMM_KIND_MAX)
                return error_setf(-EINVAL, "VM %s: invalid VMM %d", r->name, (int) r->vmm);
        if (r->vcpus < 1 || r->mem_mib < 1 || r->mem_mib > INT64_MAX || r->disk_bytes > INT64_MAX)
                return error_setf(-EINVAL, "VM %s: vcpus and memory must be positive", r->name);
        if (r->idle_timeout_sec < VM_IDLE_TIMEOUT_OFF || r->idle_timeout_sec > VM_IDLE_TIMEOUT_MAX ||
            r->idle_action < 0 || r->idle_action >= _VM_IDLE_MAX)
                return error_setf(-EINVAL, "VM %s: invalid idle timeout or action", r->name);
        return 0;
}

static int vm_bind(Store *s, sqlite3_stmt *st, const VmRecord *r, usec_t created, usec_t updated) {
        const char *text[] = {
                [0] = r->id,
                [1] = r->name,
                [2] = r->image_id,
                [3] = r->kernel_id,
                [4] = vm_state_to_string(r->state),
                [5] = vmm_storage_table[r->vmm],
                [10] = r->ip,
                [11] = r->mac,
                [12] = r->tap,
                [15] = r->api_socket,
                [16] = r->agent_socket,
                [17] = r->run_dir,
                [18] = r->boot_id,
                [19] = r->spec_json ? r->spec_json : "{}",
                [20] = r->runtime_json ? r->runtime_json : "{}",
                [21] = r->last_error,
                [25] = vm_idle_action_to_string(r->idle_action),
        };
        static const bool is_text[ELEMENTSOF(text)] = {
                [0] = 1,  [1] = 1,  [2] = 1,  [3] = 1,  [4] = 1,  [5] = 1,  [10] = 1, [11] = 1, [12] = 1,
                [15] = 1, [16] = 1, [17] = 1, [18] = 1, [19] = 1, [20] = 1, [21] = 1, [25] = 1,
        };
        int q = 0;
        for (size_t i = 0; q >= 0 && i < ELEMENTSOF(text); i++)
                if (is_text[i])
                        q = store_bind_text(s, st, (int) i + 1, text[i]);
        if (q >= 0)
                q = store_bind_int64(s, st, 7, r->vcpus);
        if (q >= 0)
                q = store_bind_int64(s, st, 8, (int64_t) r->mem_mib);
        if (q >= 0)
                q = store_bind_int64(s, st, 9, (int64_t) r->disk_bytes);
        if (q >= 0)
                q = store_bind_int64(s, st, 10, r->nat);
        if (q >= 0)
                q = store_bind_int64_or_null(s, st, 14, r->vsock_cid);
        if (q >= 0)
                q = store_bind_int64_or_null(s, st, 15, r->pid);
        if (q >= 0)
                q = store_bind_int64(s, st, 23, (int64_t) created);
        if (q >= 0)
                q = store_bind_int64(s, st, 24, (int64_t) updated);
        /* NULL: the config's; 0: off for this VM. */
        if (q >= 0 && r->idle_timeout_sec == 0)
                q = store_bind_text(s, st, 25, NULL);
        else if (q >= 0)
                q = store_bind_int64(s, st, 25, r->idle_timeout_sec == VM_IDLE_TIMEOUT_OFF ? 0 : r->idle_timeout_sec);
        return q;
}

/* Turn a failed write into a sentence about the VM. */
static int vm_write_error(Store *s, const VmRecord *r, int q) {
        if (q == -EEXIST) {
                const char *col = store_failed_column(s);
                if (streq(col, "name"))
                        return error_setf(q, "a VM named \"%s\" already exists", r->name);
                if (streq(col, "id"))
                        return error_setf(q, "a VM with id %s already exists", r->id);
                return error_setf(q, "VM \"%s\": its %s is already used by another VM", r->name, col);
        }
        if (q == -EBUSY) { /* a foreign key on insert/update: the referenced row is missing */
                int e = store_exists(s, "SELECT 1 FROM images WHERE id = ?1", r->image_id);
                if (e == 0)
                        return error_setf(-ENOENT, "VM \"%s\": image %s does not exist", r->name, r->image_id);
                return error_setf(-ENOENT, "VM \"%s\": kernel %s does not exist", r->name,
                                  r->kernel_id ? r->kernel_id : "");
        }
        return q;
}

int store_vm_insert(Store *s, VmRecord *r) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        usec_t now = now_realtime(), created = r->created_at ? r->created_at : now;
        int q = vm_validate(r);
        if (q < 0)
                return q;
        q = store_prepare(s,
                          "INSERT INTO vms (" VM_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                          "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
                          &st);
        if (q < 0)
                return q;
        q = vm_bind(s, st, r, created, now);
        if (q < 0)
                return q;
        q = store_step_done(s, st, "inserting VM");
        if (q < 0)
                return vm_write_error(s, r, q);
        r->created_at = created;
        r->updated_at = now;
        return 0;
}

int store_vm_update(Store *s, VmRecord *r) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        usec_t now = now_realtime();
        char what[96];
        int q = vm_validate(r);
        if (q < 0)
                return q;
        q = store_prepare(s,
                          "UPDATE vms SET name = ?2, image_id = ?3, kernel_id = ?4, state = ?5, vmm = ?6, "
                          "vcpus = ?7, mem_mib = ?8, disk_bytes = ?9, nat = ?10, ip = ?11, mac = ?12, tap = ?13, "
                          "vsock_cid = ?14, pid = ?15, api_socket = ?16, agent_socket = ?17, run_dir = ?18, "
                          "boot_id = ?19, spec_json = ?20, runtime_json = ?21, last_error = ?22, "
                          "updated_at = ?24, idle_timeout_sec = ?25, idle_action = ?26 WHERE id = ?1",
                          &st);
        if (q < 0)
                return q;
        q = vm_bind(s, st, r, r->created_at, now);
        if (q < 0)
                return q;
        q = store_step_done(s, st, "updating VM");
        if (q < 0)
                return vm_write_error(s, r, q);
        snprintf(what, sizeof(what), "VM %s", r->id);
        q = store_check_changed(s, what);
        if (q < 0)
                return q;
        r->updated_at = now;
        return 0;
}

int store_vm_touch(Store *s, const char *id, usec_t t) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int q = store_prepare(s, "UPDATE vms SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?1", &st);
        if (q >= 0)
                q = store_bind_text(s, st, 1, id);
        if (q >= 0)
                q = store_bind_int64(s, st, 2, (int64_t) t);
        return q < 0 ? q : store_step_done(s, st, "recording the use of a VM");
}

int store_vm_set_state(Store *s, const char *id, VmState state, const char *last_error) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char what[96];
        if (!vm_state_to_string(state))
                return error_setf(-EINVAL, "invalid VM state %d", (int) state);
        int q = store_prepare(s, "UPDATE vms SET state = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1", &st);
        if (q >= 0)
                q = store_bind_text(s, st, 1, id);
        if (q >= 0)
                q = store_bind_text(s, st, 2, vm_state_to_string(state));
        if (q >= 0)
                q = store_bind_text(s, st, 3, last_error);
        if (q >= 0)
                q = store_bind_int64(s, st, 4, (int64_t) now_realtime());
        if (q >= 0)
                q = store_step_done(s, st, "setting VM state");
        if (q < 0)
                return q;
        snprintf(what, sizeof(what), "VM %s", id);
        return store_check_changed(s, what);
}

int store_vm_delete(Store *s, const char *id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *users = NULL;
        char what[96];
        int q = store_prepare(s, "DELETE FROM vms WHERE id = ?1", &st);
        if (q >= 0)
                q = store_bind_text(s, st, 1, id);
        if (q >= 0)
                q = store_step_done(s, st, "deleting VM");
        if (q == -EBUSY &&
            store_prepare(s, "SELECT group_concat(name, ', ') FROM snapshots WHERE vm_id = ?1", &users) >= 0 &&
            store_bind_text(s, users, 1, id) >= 0 && sqlite3_step(users) == SQLITE_ROW && sqlite3_column_text(users, 0))
                return error_setf(q, "VM %s has snapshots: %s", id, (const char *) sqlite3_column_text(users, 0));
        if (q < 0)
                return q;
        snprintf(what, sizeof(what), "VM %s", id);
        return store_check_changed(s, what);
}

static int vm_get(Store *s, const char *sql, const char *arg, const char *what, VmRecord *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        VmRecord v = {};
        int q = store_prepare(s, sql, &st);
        if (q >= 0)
                q = store_bind_text(s, st, 1, arg);
        if (q >= 0)
                q = store_query_one(s, st, vm_from_row, what, &v);
        if (q < 0)
                return q;
        *ret = v;
        return 0;
}

int store_vm_get_by_id(Store *s, const char *id, VmRecord *ret) {
        char what[96];
        snprintf(what, sizeof(what), "VM with id %s", id ? id : "");
        return vm_get(s, VM_SELECT "WHERE id = ?1", id, what, ret);
}

int store_vm_get_by_name(Store *s, const char *name, VmRecord *ret) {
        char what[96];
        snprintf(what, sizeof(what), "VM \"%s\"", name ? name : "");
        return vm_get(s, VM_SELECT "WHERE name = ?1", name, what, ret);
}

static int vm_list(Store *s, const char *sql, const char *arg, VmRecord **ret, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        void *a;
        size_t n;
        int q = store_prepare(s, sql, &st);
        if (q >= 0 && arg)
                q = store_bind_text(s, st, 1, arg);
        if (q >= 0)
                q = store_query_list(s, st, sizeof(VmRecord), vm_from_row, vm_record_done_void, "listing VMs", &a, &n);
        if (q < 0)
                return q;
        *ret = a;
        *ret_n = n;
        return 0;
}

int store_vm_find_by_prefix(Store *s, const char *prefix, VmRecord **ret, size_t *ret_n) {
        if (!store_prefix_is_valid(prefix)) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        return vm_list(s, VM_SELECT "WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id", prefix, ret, ret_n);
}

int store_vm_list(Store *s, VmRecord **ret, size_t *ret_n) {
        return vm_list(s, VM_SELECT "ORDER BY created_at, id", NULL, ret, ret_n);
}

/* Appends text to the growing buffer b (len used, cap allocated). */
static int text_append(char **b, size_t *len, size_t *cap, const char *text, size_t n) {
        if (*len + n + 1 > *cap) {
                size_t want = MAX(*cap * 2, *len + n + 1);
                char *nb = realloc(*b, want);
                if (!nb)
                        return -ENOMEM;
                *b = nb;
                *cap = want;
        }
        memcpy(*b + *len, text, n);
        *len += n;
        (*b)[*len] = '\0';
        return 0;
}

int store_vm_list_brief_json(Store *s, char **ret) {
        /* SQLite writes each row's object: no JSON tree per VM. The image's
         * name by a join, its id should the row be gone (a foreign key keeps
         * it, but a listing must not lose a VM). Rows joined here rather than
         * by json_group_array(), whose order SQLite does not promise. */
        static const char sql[] = "SELECT json_object('id', v.id, 'name', v.name, 'state', v.state, 'image', "
                                  "coalesce(i.name, v.image_id), 'ip', v.ip, 'vcpu', v.vcpus, 'memory_mib', v.mem_mib, "
                                  "'disk_bytes', v.disk_bytes, 'created_at', CASE WHEN v.created_at > 0 THEN "
                                  "strftime('%Y-%m-%dT%H:%M:%SZ', v.created_at / 1000000, 'unixepoch') END) FROM vms v "
                                  "LEFT JOIN images i ON i.id = v.image_id ORDER BY v.created_at, v.id";
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *b = NULL;
        size_t len = 0, cap = 0;
        int rc = SQLITE_DONE, r = store_prepare(s, sql, &st);
        if (r < 0)
                return r;
        r = text_append(&b, &len, &cap, "[", 1);
        for (size_t i = 0; r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW; i++) {
                const char *row = (const char *) sqlite3_column_text(st, 0);
                if (!row)
                        return -ENOMEM;
                if (i > 0)
                        r = text_append(&b, &len, &cap, ",", 1);
                if (r >= 0)
                        r = text_append(&b, &len, &cap, row, (size_t) sqlite3_column_bytes(st, 0));
        }
        if (r < 0)
                return r;
        if (rc != SQLITE_DONE)
                return store_error(s, rc, "listing VMs");
        r = text_append(&b, &len, &cap, "]", 1);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(b);
        return 0;
}

int store_list_live_vms_readonly(const char *path, VmRecord **ret, size_t *ret_n) {
        _cleanup_store_close_ Store *s = NULL;
        VmRecord *vms = NULL;
        size_t n = 0, k = 0;
        struct stat st;

        if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        int r = store_open(path, STORE_OPEN_READONLY, &s);
        if (r >= 0)
                r = store_vm_list(s, &vms, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (vm_state_is_live(vms[i].state))
                        vms[k++] = vms[i];
                else
                        vm_record_done(&vms[i]);
        }
        *ret = vms;
        *ret_n = k;
        return 0;
}

int store_counts(Store *s, StoreCounts *ret) {
        _cleanup_stmt_ sqlite3_stmt *by_state = NULL, *totals = NULL;
        StoreCounts c = {};
        int r, rc;

        r = store_prepare(s, "SELECT state, count(*) FROM vms GROUP BY state", &by_state);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(by_state)) == SQLITE_ROW) {
                VmState v = vm_state_from_string((const char *) sqlite3_column_text(by_state, 0));
                unsigned n = (unsigned) sqlite3_column_int64(by_state, 1);
                if (v >= 0)
                        c.vms_by_state[v] = n;
                c.vms += n;
        }
        if (rc != SQLITE_DONE)
                return store_error(s, rc, "counting VMs");

        r = store_prepare(s,
                          "SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM kernels), "
                          "(SELECT count(*) FROM host_handles), (SELECT count(*) FROM snapshots)",
                          &totals);
        if (r < 0)
                return r;
        rc = sqlite3_step(totals);
        if (rc != SQLITE_ROW)
                return store_error(s, rc, "counting records");
        c.images = (unsigned) sqlite3_column_int64(totals, 0);
        c.kernels = (unsigned) sqlite3_column_int64(totals, 1);
        c.handles = (unsigned) sqlite3_column_int64(totals, 2);
        c.snapshots = (unsigned) sqlite3_column_int64(totals, 3);
        *ret = c;
        return 0;
}
