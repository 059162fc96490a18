/* SPDX-License-Identifier: MIT */
/* store_observe(): every VM, image and kernel row that appears, changes
 * state or goes away is told, whichever call wrote it, against a real
 * SQLite file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store-test-util.h"

#define VM1 "cccccccccccc0001"

typedef struct Seen {
        char lines[16][160];
        unsigned n;
} Seen;

static void record(void *userdata, const StoreEvent *e) {
        Seen *s = userdata;
        assert_true(s->n < 16);
        snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s %s %s %s %s>%s %s", e->kind, e->event, e->id,
                 e->name ? e->name : "-", e->old_state ? e->old_state : "-", e->new_state ? e->new_state : "-",
                 e->reason ? e->reason : "-");
}

static void test_observe(void **state) {
        _cleanup_free_ char *p = db_path("observe.db");
        Store *s = NULL, *other = NULL;
        Seen seen = {}, other_seen = {};
        assert_int_equal(store_open(p, 0, &s), 0);
        assert_int_equal(store_open(p, STORE_OPEN_NO_MIGRATE, &other), 0);
        assert_int_equal(store_observe(s, record, &seen), 0);
        assert_int_equal(store_observe(other, record, &other_seen), 0);

        make_kernel(s, KERNEL1, "k1");
        make_image(s, IMAGE1, "debian", KERNEL1);
        make_vm(s, VM1, "web", IMAGE1);
        /* Refused by a foreign key after the row was gone from the
         * statement's view: nothing happened, nothing is told. */
        assert_true(store_image_delete(s, IMAGE1) < 0);
        assert_true(store_kernel_delete(s, KERNEL1) < 0);
        VmRecord v = {};
        assert_int_equal(store_vm_get_by_id(s, VM1, &v), 0);
        v.state = VM_STATE_STARTING;
        assert_int_equal(store_vm_update(s, &v), 0);
        v.vcpus = 4; /* not a state change: nothing to tell */
        assert_int_equal(store_vm_update(s, &v), 0);
        assert_int_equal(store_vm_set_state(s, VM1, VM_STATE_ERROR, "the VMM exited"), 0);
        vm_record_done(&v);
        assert_int_equal(store_vm_delete(s, VM1), 0);

        assert_int_equal(seen.n, 6);
        assert_string_equal(seen.lines[0], "kernel created " KERNEL1 " k1 ->- -");
        assert_string_equal(seen.lines[1], "image created " IMAGE1 " debian ->- -");
        assert_string_equal(seen.lines[2], "vm created " VM1 " web ->created -");
        assert_string_equal(seen.lines[3], "vm state " VM1 " web created>starting -");
        assert_string_equal(seen.lines[4], "vm state " VM1 " web starting>error the VMM exited");
        assert_string_equal(seen.lines[5], "vm deleted " VM1 " web error>- -");
        /* Each connection tells only its own writes. */
        assert_int_equal(other_seen.n, 0);
        store_close(other);
        store_close(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_observe, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
