/* SPDX-License-Identifier: MIT */
/* debootstrap's output folded into one stage with counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "debootstrap-progress.h"
#include "macro.h"

static void test_package_lines_become_counts(void **state) {
        DebootstrapProgress p = {};
        char buf[256];
        static const char *const lines[] = {
                "I: Retrieving InRelease ",
                "I: Retrieving Packages ",
                "I: Validating Packages ",
                "I: Resolving dependencies of required packages...",
                "I: Retrieving adduser 3.134",
                "I: Validating adduser 3.134",
                "I: Retrieving apt 2.6.1",
                "I: Validating apt 2.6.1",
                "I: Extracting adduser...",
                "I: Unpacking required packages...",
                "I: Unpacking adduser...",
                "I: Unpacking the base system...",
                "I: Configuring libc6:amd64...",
                "W: Failure trying to run: chroot ...",
                "I: Base system installed successfully.",
        };
        static const char *const want[] = {
                "I: Retrieving InRelease ",
                "I: Retrieving Packages ",
                "I: Validating Packages ",
                "I: Resolving dependencies of required packages...",
                "retrieving packages: 1",
                "validating packages: 1",
                "retrieving packages: 2",
                "validating packages: 2",
                "extracting packages: 1",
                "I: Unpacking required packages...",
                "unpacking packages: 1",
                "I: Unpacking the base system...",
                "configuring packages: 1", /* with its architecture */
                "W: Failure trying to run: chroot ...",
                "I: Base system installed successfully.",
        };
        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                assert_true(debootstrap_progress_line(&p, lines[i], buf, sizeof(buf)));
                assert_string_equal(buf, want[i]);
        }
        assert_false(debootstrap_progress_line(&p, "", buf, sizeof(buf)));
        assert_int_equal(p.count[DEBOOTSTRAP_RETRIEVING], 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_package_lines_become_counts),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
