/* SPDX-License-Identifier: MIT */
/* store_pool_*(): a connection given back is handed out again (set up only
 * once), one that failed or was left mid-transaction is not, and threads
 * sharing the pool each get a connection of their own, against a real
 * SQLite file. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "store-internal.h"
#include "store-test-util.h"

typedef struct Setups {
        pthread_mutex_t lock;
        unsigned n;
} Setups;

static int count_setup(Store *s, void *userdata) {
        Setups *c = userdata;
        pthread_mutex_lock(&c->lock);
        c->n++;
        pthread_mutex_unlock(&c->lock);
        return 0;
}

static StorePool *new_pool(const char *name, Setups *c, unsigned max_idle) {
        _cleanup_free_ char *p = db_path(name);
        Store *s = NULL;
        assert_int_equal(store_open(p, 0, &s), 0); /* migrated once, as the daemon does */
        store_close(s);
        StorePool *pool = NULL;
        assert_int_equal(store_pool_new(p, STORE_OPEN_NO_MIGRATE, count_setup, c, max_idle, &pool), 0);
        return pool;
}

static void test_reuse(void **state) {
        Setups c = { .lock = PTHREAD_MUTEX_INITIALIZER };
        StorePool *pool = new_pool("reuse.db", &c, 2);
        Store *s = NULL, *again = NULL;
        assert_int_equal(store_pool_get(pool, &s), 0);
        make_kernel(s, KERNEL1, "k1");
        store_close(s);
        assert_int_equal(store_pool_get(pool, &again), 0);
        assert_ptr_equal(again, s);
        KernelRecord k = {};
        assert_int_equal(store_kernel_get_by_id(again, KERNEL1, &k), 0);
        kernel_record_done(&k);
        /* A refused write leaves the connection fit: it is kept. */
        KernelRecord dup = { .id = "aaaaaaaaaaaaaaa2", .name = "k1", .kernel_path = "/boot/vmlinuz" };
        assert_int_equal(store_kernel_insert(again, &dup), -EEXIST);
        store_close(again);
        assert_int_equal(store_pool_opened(pool), 1);
        assert_int_equal(c.n, 1);

        /* Three at once with room for two idle: the third is closed. */
        Store *a = NULL, *b = NULL, *d = NULL;
        assert_int_equal(store_pool_get(pool, &a), 0);
        assert_int_equal(store_pool_get(pool, &b), 0);
        assert_int_equal(store_pool_get(pool, &d), 0);
        assert_int_equal(store_pool_opened(pool), 3);
        store_close(a);
        store_close(b);
        store_close(d);
        assert_int_equal(store_pool_get(pool, &a), 0);
        assert_int_equal(store_pool_get(pool, &b), 0);
        assert_int_equal(store_pool_get(pool, &d), 0);
        assert_int_equal(store_pool_opened(pool), 4);
        assert_int_equal(c.n, 4);
        store_close(a);
        store_close(b);
        store_close(d);
        store_pool_free(pool);
}

static void test_discard(void **state) {
        Setups c = { .lock = PTHREAD_MUTEX_INITIALIZER };
        StorePool *pool = new_pool("discard.db", &c, 4);
        Store *s = NULL;

        /* An SQLite error: the connection is closed, not reused. */
        assert_int_equal(store_pool_get(pool, &s), 0);
        assert_true(store_exec(s, "SELECT * FROM no_such_table", "reading") < 0);
        store_close(s);
        assert_int_equal(store_pool_get(pool, &s), 0);
        assert_int_equal(store_pool_opened(pool), 2);

        /* A transaction left open: its locks must not outlive the caller. */
        assert_int_equal(store_begin_immediate(s), 0);
        store_close(s);
        assert_int_equal(store_pool_get(pool, &s), 0);
        assert_int_equal(store_pool_opened(pool), 3);
        make_kernel(s, KERNEL1, "k1"); /* the write lock was let go with it */

        /* A statement left unfinalized. */
        sqlite3_stmt *st = NULL;
        assert_int_equal(store_prepare(s, "SELECT 1", &st), 0);
        store_close(s);
        sqlite3_finalize(st);
        assert_int_equal(store_pool_get(pool, &s), 0);
        assert_int_equal(store_pool_opened(pool), 4);
        store_close(s);
        assert_int_equal(c.n, 4);
        store_pool_free(pool);
}

typedef struct Worker {
        StorePool *pool;
        unsigned index;
        int r;
} Worker;

#define THREADS 8
#define ROUNDS 40

static void *worker_main(void *p) {
        Worker *w = p;
        for (unsigned i = 0; i < ROUNDS && w->r >= 0; i++) {
                Store *s = NULL;
                w->r = store_pool_get(w->pool, &s);
                if (w->r < 0)
                        break;
                char id[STORE_ID_GENERATED_LEN + 1], name[32];
                snprintf(name, sizeof(name), "k-%u-%u", w->index, i);
                w->r = store_id_generate(id);
                KernelRecord k = { .id = id, .name = name, .kernel_path = "/boot/vmlinuz" };
                if (w->r >= 0)
                        w->r = store_kernel_insert(s, &k);
                store_close(s);
        }
        return NULL;
}

