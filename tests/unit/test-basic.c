/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fs-util.h"
#include "log.h"
#include "spawn.h"
#include "string-util.h"

static void test_name_is_valid(void **state) {
        assert_true(name_is_valid("a"));
        assert_true(name_is_valid("web-01"));
        assert_true(name_is_valid("0abc"));
        assert_false(name_is_valid(""));
        assert_false(name_is_valid("-a"));
        assert_false(name_is_valid("A"));
        assert_false(name_is_valid("a_b"));
        assert_false(name_is_valid("a.vm"));
        char buf[80];
        memset(buf, 'a', 63);
        buf[63] = 0;
        assert_true(name_is_valid(buf));
        buf[63] = 'a';
        buf[64] = 0;
        assert_false(name_is_valid(buf));
}

static void test_utf8(void **state) {
        assert_true(utf8_is_valid_n("héllo", strlen("héllo")));
        assert_false(utf8_is_valid_n("\xc3\x28", 2));
        assert_false(utf8_is_valid_n("\xc0\xaf", 2)); /* overlong */
        assert_false(utf8_is_valid_n("\xed\xa0\x80", 3)); /* surrogate */
        assert_false(utf8_is_valid_n("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
        assert_false(utf8_is_valid_n("\xe2\x82", 2)); /* truncated */
}

static void test_parse_size(void **state) {
        unsigned long long v;
        assert_int_equal(parse_size("8G", &v), 0);
        assert_true(v == 8ULL << 30);
        assert_int_equal(parse_size("512MiB", &v), 0);
        assert_true(v == 512ULL << 20);
        assert_int_equal(parse_size("100", &v), 0);
        assert_true(v == 100);
        assert_int_equal(parse_size("-1", &v), -EINVAL);
        assert_int_equal(parse_size("1X", &v), -EINVAL);
        assert_int_equal(parse_size("99999999999T", &v), -ERANGE);
}

static void test_atomic_write(void **state) {
        char tmpl[] = "/tmp/banger-test-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, tmpl);
        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, "f", "hello", 5, 0600), 0);
        assert_int_equal(write_file_atomic_at(dfd, "f", "world!", 6, 0600), 0);
        _cleanup_free_ char *s = NULL;
        size_t l;
        assert_int_equal(read_file_at(dfd, "f", 100, &s, &l), 0);
        assert_string_equal(s, "world!");
        struct stat st;
        assert_int_equal(fstatat(dfd, "f", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        /* A symlink is never followed. */
        assert_int_equal(symlinkat("/etc/passwd", dfd, "link"), 0);
        _cleanup_free_ char *s2 = NULL;
        assert_int_equal(read_file_at(dfd, "link", 100000, &s2, NULL), -ELOOP);
        assert_int_equal(read_file_at(dfd, "f", 3, &s2, NULL), -EFBIG);
        unlinkat(dfd, "f", 0);
        unlinkat(dfd, "link", 0);
        rmdir(tmpl);
}

static void test_spawn(void **state) {
        _cleanup_free_ char *out = NULL;
        char *argv[] = { "sh", "-c", "echo hi; echo err >&2; exit 3", NULL };
        assert_int_equal(spawn_run_capture(argv, 5 * USEC_PER_SEC, 100, true, &out), 3);
        assert_string_equal(out, "hi\nerr\n");

        char *argv2[] = { "sleep", "10", NULL };
        usec_t t0 = now_monotonic();
        assert_int_equal(spawn_run_capture(argv2, 200 * USEC_PER_MSEC, 100, false, NULL), -ETIMEDOUT);
        assert_true(now_monotonic() - t0 < 3 * USEC_PER_SEC);

        char *argv3[] = { "/nonexistent/prog", NULL };
        Process p = PROCESS_NULL;
        assert_int_equal(spawn_process(argv3, NULL, &p), -ENOENT);

        /* The environment is cleared: only PATH is passed. */
        setenv("BANGER_SECRET", "x", 1);
        _cleanup_free_ char *env = NULL;
        char *argv4[] = { "env", NULL };
        assert_int_equal(spawn_run_capture(argv4, 5 * USEC_PER_SEC, 4096, false, &env), 0);
        assert_null(strstr(env, "BANGER_SECRET"));

        /* Signals through the pidfd; wait reports it. */
        char *argv5[] = { "sleep", "10", NULL };
        assert_int_equal(spawn_process(argv5, NULL, &p), 0);
        assert_int_equal(process_wait(&p, 50 * USEC_PER_MSEC, NULL), -ETIMEDOUT);
        assert_int_equal(process_signal(&p, SIGTERM), 0);
        int status = 0;
        assert_int_equal(process_wait(&p, 5 * USEC_PER_SEC, &status), 0);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGTERM);
        process_release(&p);
}

static void test_spawn_umask_and_fds(void **state) {
        /* The child's umask is the one we ask for, and it sees no fds beyond stdio. */
        _cleanup_close_ int leak = open("/dev/null", O_RDONLY); /* deliberately not CLOEXEC */
        assert_true(leak >= 0);
        _cleanup_free_ char *out = NULL;
        char *argv[] = { "sh", "-c", "umask; ls /proc/self/fd | wc -l", NULL };
        assert_int_equal(spawn_run_capture(argv, 5 * USEC_PER_SEC, 100, false, &out), 0);
        /* 0,1,2 plus the fd ls itself opens for the directory listing. */
        assert_string_equal(out, "0077\n4\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_name_is_valid),
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_atomic_write),
                cmocka_unit_test(test_spawn),
                cmocka_unit_test(test_spawn_umask_and_fds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
