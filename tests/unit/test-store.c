/* SPDX-License-Identifier: MIT */
/* The state store against real SQLite files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "fs-util.h"
#include "store-internal.h"
#include "store-test-util.h"
#include "store.h"
#include "string-util.h"
#include "time-util.h"

/* Statements run through a separate, plain SQLite connection: what any
 * other reader of the file would see. */
static int raw_exec(const char *path, const char *sql) {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_close(db);
        return rc;
}

static char *raw_text(const char *path, const char *sql) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        char *v = NULL;
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                v = strdup((const char *) sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

static mode_t file_mode(const char *path) {
        struct stat st;
        assert_int_equal(lstat(path, &st), 0);
        return st.st_mode & 07777;
}

static char *slurp(const char *path, size_t *len) {
        char *data = NULL;
        assert_int_equal(read_file_at(AT_FDCWD, path, 64 << 20, &data, len), 0);
        return data;
}

static void test_fresh_open(void **state) {
        _cleanup_free_ char *p = db_path("state.db");
        _cleanup_free_ char *wal = db_path("state.db-wal");
        Store *s = NULL;
        unsigned v = 0;

        mode_t old = umask(0); /* the file must be 0600 whatever the caller's umask */
        assert_int_equal(store_open(p, 0, &s), 0);
        umask(old);
        assert_int_equal(store_schema_version(s, &v), 0);
        assert_int_equal(v, store_latest_version());
        assert_true(store_latest_version() >= 2);
        assert_int_equal(file_mode(p), 0600);
        assert_int_equal(file_mode(wal), 0600); /* WAL is on, and its file inherits the mode */

        _cleanup_free_ char *jm = raw_text(p, "PRAGMA journal_mode");
        assert_string_equal(jm, "wal");
        _cleanup_free_ char *strict = raw_text(p, "SELECT group_concat(name, ',') FROM (SELECT name FROM "
                                                  "pragma_table_list WHERE strict = 1 AND schema = 'main' "
                                                  "ORDER BY name)");
        assert_string_equal(strict, "host_handles,images,kernels,port_forwards,snapshots,vms");
        store_close(s);

        /* Reopening an up-to-date database changes nothing. */
        assert_int_equal(store_open(p, 0, &s), 0);
        assert_int_equal(store_schema_version(s, &v), 0);
        assert_int_equal(v, store_latest_version());
        store_close(s);

        /* A looser file left by something else is tightened. */
        assert_int_equal(chmod(p, 0644), 0);
        assert_int_equal(store_open(p, 0, &s), 0);
        assert_int_equal(file_mode(p), 0600);
        store_close(s);
}

static void test_upgrade_from_each_version(void **state) {
        for (unsigned from = 0; from < store_latest_version(); from++) {
                char name[32];
                unsigned current = 99, latest = 0, v = 0;
                Store *s = NULL;

                snprintf(name, sizeof(name), "v%u.db", from);
                _cleanup_free_ char *p = db_path(name);
                assert_int_equal(store_open(p, STORE_OPEN_NO_MIGRATE, &s), 0);
                assert_int_equal(store_migrate(s, from), 0);
                assert_int_equal(store_schema_version(s, &v), 0);
                assert_int_equal(v, from);
                if (from >= 1) {
                        make_kernel(s, KERNEL1, "k1");
                        make_image(s, IMAGE1, "debian", KERNEL1);
                }
                store_close(s);
                /* In SQL: this build's store_vm_insert() writes columns an
                 * older schema does not have. */
                if (from >= 1)
                        assert_int_equal(raw_exec(p, "INSERT INTO vms (id, name, image_id, state, vmm, vcpus, mem_mib, "
                                                     "disk_bytes, spec_json, created_at, updated_at) VALUES "
                                                     "('cccccccccccc0001', 'web', '" IMAGE1 "', 'created', 'qemu', 2, "
                                                     "1024, 8589934592, '{\"vcpus\":2}', 1, 1)"),
                                         SQLITE_OK);

                assert_int_equal(store_check_migrations(p, &current, &latest), STORE_MIGRATIONS_PENDING);
                assert_int_equal(current, from);
                assert_int_equal(latest, store_latest_version());

                assert_int_equal(store_open(p, 0, &s), 0);
                assert_int_equal(store_schema_version(s, &v), 0);
                assert_int_equal(v, store_latest_version());
                if (from >= 1) {
                        VmRecord vm = {};
                        assert_int_equal(store_vm_get_by_name(s, "web", &vm), 0);
                        assert_string_equal(vm.id, "cccccccccccc0001");
                        assert_string_equal(vm.image_id, IMAGE1);
                        assert_string_equal(vm.spec_json, "{\"vcpus\":2}");
                        assert_int_equal(vm.disk_bytes, 8ULL << 30);
                        assert_int_equal(vm.idle_timeout_sec, 0); /* the config's */
                        assert_int_equal(vm.idle_action, VM_IDLE_DEFAULT);
                        assert_int_equal(vm.last_used_at, 0);
                        vm_record_done(&vm);
                        ImageRecord im = {};
                        assert_int_equal(store_image_get_by_name(s, "debian", &im), 0);
                        assert_string_equal(im.kernel_id, KERNEL1);
                        image_record_done(&im);
                }
                /* The newest tables work on the upgraded file. */
                assert_int_equal(store_handle_add(s, NULL, STORE_HANDLE_FILE, "/tmp/x", NULL), 1);
                store_close(s);
                assert_int_equal(store_check_migrations(p, &current, NULL), STORE_MIGRATIONS_CURRENT);
                assert_int_equal(current, store_latest_version());
        }
}

static void test_newer_refused(void **state) {
        _cleanup_free_ char *p = db_path("newer.db");
        _cleanup_free_ char *wal = db_path("newer.db-wal");
        char sql[256];
        unsigned current = 0;
        size_t l1, l2;
        Store *s = (Store *) 0x1;

        snprintf(sql, sizeof(sql),
                 "PRAGMA journal_mode = WAL; CREATE TABLE future (x INTEGER) STRICT; "
                 "INSERT INTO future VALUES (7); PRAGMA user_version = %u;",
                 store_latest_version() + 1);
        assert_int_equal(raw_exec(p, sql), SQLITE_OK);
        assert_int_equal(chmod(p, 0644), 0);
        _cleanup_free_ char *before = slurp(p, &l1);

        error_clear();
        assert_int_equal(store_open(p, 0, &s), -EPROTONOSUPPORT);
        assert_ptr_equal(s, (Store *) 0x1); /* ret untouched on failure */
        assert_non_null(strstr(error_last_message(), "newer banger"));
        assert_int_equal(store_open(p, STORE_OPEN_READONLY, &s), -EPROTONOSUPPORT);
        assert_int_equal(store_open(p, STORE_OPEN_NO_MIGRATE, &s), -EPROTONOSUPPORT);
        assert_int_equal(store_check_migrations(p, &current, NULL), STORE_MIGRATIONS_NEWER);
        assert_int_equal(current, store_latest_version() + 1);

        _cleanup_free_ char *after = slurp(p, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(before, after, l1);
        assert_int_equal(file_mode(p), 0644);
        assert_int_equal(access(wal, F_OK), -1);

        /* While another process holds it open in WAL mode the header may be
         * stale, so the refusal comes from SQLite's own view. */
        sqlite3 *other = NULL;
        assert_int_equal(sqlite3_open_v2(p, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(other, "INSERT INTO future VALUES (8)", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(access(wal, F_OK), 0);
        assert_int_equal(store_open(p, 0, &s), -EPROTONOSUPPORT);
        assert_int_equal(store_check_migrations(p, &current, NULL), STORE_MIGRATIONS_NEWER);
        assert_int_equal(current, store_latest_version() + 1);
        sqlite3_close(other);
}

static void test_check_migrations_missing_and_bad(void **state) {
        _cleanup_free_ char *p = db_path("missing.db");
        _cleanup_free_ char *junk = db_path("junk.db");
        _cleanup_free_ char *link = db_path("link.db");
        unsigned current = 99, latest = 0;
        Store *s = NULL;

        assert_int_equal(store_check_migrations(p, &current, &latest), STORE_MIGRATIONS_PENDING);
        assert_int_equal(current, 0);
        assert_int_equal(latest, store_latest_version());
        assert_int_equal(access(p, F_OK), -1); /* not created */

        /* Read-only open needs an up-to-date database. */
        assert_int_equal(store_open(p, STORE_OPEN_READONLY, &s), -ENOENT);
        assert_int_equal(store_open(p, STORE_OPEN_NO_MIGRATE, &s), 0);
        store_close(s);
        assert_int_equal(store_open(p, STORE_OPEN_READONLY, &s), -ESTALE);
        assert_int_equal(store_open(p, 0, &s), 0);
        store_close(s);
        assert_int_equal(store_open(p, STORE_OPEN_READONLY, &s), 0);
        KernelRecord k = { .id = KERNEL1, .name = "k", .kernel_path = "/k" };
        assert_int_equal(store_kernel_insert(s, &k), -EROFS);
        store_close(s);

        /* Not a database; a symlink is never followed. */
        char junk_data[4096];
        memset(junk_data, 'x', sizeof(junk_data));
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, tmpdir);
        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, "junk.db", junk_data, sizeof(junk_data), 0600), 0);
        assert_int_equal(store_open(junk, 0, &s), -EBADMSG);
        assert_int_equal(store_check_migrations(junk, NULL, NULL), -EBADMSG);
        assert_int_equal(symlink(p, link), 0);
        assert_int_equal(store_open(link, 0, &s), -ELOOP);
        assert_int_equal(store_check_migrations(link, NULL, NULL), -ELOOP);
}

/* A kernel, two images, three VMs (two sharing the prefix "abcdef"). */
static void populate(Store *s) {
        make_kernel(s, KERNEL1, "k1");
        make_image(s, IMAGE1, "debian", KERNEL1);
        make_image(s, IMAGE2, "alpine", NULL);
        make_vm(s, "abcdef000001", "web", IMAGE1);
        make_vm(s, "abcdef000002", "db", IMAGE1);
        make_vm(s, "123456789abc", "cache", IMAGE2);
}

static void test_vm_crud(void **state) {
        _cleanup_free_ char *p = db_path("crud.db");
        Store *s = NULL;
        assert_int_equal(store_open(p, 0, &s), 0);
        populate(s);

        ImageRecord dup_image = { .id = "bbbbbbbbbbbbbbb3", .name = "debian", .rootfs_path = "/x" };
        assert_int_equal(store_image_insert(s, &dup_image), -EEXIST);
        assert_non_null(strstr(error_last_message(), "\"debian\""));

        VmRecord dup = vm_template("abcdef000003", "web", IMAGE1);
        assert_int_equal(store_vm_insert(s, &dup), -EEXIST);
        assert_non_null(strstr(error_last_message(), "a VM named \"web\" already exists"));
        VmRecord bad = vm_template("abcdef000003", "Bad_Name", IMAGE1);
        assert_int_equal(store_vm_insert(s, &bad), -EINVAL);
        VmRecord orphan = vm_template("abcdef000003", "orphan", "eeeeeeeeeeee0000");
        assert_int_equal(store_vm_insert(s, &orphan), -ENOENT);
        assert_non_null(strstr(error_last_message(), "image eeeeeeeeeeee0000 does not exist"));

        VmRecord v = {};
        assert_int_equal(store_vm_get_by_name(s, "nope", &v), -ENOENT);
        assert_int_equal(store_vm_get_by_id(s, "abcdef000001", &v), 0);
        assert_string_equal(v.name, "web");
        assert_int_equal(v.state, VM_STATE_CREATED);
        assert_int_equal(v.vmm, VMM_QEMU);
        assert_null(v.ip);
        assert_int_equal(v.pid, 0);
        usec_t first = v.updated_at;
        free(v.name);
        v.name = strdup("frontend");
        v.state = VM_STATE_RUNNING;
        v.pid = 4242;
        v.vsock_cid = 3;
        v.tap = strdup("tap-abcdef0001");
        free(v.runtime_json);
        v.runtime_json = strdup("{\"qmp\":\"/run/x\"}");
        assert_int_equal(store_vm_update(s, &v), 0);
        assert_true(v.updated_at >= first);
        vm_record_done(&v);
        assert_int_equal(store_vm_get_by_name(s, "frontend", &v), 0);
        assert_int_equal(v.pid, 4242);
        assert_int_equal(v.vsock_cid, 3);
        assert_string_equal(v.tap, "tap-abcdef0001");
        assert_string_equal(v.runtime_json, "{\"qmp\":\"/run/x\"}");
        vm_record_done(&v);

        /* A second VM may not take the same TAP or CID. */
        assert_int_equal(store_vm_get_by_name(s, "db", &v), 0);
        v.vsock_cid = 3;
        assert_int_equal(store_vm_update(s, &v), -EEXIST);
        assert_non_null(strstr(error_last_message(), "vsock_cid"));
        vm_record_done(&v);

        assert_int_equal(store_vm_set_state(s, "abcdef000002", VM_STATE_ERROR, "qemu exited with status 1"), 0);
        assert_int_equal(store_vm_get_by_id(s, "abcdef000002", &v), 0);
        assert_int_equal(v.state, VM_STATE_ERROR);
        assert_string_equal(v.last_error, "qemu exited with status 1");
        vm_record_done(&v);
        assert_int_equal(store_vm_set_state(s, "abcdef000009", VM_STATE_ERROR, NULL), -ENOENT);

        /* The CHECK constraints hold against any writer, not just ours. */
        store_close(s);
        assert_int_equal(raw_exec(p, "UPDATE vms SET state = 'frozen'"), SQLITE_CONSTRAINT);
        assert_int_equal(raw_exec(p, "UPDATE vms SET vmm = 'kvmtool'"), SQLITE_CONSTRAINT);
}

static void test_prefix_lookup(void **state) {
        _cleanup_free_ char *p = db_path("prefix.db");
        Store *s = NULL;
        assert_int_equal(store_open(p, 0, &s), 0);
        populate(s);

        VmRecord *found = NULL;
        size_t n = 0;
        assert_int_equal(store_vm_find_by_prefix(s, "abcdef", &found, &n), 0);
        assert_int_equal(n, 2); /* ambiguous: the caller sees both */
        assert_string_equal(found[0].name, "web");
        assert_string_equal(found[1].name, "db");
        vm_record_array_free(found, n);
        assert_int_equal(store_vm_find_by_prefix(s, "abcdef000002", &found, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(found[0].name, "db");
        vm_record_array_free(found, n);
        assert_int_equal(store_vm_find_by_prefix(s, "ff", &found, &n), 0);
        assert_int_equal(n, 0);
        vm_record_array_free(found, n);
        assert_int_equal(store_vm_find_by_prefix(s, "%", &found, &n), 0); /* never a wildcard */
        assert_int_equal(n, 0);

        store_close(s);
}

static void test_references(void **state) {
        _cleanup_free_ char *p = db_path("refs.db");
        Store *s = NULL;
        size_t n = 0;
        assert_int_equal(store_open(p, 0, &s), 0);
        populate(s);
        assert_int_equal(store_vm_set_state(s, "abcdef000001", VM_STATE_RUNNING, NULL), 0);
        assert_int_equal(store_vm_set_state(s, "abcdef000002", VM_STATE_ERROR, "boom"), 0);

        StoreCounts c;
        assert_int_equal(store_counts(s, &c), 0);
        assert_int_equal(c.vms, 3);
        assert_int_equal(c.vms_by_state[VM_STATE_RUNNING], 1);
        assert_int_equal(c.vms_by_state[VM_STATE_ERROR], 1);
        assert_int_equal(c.vms_by_state[VM_STATE_CREATED], 1);
        assert_int_equal(c.images, 2);
        assert_int_equal(c.kernels, 1);

        /* Referenced records cannot go. */
        assert_int_equal(store_image_delete(s, IMAGE1), -EBUSY);
        assert_non_null(strstr(error_last_message(), "web"));
        assert_non_null(strstr(error_last_message(), "db"));
        /* Named as the user knows them, not by id. */
        assert_non_null(strstr(error_last_message(), "image debian is still in use"));
        assert_int_equal(store_kernel_delete(s, KERNEL1), -EBUSY);
        assert_non_null(strstr(error_last_message(), "kernel k1 is still in use by image(s) debian"));
        assert_null(strstr(error_last_message(), KERNEL1));

        ImageRecord *images = NULL;
        assert_int_equal(store_image_find_by_prefix(s, "bbbb", &images, &n), 0);
        assert_int_equal(n, 2);
        image_record_array_free(images, n);

        assert_int_equal(store_vm_delete(s, "abcdef000001"), 0);
        assert_int_equal(store_vm_delete(s, "abcdef000001"), -ENOENT);
        assert_int_equal(store_vm_delete(s, "abcdef000002"), 0);
        assert_int_equal(store_image_delete(s, IMAGE1), 0);
        assert_int_equal(store_kernel_delete(s, KERNEL1), 0);
        assert_int_equal(store_kernel_delete(s, KERNEL1), -ENOENT);

        VmRecord *all = NULL;
        assert_int_equal(store_vm_list(s, &all, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(all[0].name, "cache");
        vm_record_array_free(all, n);
        store_close(s);
}

static void test_ip_allocation(void **state) {
        _cleanup_free_ char *p = db_path("ip.db");
        const char *ids[] = { "dddddddddddd0001", "dddddddddddd0002", "dddddddddddd0003",
                              "dddddddddddd0004", "dddddddddddd0005", "dddddddddddd0006" };
        const char *names[] = { "a", "b", "c", "d", "e", "f" };
        Store *s = NULL;
        char *ip = NULL;

        assert_int_equal(store_open(p, 0, &s), 0);
        make_image(s, IMAGE1, "img", NULL);
        for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                make_vm(s, ids[i], names[i], IMAGE1);

        /* A /29 has 6 hosts; the bridge takes .1, leaving .2-.6. */
        for (size_t i = 0; i < 5; i++) {
                char want[32];
                snprintf(want, sizeof(want), "10.9.8.%zu", i + 2);
                assert_int_equal(store_ip_allocate(s, ids[i], "10.9.8.0/29", "10.9.8.1", &ip), 0);
                assert_string_equal(ip, want);
                free(ip);
        }
        assert_int_equal(store_ip_allocate(s, ids[5], "10.9.8.0/29", "10.9.8.1", &ip), -ENOSPC);
        assert_non_null(strstr(error_last_message(), "no free guest address left in 10.9.8.0/29"));

        /* Stable: asking again gives the same address. */
        assert_int_equal(store_ip_allocate(s, ids[3], "10.9.8.0/29", "10.9.8.1", &ip), 0);
        assert_string_equal(ip, "10.9.8.5");
        free(ip);

        /* Reused after release and after delete. */
        assert_int_equal(store_ip_release(s, ids[1]), 0);
        assert_int_equal(store_ip_allocate(s, ids[5], "10.9.8.0/29", "10.9.8.1", &ip), 0);
        assert_string_equal(ip, "10.9.8.3");
        free(ip);
        assert_int_equal(store_vm_delete(s, ids[2]), 0);
        assert_int_equal(store_ip_allocate(s, ids[1], "10.9.8.0/29", "10.9.8.1", &ip), 0);
        assert_string_equal(ip, "10.9.8.4");
        free(ip);

        /* A VM whose address is outside a new subnet gets one inside it. */
        assert_int_equal(store_ip_allocate(s, ids[0], "10.9.9.0/24", "10.9.9.1", &ip), 0);
        assert_string_equal(ip, "10.9.9.2");
        free(ip);

        assert_int_equal(store_ip_allocate(s, ids[0], "10.9.9.1/24", NULL, &ip), -EINVAL);
        assert_int_equal(store_ip_allocate(s, ids[0], "10.9.9.0/24", "10.9.10.1", &ip), -EINVAL);
        assert_int_equal(store_ip_allocate(s, "dddddddddddd0099", "10.9.9.0/24", NULL, &ip), -ENOENT);
        store_close(s);
}

#define N_VMS 200
#define N_THREADS 8

typedef struct Worker {
        const char *path;
        unsigned index;
        int result;
        char *ips[N_VMS];
} Worker;

static void vm_id_for(unsigned i, char buf[static 17]) {
        snprintf(buf, 17, "eeee%012x", i);
}

static void *allocate_worker(void *arg) {
        Worker *w = arg;
        Store *s = NULL;
        w->result = store_open(w->path, 0, &s); /* its own connection */
        for (unsigned i = w->index; w->result >= 0 && i < N_VMS; i += N_THREADS) {
                char id[17];
                vm_id_for(i, id);
                w->result = store_ip_allocate(s, id, "10.200.0.0/16", "10.200.0.1", &w->ips[i]);
        }
        store_close(s);
        return NULL;
}

static void test_ip_concurrent(void **state) {
        _cleanup_free_ char *p = db_path("concurrent.db");
        static Worker workers[N_THREADS];
        pthread_t threads[N_THREADS];
        bool seen[256] = {};
        Store *s = NULL;

        assert_int_equal(store_open(p, 0, &s), 0);
        make_image(s, IMAGE1, "img", NULL);
        for (unsigned i = 0; i < N_VMS; i++) {
                char id[17], name[16];
                vm_id_for(i, id);
                snprintf(name, sizeof(name), "vm-%u", i);
                make_vm(s, id, name, IMAGE1);
        }
        store_close(s);

        for (unsigned t = 0; t < N_THREADS; t++) {
                workers[t] = (Worker){ .path = p, .index = t };
                assert_int_equal(pthread_create(&threads[t], NULL, allocate_worker, &workers[t]), 0);
        }
        for (unsigned t = 0; t < N_THREADS; t++) {
                assert_int_equal(pthread_join(threads[t], NULL), 0);
                assert_int_equal(workers[t].result, 0);
        }

        /* Lowest-free with no gaps: exactly 10.200.0.2 .. 10.200.0.201, each once. */
        assert_int_equal(store_open(p, 0, &s), 0);
        for (unsigned i = 0; i < N_VMS; i++) {
                const char *ip = workers[i % N_THREADS].ips[i];
                unsigned a, b, c, d;
                assert_non_null(ip);
                assert_int_equal(sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d), 4);
                assert_true(a == 10 && b == 200 && c == 0 && d >= 2 && d <= N_VMS + 1);
                assert_false(seen[d]);
                seen[d] = true;

                /* Survived close and reopen. */
                char id[17];
                VmRecord v = {};
                vm_id_for(i, id);
                assert_int_equal(store_vm_get_by_id(s, id, &v), 0);
                assert_string_equal(v.ip, ip);
                vm_record_done(&v);
                char *again = NULL;
                assert_int_equal(store_ip_allocate(s, id, "10.200.0.0/16", "10.200.0.1", &again), 0);
                assert_string_equal(again, ip);
                free(again);
        }
        for (unsigned i = 0; i < N_VMS; i++)
                free(workers[i % N_THREADS].ips[i]);
        store_close(s);
}

static void test_handles(void **state) {
        _cleanup_free_ char *p = db_path("handles.db");
        StoreHandle *h = NULL;
        size_t n = 0;
        Store *s = NULL;

        assert_int_equal(store_open(p, 0, &s), 0);
        make_image(s, IMAGE1, "img", NULL);
        make_vm(s, "ffffffffffff0001", "one", IMAGE1);
        make_vm(s, "ffffffffffff0002", "two", IMAGE1);

        assert_int_equal(store_handle_add(s, "ffffffffffff0001", STORE_HANDLE_TAP, "tap-one", NULL), 1);
        assert_int_equal(store_handle_add(s, "ffffffffffff0001", STORE_HANDLE_TAP, "tap-one", NULL), 0);
        assert_int_equal(store_handle_add(s, "ffffffffffff0002", STORE_HANDLE_TAP, "tap-one", NULL), -EEXIST);
        assert_non_null(strstr(error_last_message(), "ffffffffffff0001"));
        assert_int_equal(store_handle_add(s, "ffffffffffff0001", STORE_HANDLE_LOOP, "/dev/loop7", "/img/root.ext4"), 1);
        assert_int_equal(store_handle_add(s, NULL, STORE_HANDLE_NFT, "banger nat 10.0.0.2", NULL), 1);
        assert_int_equal(store_handle_add(s, "ffffffffffff0009", STORE_HANDLE_FILE, "/x", NULL), -ENOENT);
        assert_int_equal(store_handle_add(s, NULL, _STORE_HANDLE_KIND_MAX, "/x", NULL), -EINVAL);

        assert_int_equal(store_handle_list(s, STORE_HANDLE_TAP, &h, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(h[0].name, "tap-one");
        assert_string_equal(h[0].vm_id, "ffffffffffff0001");
        store_handle_array_free(h, n);

        assert_int_equal(store_handle_list_vm(s, "ffffffffffff0001", &h, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(h[1].kind, STORE_HANDLE_LOOP);
        assert_string_equal(h[1].detail, "/img/root.ext4");
        store_handle_array_free(h, n);

        /* Deleting the VM keeps what it still holds on the host, as orphans. */
        assert_int_equal(store_vm_delete(s, "ffffffffffff0001"), 0);
        store_close(s);
        assert_int_equal(store_open(p, 0, &s), 0); /* and a restart keeps them */
        assert_int_equal(store_handle_list(s, _STORE_HANDLE_KIND_INVALID, &h, &n), 0);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < n; i++)
                assert_null(h[i].vm_id);
        store_handle_array_free(h, n);

        assert_int_equal(store_handle_remove(s, STORE_HANDLE_TAP, "tap-one"), 0);
        assert_int_equal(store_handle_remove(s, STORE_HANDLE_TAP, "tap-one"), -ENOENT);
        StoreCounts c;
        assert_int_equal(store_counts(s, &c), 0);
        assert_int_equal(c.handles, 2);
        store_close(s);
}

/* The table-rebuild path (foreign keys off around the step) with a scratch
 * schema: rows and references survive, and a step that would leave a
 * dangling reference is rolled back as a whole. */
static void test_rebuild_migration(void **state) {
        _cleanup_free_ char *p = db_path("rebuild.db");
        static const StoreMigration list[] = {
                { .sql = "CREATE TABLE parent (id INTEGER PRIMARY KEY, state TEXT NOT NULL CHECK (state IN ('a'))) "
                         "STRICT;"
                         "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL "
                         "REFERENCES parent(id) ON DELETE CASCADE) STRICT;"
                         "INSERT INTO parent VALUES (1, 'a'); INSERT INTO child VALUES (10, 1);" },
                { .sql = "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, state TEXT NOT NULL "
                         "CHECK (state IN ('a', 'b'))) STRICT;"
                         "INSERT INTO parent_new SELECT * FROM parent; DROP TABLE parent;"
                         "ALTER TABLE parent_new RENAME TO parent;",
                  .foreign_keys_off = true },
                { .sql = "DELETE FROM parent; CREATE TABLE marker (x INTEGER) STRICT;", .foreign_keys_off = true },
        };
        Store *s = NULL;
        unsigned v;

        assert_int_equal(store_open(p, STORE_OPEN_NO_MIGRATE, &s), 0);
        assert_int_equal(store_migrate_list(s, list, ELEMENTSOF(list), 2), 0);
        store_close(s);
        _cleanup_free_ char *children = raw_text(p, "SELECT count(*) FROM child");
        assert_string_equal(children, "1"); /* DROP TABLE did not cascade */
        assert_int_equal(raw_exec(p, "PRAGMA foreign_keys = ON; UPDATE parent SET state = 'b'"), SQLITE_OK);

        assert_int_equal(store_open(p, STORE_OPEN_NO_MIGRATE, &s), 0);
        assert_int_equal(store_migrate_list(s, list, ELEMENTSOF(list), 3), -EBADMSG);
        assert_non_null(strstr(error_last_message(), "dangling reference in table child"));
        assert_int_equal(store_schema_version(s, &v), 0);
        assert_int_equal(v, 2);
        store_close(s);
        _cleanup_free_ char *marker = raw_text(p, "SELECT count(*) FROM sqlite_schema WHERE name = 'marker'");
        assert_string_equal(marker, "0");
}

static void test_ids(void **state) {
        char a[STORE_ID_GENERATED_LEN + 1], b[STORE_ID_GENERATED_LEN + 1];
        assert_int_equal(store_id_generate(a), 0);
        assert_int_equal(store_id_generate(b), 0);
        assert_true(store_id_is_valid(a));
        assert_int_equal(strlen(a), 16);
        assert_string_not_equal(a, b);
        assert_false(store_id_is_valid("abc"));
        assert_false(store_id_is_valid("ABCDEF123456"));
        assert_false(store_id_is_valid("abcdef12345g"));
        assert_true(store_id_is_valid("abcdef123456"));
        assert_int_equal(vm_state_from_string("stopping"), VM_STATE_STOPPING);
        assert_string_equal(vm_state_to_string(VM_STATE_ERROR), "error");
        assert_int_equal(vm_state_from_string("paused"), VM_STATE_PAUSED);
        assert_int_equal(vm_state_from_string("frozen"), _VM_STATE_INVALID);
}

/* The listing's brief JSON text: the same VMs in the same order as
 * store_vm_list(), each with its image's name rather than its id, and its
 * creation time as vm show writes it. */
static void test_vm_list_brief_json(void **state) {
        _cleanup_free_ char *p = db_path("summary.db");
        Store *s = NULL;
        assert_int_equal(store_open(p, 0, &s), 0);
        _cleanup_free_ char *empty = NULL;
        assert_int_equal(store_vm_list_brief_json(s, &empty), 0);
        assert_string_equal(empty, "[]");
        make_image(s, IMAGE1, "debian", NULL);
        make_image(s, IMAGE2, "alpine", NULL);
        VmRecord v = vm_template("eeeeeeeeeeee0002", "second", IMAGE2);
        v.created_at = 1796680646681501;
        v.ip = "172.16.0.9";
        v.state = VM_STATE_STOPPED;
        assert_int_equal(store_vm_insert(s, &v), 0);
        v = vm_template("eeeeeeeeeeee0001", "first", IMAGE1);
        v.created_at = 1000;
        assert_int_equal(store_vm_insert(s, &v), 0);

        _cleanup_free_ char *text = NULL;
        VmRecord *all = NULL;
        size_t n_all = 0;
        assert_int_equal(store_vm_list_brief_json(s, &text), 0);
        assert_null(strchr(text, '\n'));
        assert_int_equal(store_vm_list(s, &all, &n_all), 0);
        json_t *arr = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        assert_true(json_is_array(arr));
        assert_int_equal(json_array_size(arr), 2);
        assert_int_equal(n_all, 2);
        static const char *const keys[] = { "id",   "name",       "state",      "image",     "ip",
                                            "vcpu", "memory_mib", "disk_bytes", "created_at" };
        for (size_t i = 0; i < n_all; i++) {
                json_t *o = json_array_get(arr, i);
                assert_int_equal(json_object_size(o), ELEMENTSOF(keys));
                const char *key;
                json_t *val;
                size_t k = 0;
                json_object_foreach (o, key, val)
                        assert_string_equal(key, keys[k++]);
                assert_string_equal(json_string_value(json_object_get(o, "id")), all[i].id);
                assert_string_equal(json_string_value(json_object_get(o, "name")), all[i].name);
                assert_string_equal(json_string_value(json_object_get(o, "state")), vm_state_to_string(all[i].state));
                assert_int_equal(json_integer_value(json_object_get(o, "vcpu")), all[i].vcpus);
                assert_int_equal(json_integer_value(json_object_get(o, "memory_mib")), all[i].mem_mib);
                assert_int_equal(json_integer_value(json_object_get(o, "disk_bytes")), all[i].disk_bytes);
                char ts[40];
                assert_string_equal(json_string_value(json_object_get(o, "created_at")),
                                    format_timestamp(ts, sizeof(ts), all[i].created_at));
        }
        json_t *first = json_array_get(arr, 0), *second = json_array_get(arr, 1);
        assert_string_equal(json_string_value(json_object_get(first, "name")), "first");
        assert_string_equal(json_string_value(json_object_get(first, "image")), "debian");
        assert_true(json_is_null(json_object_get(first, "ip")));
        assert_string_equal(json_string_value(json_object_get(second, "image")), "alpine");
        assert_string_equal(json_string_value(json_object_get(second, "ip")), "172.16.0.9");
        assert_string_equal(json_string_value(json_object_get(second, "state")), "stopped");
        assert_string_equal(json_string_value(json_object_get(second, "created_at")), "2026-12-07T21:57:26Z");
        json_decref(arr);
        vm_record_array_free(all, n_all);
        store_close(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ids),
                cmocka_unit_test_setup_teardown(test_fresh_open, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upgrade_from_each_version, setup, teardown),
                cmocka_unit_test_setup_teardown(test_newer_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_check_migrations_missing_and_bad, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vm_crud, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prefix_lookup, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vm_list_brief_json, setup, teardown),
                cmocka_unit_test_setup_teardown(test_references, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ip_allocation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ip_concurrent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_handles, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rebuild_migration, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
