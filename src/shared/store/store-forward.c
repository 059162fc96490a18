/* SPDX-License-Identifier: MIT */
/* Port forwards of VMs (migration 4). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "store-internal.h"

void store_forward_done(StoreForward *f) {
        free(f->vm_id);
        free(f->proto);
        free(f->host_ip);
        *f = (StoreForward){};
}

static void forward_done(void *p) {
        store_forward_done(p);
}

void store_forward_array_free(StoreForward *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                store_forward_done(&a[i]);
        free(a);
}

static int forward_from_row(sqlite3_stmt *st, void *ret) {
        StoreForward *f = ret;
        f->id = sqlite3_column_int64(st, 0);
        f->host_port = (unsigned) sqlite3_column_int64(st, 4);
        f->guest_port = (unsigned) sqlite3_column_int64(st, 5);
        f->created_at = (usec_t) sqlite3_column_int64(st, 6);
        if (store_column_strdup(st, 1, &f->vm_id) < 0 || store_column_strdup(st, 2, &f->proto) < 0 ||
            store_column_strdup(st, 3, &f->host_ip) < 0) {
                store_forward_done(f);
                return -ENOMEM;
        }
        return 0;
}

#define FORWARD_SELECT "SELECT id, vm_id, proto, host_ip, host_port, guest_port, created_at FROM port_forwards "

/* Which VM holds the address and port? -EEXIST naming it, or 0. */
static int forward_conflict(Store *s, const StoreForward *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_prepare(s,
                              "SELECT vms.name FROM port_forwards JOIN vms ON vms.id = port_forwards.vm_id "
                              "WHERE proto = ?1 AND host_ip = ?2 AND host_port = ?3",
                              &st);
        if (r >= 0)
                r = store_bind_text(s, st, 1, f->proto);
        if (r >= 0)
                r = store_bind_text(s, st, 2, f->host_ip);
        if (r >= 0)
                r = store_bind_int64(s, st, 3, f->host_port);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return 0;
        const char *holder = rc == SQLITE_ROW ? (const char *) sqlite3_column_text(st, 0) : NULL;
        return error_setf(-EEXIST, "%s port %s:%u is already forwarded%s%s", f->proto, f->host_ip, f->host_port,
                          holder ? " by vm " : "", holder ? holder : "");
}

int store_forward_add(Store *s, StoreForward *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_check_id(f->vm_id, "VM");
        if (r >= 0)
                r = store_prepare(
                        s,
                        "INSERT INTO port_forwards (vm_id, proto, host_ip, host_port, guest_port, created_at) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        &st);
        if (r >= 0)
                r = store_bind_text(s, st, 1, f->vm_id);
        if (r >= 0)
                r = store_bind_text(s, st, 2, f->proto);
        if (r >= 0)
                r = store_bind_text(s, st, 3, f->host_ip);
        if (r >= 0)
                r = store_bind_int64(s, st, 4, f->host_port);
        if (r >= 0)
                r = store_bind_int64(s, st, 5, f->guest_port);
        if (r >= 0)
                r = store_bind_int64(s, st, 6, (int64_t) (f->created_at = now_realtime()));
        if (r < 0)
                return r;
        r = store_step_done(s, st, "recording the port forward");
        if (r == -EEXIST) {
                int c = forward_conflict(s, f);
                return c < 0 ? c
                             : error_setf(r, "%s port %s:%u is already forwarded", f->proto, f->host_ip, f->host_port);
        }
        if (r == -EBUSY)
                return error_setf(-ENOENT, "VM %s not found", f->vm_id);
        if (r < 0)
                return r;
        f->id = sqlite3_last_insert_rowid(s->db);
        return 0;
}

int store_forward_check_free(Store *s, const char *proto, const char *host_ip, unsigned host_port) {
        StoreForward f = { .proto = (char *) proto, .host_ip = (char *) host_ip, .host_port = host_port };
        return forward_conflict(s, &f);
}

int store_forward_remove(Store *s, const char *vm_id, const char *proto, const char *host_ip, unsigned host_port) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_prepare(s,
                              "DELETE FROM port_forwards WHERE vm_id = ?1 AND proto = ?2 AND host_ip = ?3 AND "
                              "host_port = ?4",
                              &st);
        if (r >= 0)
                r = store_bind_text(s, st, 1, vm_id);
        if (r >= 0)
                r = store_bind_text(s, st, 2, proto);
        if (r >= 0)
                r = store_bind_text(s, st, 3, host_ip);
        if (r >= 0)
                r = store_bind_int64(s, st, 4, host_port);
        if (r >= 0)
                r = store_step_done(s, st, "removing the port forward");
        if (r < 0)
                return r;
        char what[96];
        snprintf(what, sizeof(what), "port forward %s:%u", host_ip, host_port);
        return store_check_changed(s, what);
}

int store_forward_list_vm(Store *s, const char *vm_id, StoreForward **ret, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        void *a;
        size_t n;
        int r = store_check_id(vm_id, "VM");
        if (r >= 0)
                r = store_prepare(s, FORWARD_SELECT "WHERE vm_id = ?1 ORDER BY host_ip, host_port", &st);
        if (r >= 0)
                r = store_bind_text(s, st, 1, vm_id);
        if (r >= 0)
                r = store_query_list(s, st, sizeof(StoreForward), forward_from_row, forward_done,
                                     "listing port forwards", &a, &n);
        if (r < 0)
                return r;
        *ret = a;
        *ret_n = n;
        return 0;
}