static void test_threads(void **state) {
        Setups c = { .lock = PTHREAD_MUTEX_INITIALIZER };
        StorePool *pool = new_pool("threads.db", &c, THREADS);
        pthread_t t[THREADS];
        Worker w[THREADS];
        for (unsigned i = 0; i < THREADS; i++) {
                w[i] = (Worker){ .pool = pool, .index = i };
                assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
        }
        for (unsigned i = 0; i < THREADS; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(w[i].r, 0);
        }
        /* Never more connections than callers at once, each set up once. */
        assert_true(store_pool_opened(pool) <= THREADS);
        assert_int_equal(c.n, store_pool_opened(pool));
        Store *s = NULL;
        KernelRecord *all = NULL;
        size_t n = 0;
        assert_int_equal(store_pool_get(pool, &s), 0);
        assert_int_equal(store_kernel_list(s, &all, &n), 0);
        assert_int_equal(n, THREADS * ROUNDS);
        kernel_record_array_free(all, n);
        store_close(s);
        store_pool_free(pool);
}

/* Freed while a connection is out: that one is closed when given back, and
 * the pool with it (ASan reports a leak or a use after free otherwise). */
static void test_free_while_in_use(void **state) {
        Setups c = { .lock = PTHREAD_MUTEX_INITIALIZER };
        StorePool *pool = new_pool("free.db", &c, 2);
        Store *idle = NULL, *s = NULL;
        assert_int_equal(store_pool_get(pool, &idle), 0);
        assert_int_equal(store_pool_get(pool, &s), 0);
        store_close(idle);
        assert_null(store_pool_free(pool));
        make_kernel(s, KERNEL1, "k1");
        store_close(s);
}

static int fail_setup(Store *s, void *userdata) {
        return -EIO;
}

static void test_setup_fails(void **state) {
        _cleanup_free_ char *p = db_path("setup.db");
        StorePool *pool = NULL;
        Store *s = NULL;
        assert_int_equal(store_pool_new(p, 0, fail_setup, NULL, 2, &pool), 0);
        assert_int_equal(store_pool_get(pool, &s), -EIO);
        assert_int_equal(store_pool_opened(pool), 0);
        store_pool_free(pool); /* nothing handed out: freed here */
        assert_int_equal(store_pool_new(p, STORE_OPEN_READONLY, NULL, NULL, 2, &pool), -EINVAL);
}

static char *self_exe;

/* Another process's connection, as a CLI, a tool or a test script opens one:
 * it reads, then closes. The last connection to close checkpoints and
 * deletes the -wal and -shm files, and SQLite decides it is the last when no
 * other process holds a lock on the database file. */
static int other_process_touch(const char *path) {
        sqlite3 *db = NULL;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
                return 2;
        int rc = sqlite3_exec(db, "SELECT count(*) FROM kernels", NULL, NULL, NULL);
        sqlite3_close(db);
        return rc == SQLITE_OK ? 0 : 3;
}

static void run_other_process(const char *path) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) { /* a fresh process: SQLite's state must not come from this one */
                execl(self_exe, self_exe, "--touch", path, (char *) NULL);
                _exit(127);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A second connection opened and closed in this process must leave the
 * first one's locks alone (the store checks a file through a descriptor of
 * its own only while no connection of this process has it): else another
 * process's connection deletes the WAL from under the first, whose later
 * writes are lost. */
static void test_second_open_keeps_locks(void **state) {
        _cleanup_free_ char *p = db_path("locks.db");
        _cleanup_free_ char *wal = NULL;
        assert_true(asprintf(&wal, "%s-wal", p) > 0);
        Store *a = NULL, *b = NULL, *c = NULL;
        assert_int_equal(store_open(p, 0, &a), 0);
        make_kernel(a, KERNEL1, "k1");
        assert_int_equal(store_open(p, STORE_OPEN_NO_MIGRATE, &b), 0);
        store_close(b);
        run_other_process(p);
        assert_int_equal(access(wal, F_OK), 0); /* still in use by a */
        make_kernel(a, "aaaaaaaaaaaaaaa2", "k2");
        store_close(a);
        assert_int_equal(store_open(p, STORE_OPEN_NO_MIGRATE, &c), 0);
        KernelRecord k = {};
        assert_int_equal(store_kernel_get_by_name(c, "k2", &k), 0);
        kernel_record_done(&k);
        store_close(c);
}

int main(int argc, char **argv) {
        if (argc == 3 && streq(argv[1], "--touch"))
                return other_process_touch(argv[2]);
        self_exe = argv[0];
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_second_open_keeps_locks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
                cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
                cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_while_in_use, setup, teardown),
                cmocka_unit_test_setup_teardown(test_setup_fails, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
