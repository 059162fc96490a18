/* SPDX-License-Identifier: MIT */
/* The managed block in ~/.ssh/config, as bytes: added at the top, found,
 * removed so that the rest is exactly what it was; anything that does not
 * match what banger writes is refused. (The file handling around it is
 * tested by driving 'banger ssh-config' in tests/integration.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "ssh-config-block.h"

#define INC "/home/alice/.ssh/banger.conf"

/* Prepend a block to original, find it, remove it: original comes back. */
static void roundtrip(const char *original, SshBlockOrigin origin) {
        size_t len = strlen(original);
        bool crlf = ssh_config_uses_crlf(original, len);
        _cleanup_free_ char *block = NULL, *with = NULL, *without = NULL;
        size_t block_len, with_len, without_len;
        assert_int_equal(ssh_block_render(INC, origin, crlf, &block, &block_len), 0);
        assert_int_equal(ssh_config_splice(original, len, 0, 0, block, block_len, &with, &with_len), 0);
        assert_int_equal(with_len, len + block_len);
        assert_memory_equal(with + block_len, original, len);

        SshBlock b = {};
        const char *why = NULL;
        assert_int_equal(ssh_block_find(with, with_len, &b, &why), 1);
        assert_int_equal(b.start, 0);
        assert_int_equal(b.end, block_len);
        assert_int_equal(b.origin, origin);
        assert_string_equal(b.include, INC);
        assert_int_equal(ssh_config_splice(with, with_len, b.start, b.end, NULL, 0, &without, &without_len), 0);
        assert_int_equal(without_len, len);
        assert_memory_equal(without, original, len);
        ssh_block_done(&b);
}

static void test_roundtrips(void **state) {
        roundtrip("", SSH_BLOCK_CREATED_FILE);
        roundtrip("", SSH_BLOCK_CREATED_DIR);
        roundtrip("", SSH_BLOCK_FILE_EXISTED);
        roundtrip("Host a\n    User b\n", SSH_BLOCK_FILE_EXISTED);
        roundtrip("Host a\n    User b", SSH_BLOCK_FILE_EXISTED); /* no final newline */
        roundtrip("Host a\r\n    User b\r\n", SSH_BLOCK_FILE_EXISTED);
        roundtrip("\n\n# only comments\n", SSH_BLOCK_FILE_EXISTED);
}

static void test_crlf_block_for_crlf_file(void **state) {
        _cleanup_free_ char *block = NULL;
        size_t n;
        assert_true(ssh_config_uses_crlf("Host a\r\n", 8));
        assert_false(ssh_config_uses_crlf("Host a\n  X\r\n", 12));
        assert_false(ssh_config_uses_crlf("\r\n", 0));
        assert_int_equal(ssh_block_render(INC, SSH_BLOCK_FILE_EXISTED, true, &block, &n), 0);
        assert_int_equal(block[n - 1], '\n');
        assert_int_equal(block[n - 2], '\r');
        assert_non_null(strstr(block, "\"\r\n# END"));
}

static void test_found_anywhere(void **state) {
        _cleanup_free_ char *block = NULL;
        size_t n;
        assert_int_equal(ssh_block_render(INC, SSH_BLOCK_FILE_EXISTED, false, &block, &n), 0);
        char buf[1024];
        int len = snprintf(buf, sizeof(buf), "# mine\n%sHost x\n", block);
        SshBlock b = {};
        assert_int_equal(ssh_block_find(buf, (size_t) len, &b, NULL), 1);
        assert_int_equal(b.start, 7);
        assert_int_equal(b.end, 7 + n);
        ssh_block_done(&b);
        assert_int_equal(ssh_block_find("Host x\n# BEGIN banger\n", 22, &b, NULL), 0);
        assert_int_equal(ssh_block_find("", 0, &b, NULL), 0);
}

static void expect_refused(const char *text) {
        SshBlock b = {};
        const char *why = NULL;
        assert_int_equal(ssh_block_find(text, strlen(text), &b, &why), -EBADMSG);
        assert_non_null(why);
        assert_null(b.include);
}

#define BEGIN "# BEGIN banger ssh-config (do not edit; 'banger ssh-config uninstall' removes it)\n"
#define INCLUDE "Include \"" INC "\"\n"
#define END "# END banger ssh-config\n"

static void test_edited_blocks_refused(void **state) {
        expect_refused(BEGIN INCLUDE);                                  /* no END */
        expect_refused(BEGIN);                                          /* nothing after BEGIN */
        expect_refused(BEGIN "Include \"/home/a/x\"\nUser root\n" END); /* a line added */
        expect_refused(BEGIN "Include /home/a/x\n" END);                /* unquoted */
        expect_refused(BEGIN "Include \"/home/a/*\"\n" END);            /* a glob */
        expect_refused(BEGIN "Include \"rel/x\"\n" END);                /* relative */
        expect_refused("# BEGIN banger ssh-config (edited)\n" INCLUDE END);
        expect_refused(BEGIN INCLUDE END BEGIN INCLUDE END); /* twice */
        expect_refused(END);                                 /* END alone */
        expect_refused(BEGIN INCLUDE END END);
        expect_refused(BEGIN INCLUDE "# END banger ssh-config!\n");
        /* A NUL inside the Include path. */
        static const char nul[] = BEGIN "Include \"/a\0b\"\n" END;
        SshBlock b = {};
        const char *why = NULL;
        assert_int_equal(ssh_block_find(nul, sizeof(nul) - 1, &b, &why), -EBADMSG);
}

static void test_end_without_newline_accepted(void **state) {
        static const char text[] = "Host a\n" BEGIN INCLUDE "# END banger ssh-config";
        SshBlock b = {};
        assert_int_equal(ssh_block_find(text, strlen(text), &b, NULL), 1);
        assert_int_equal(b.start, 7);
        assert_int_equal(b.end, strlen(text));
        ssh_block_done(&b);
}

static void test_safe_paths(void **state) {
        assert_true(ssh_path_is_safe("/home/alice/.ssh/banger.conf"));
        assert_true(ssh_path_is_safe("/home/a b/x-y_z+1,2@3=4:5"));
        static const char *const bad[] = { "",    "/",   "rel",   "/a%h",  "/a${HOME}", "/a\"b", "/a'b",
                                           "/a*", "/a?", "/a[b]", "/a\nb", "/a\\b",     "/a$b",  "/a;b" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(ssh_path_is_safe(bad[i]));
        char longp[1100];
        memset(longp, 'a', sizeof(longp) - 1);
        longp[0] = '/';
        longp[sizeof(longp) - 1] = '\0';
        assert_false(ssh_path_is_safe(longp));
        _cleanup_free_ char *block = NULL;
        size_t n;
        assert_int_equal(ssh_block_render("/a%h", SSH_BLOCK_FILE_EXISTED, false, &block, &n), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrips),
                cmocka_unit_test(test_crlf_block_for_crlf_file),
                cmocka_unit_test(test_found_anywhere),
                cmocka_unit_test(test_edited_blocks_refused),
                cmocka_unit_test(test_end_without_newline_accepted),
                cmocka_unit_test(test_safe_paths),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
