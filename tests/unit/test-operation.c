/* SPDX-License-Identifier: MIT */
/* The operations registry (src/daemon/operation.c): listing, progress,
 * cancel, its hooks across threads, the calling thread's operation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "error.h"
#include "macro.h"
#include "operation.h"

static json_int_t jint(json_t *o, const char *key) {
        return json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static void test_list_in_order_with_client(void **state) {
        Operations *ops = NULL;
        assert_int_equal(operations_new(&ops), 0);
        OperationClient c = { .pid = getpid(), .uid = getuid() };
        operation_client_read_command(&c);
        assert_non_null(strstr(c.command, "test-operation"));
        Operation *a, *b, *d;
        assert_int_equal(operations_add(ops, "vm.create", "web", &c, &a), 0);
        assert_int_equal(operations_add(ops, "image.import", "deb", NULL, &b), 0);
        assert_int_equal(operations_add(ops, "vm.start", "", NULL, &d), 0);
        assert_true(operation_id(a) < operation_id(b) && operation_id(b) < operation_id(d));
        operations_remove(ops, d); /* the last one: the next goes after b */
        Operation *e;
        assert_int_equal(operations_add(ops, "kernel.import", "k", NULL, &e), 0);
        json_t *j = operations_to_json(ops);
        json_t *arr = json_object_get(j, "operations");
        assert_int_equal(json_array_size(arr), 3);
        json_t *first = json_array_get(arr, 0);
        assert_int_equal(jint(first, "id"), (json_int_t) operation_id(a));
        assert_string_equal(jstr(first, "kind"), "vm.create");
        assert_string_equal(jstr(first, "target"), "web");
        assert_int_equal(jint(json_object_get(first, "client"), "pid"), getpid());
        assert_string_equal(jstr(json_object_get(first, "client"), "command"), c.command);
        assert_true(jint(first, "started") > 0);
        assert_false(json_is_true(json_object_get(first, "cancelled")));
        assert_string_equal(jstr(json_array_get(arr, 2), "kind"), "kernel.import");
        json_decref(j);
        operations_remove(ops, a);
        operations_remove(ops, b);
        operations_remove(ops, e);
        j = operations_to_json(ops);
        assert_int_equal(json_array_size(json_object_get(j, "operations")), 0);
        json_decref(j);
        assert_null(operations_free(ops));
}

static void test_progress_bytes_belong_to_their_stage(void **state) {
        Operations *ops = NULL;
        Operation *op;
        assert_int_equal(operations_new(&ops), 0);
        assert_int_equal(operations_add(ops, "image.import", "x", NULL, &op), 0);
        operation_set_progress(op, "download", "fetching", 10, 100);
        operation_set_progress(op, "download", NULL, 50, 100); /* no message: the last one stays */
        json_t *j = operation_to_json(op);
        assert_string_equal(jstr(j, "stage"), "download");
        assert_string_equal(jstr(j, "message"), "fetching");
        assert_int_equal(jint(j, "bytes"), 50);
        assert_int_equal(jint(j, "total"), 100);
        json_decref(j);
        operation_set_progress(op, "write", "", 0, 0);
        j = operation_to_json(op);
        assert_string_equal(jstr(j, "stage"), "write");
        assert_int_equal(jint(j, "bytes"), 0);
        assert_int_equal(jint(j, "total"), 0);
        json_decref(j);
        operations_free(ops);
}

static void test_long_text_is_cut_as_utf8(void **state) {
        Operations *ops = NULL;
        Operation *op;
        char target[1024] = "";
        for (int i = 0; i < 300; i++)
                strcat(target, "\xc3\xa9"); /* é */
        assert_int_equal(operations_new(&ops), 0);
        assert_int_equal(operations_add(ops, "vm.create", target, NULL, &op), 0);
        json_t *j = operation_to_json(op); /* NULL if the cut split a character */
        assert_non_null(j);
        size_t l = strlen(jstr(j, "target"));
        assert_true(l < OPERATION_TARGET_MAX && l % 2 == 0);
        json_decref(j);
        operations_free(ops);
}

static void count_hook(void *userdata) {
        (*(int *) userdata)++;
}

static void test_cancel_runs_hooks_once(void **state) {
        Operations *ops = NULL;
        Operation *op, *got = NULL;
        int n1 = 0, n2 = 0, n3 = 0;
        assert_int_equal(operations_new(&ops), 0);
        assert_int_equal(operations_add(ops, "vm.create", "web", NULL, &op), 0);
        error_clear();
        assert_int_equal(operations_cancel(ops, operation_id(op) + 100, NULL), -ENOENT);
        assert_non_null(strstr(error_last_message(), "is in flight"));
        assert_int_equal(operation_on_cancel(op, count_hook, &n1), 0);
        assert_int_equal(operation_on_cancel(op, count_hook, &n2), 0);
        operation_on_cancel_remove(op, count_hook, &n2);
        assert_false(operation_cancelled(op));
        assert_int_equal(operations_cancel(ops, operation_id(op), &got), 0);
        assert_ptr_equal(got, op);
        assert_int_equal(operations_cancel(ops, operation_id(op), NULL), 0); /* again: no error, no second run */
        assert_true(operation_cancelled(op));
        assert_int_equal(n1, 1);
        assert_int_equal(n2, 0);
        assert_int_equal(operation_on_cancel(op, count_hook, &n3), 0); /* already cancelled: runs at once */
        assert_int_equal(n3, 1);
        json_t *j = operation_to_json(op);
        assert_true(json_is_true(json_object_get(j, "cancelled")));
        json_decref(j);
        assert_false(operation_cancelled(NULL));
        operations_free(ops);
}

/* One without cancellation points refuses the cancel and is not marked. */
static void test_not_cancellable_refuses(void **state) {
        Operations *ops = NULL;
        Operation *op;
        int n = 0;
        assert_int_equal(operations_new(&ops), 0);
        assert_int_equal(operations_add(ops, "image.build", "deb", NULL, &op), 0);
        operation_set_cancellable(op, false);
        assert_int_equal(operation_on_cancel(op, count_hook, &n), 0);
        error_clear();
        assert_int_equal(operations_cancel(ops, operation_id(op), NULL), -EBUSY);
        assert_non_null(strstr(error_last_message(), "(image.build) cannot be cancelled"));
        assert_false(operation_cancelled(op));
        assert_int_equal(n, 0);
        json_t *j = operation_to_json(op);
        assert_false(json_is_true(json_object_get(j, "cancellable")));
        assert_false(json_is_true(json_object_get(j, "cancelled")));
        json_decref(j);
        operations_free(ops);
}

/* operation_commit: a cancel that came first is seen (roll back); one
 * after it is refused as too late, runs no hook, and checks pass. */
static void test_commit_is_the_point_of_no_return(void **state) {
        Operations *ops = NULL;
        Operation *early, *late;
        int n = 0;
        assert_int_equal(operations_new(&ops), 0);
        assert_int_equal(operations_add(ops, "vm.snapshot", "web", NULL, &early), 0);
        assert_int_equal(operations_add(ops, "vm.suspend", "web", NULL, &late), 0);
        assert_int_equal(operation_commit("nothing"), 0); /* no operation on this thread: a no-op */

        assert_int_equal(operations_cancel(ops, operation_id(early), NULL), 0);
        operation_set_current(early);
        assert_int_equal(operation_commit("has taken snapshot s"), -ECANCELED);
        assert_true(operation_progress_cancel("has taken snapshot s", NULL));

        operation_set_current(late);
        assert_false(operation_progress_cancel(NULL, NULL));
        assert_int_equal(operation_on_cancel(late, count_hook, &n), 0);
        assert_int_equal(operation_commit("has saved the state of VM web"), 0);
        error_clear();
        assert_int_equal(operations_cancel(ops, operation_id(late), NULL), -EBUSY);
        assert_string_equal(error_last_message(), "too late to cancel: operation 2 (vm.suspend) has saved the state "
                                                  "of VM web; it completes on its own");
        assert_false(operation_cancelled(late));
        assert_int_equal(operation_check(), 0);
        assert_int_equal(n, 0);
        operation_set_current(NULL);
        operations_free(ops);
}

typedef struct Waiter {
        Operation *op;
        int efd;
        int ready; /* eventfd: the waiter checked once and is about to wait */
        int check_before, check_after;
} Waiter;

static void wake(void *userdata) {
        uint64_t one = 1;
        assert_int_equal(write(*(int *) userdata, &one, sizeof(one)), sizeof(one));
}

/* A worker's wait ends when its operation is cancelled from another thread;
 * its cancellation point then says so. */
static void *waiter_main(void *p) {
        Waiter *w = p;
        operation_set_current(w->op);
        w->check_before = operation_check();
        uint64_t one = 1;
        assert_int_equal(write(w->ready, &one, sizeof(one)), sizeof(one));
        struct pollfd pfd = { .fd = w->efd, .events = POLLIN };
        (void) poll(&pfd, 1, 30000);
        w->check_after = operation_check();
        operation_on_cancel_remove(w->op, wake, &w->efd);
        operation_set_current(NULL);
        return NULL;
}

static void test_cancel_ends_a_wait_in_another_thread(void **state) {
        Operations *ops = NULL;
        Operation *op;
        assert_int_equal(operations_new(&ops), 0);
        assert_int_equal(operations_add(ops, "vm.start", "web", NULL, &op), 0);
        Waiter w = { .op = op,
                     .efd = eventfd(0, EFD_CLOEXEC),
                     .ready = eventfd(0, EFD_CLOEXEC),
                     .check_before = 1,
                     .check_after = 1 };
        assert_true(w.efd >= 0 && w.ready >= 0);
        assert_int_equal(operation_on_cancel(op, wake, &w.efd), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
        uint64_t n;
        assert_int_equal(read(w.ready, &n, sizeof(n)), sizeof(n)); /* not a sleep: load cannot outrun it */
        assert_null(operation_current());                          /* per thread */
        assert_int_equal(operation_check(), 0);
        assert_int_equal(operations_cancel(ops, operation_id(op), NULL), 0);
        pthread_join(t, NULL);
        assert_int_equal(w.check_before, 0);
        assert_int_equal(w.check_after, -ECANCELED);
        close(w.efd);
        close(w.ready);
        operations_free(ops);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_list_in_order_with_client),
                cmocka_unit_test(test_progress_bytes_belong_to_their_stage),
                cmocka_unit_test(test_long_text_is_cut_as_utf8),
                cmocka_unit_test(test_cancel_runs_hooks_once),
                cmocka_unit_test(test_not_cancellable_refuses),
                cmocka_unit_test(test_commit_is_the_point_of_no_return),
                cmocka_unit_test(test_cancel_ends_a_wait_in_another_thread),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
