/* SPDX-License-Identifier: MIT */
/* What a registry sends besides manifests, read without a registry: raw
 * header lines as curl hands them over, the token endpoint's reply, an
 * error page, and the token realm a challenge may name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oci-registry.h"

static int header(const char *line, size_t len, const char *name, char **ret) {
        *ret = NULL;
        return oci_registry_header_value(line, len, name, ret);
}

static void test_header_value(void **state) {
        static const char l[] = "www-authenticate:\t Bearer realm=\"https://a/token\" \r\n";
        char *v;
        assert_int_equal(header(l, strlen(l), "WWW-Authenticate", &v), 1);
        assert_string_equal(v, "Bearer realm=\"https://a/token\"");
        free(v);
        assert_int_equal(header(l, strlen(l), "Content-Type", &v), 0);
        assert_null(v);
        /* A prefix of the name is another header. */
        static const char t[] = "Content-Type-Options: nosniff\r\n";
        assert_int_equal(header(t, strlen(t), "Content-Type", &v), 0);
        static const char e[] = "Content-Type:\r\n";
        assert_int_equal(header(e, strlen(e), "Content-Type", &v), 1);
        assert_string_equal(v, "");
        free(v);
}

/* Found by fuzz-oci-registry (corpus crash-header-nul): a NUL inside the
 * value cut it there and kept the control character before it. Such a
 * header is now ignored, as are other controls; a tab stays. */
static void test_header_value_controls(void **state) {
        static const char nul[] = "WWW-Authenticate: Bear\r\0 realm=\"http://127.0.0.1/\"\r\n";
        char *v;
        assert_int_equal(header(nul, sizeof(nul) - 1, "WWW-Authenticate", &v), 0);
        assert_null(v);
        static const char nul2[] = "Content-Type: text/html\0; evil\r\n";
        assert_int_equal(header(nul2, sizeof(nul2) - 1, "Content-Type", &v), 0);
        assert_null(v);
        static const char esc[] = "Content-Type: text/\x1b[31mhtml\r\n";
        assert_int_equal(header(esc, strlen(esc), "Content-Type", &v), 0);
        static const char tab[] = "Content-Type: a\tb\r\n";
        assert_int_equal(header(tab, strlen(tab), "Content-Type", &v), 1);
        assert_string_equal(v, "a\tb");
        free(v);
        /* Longer than 4 KiB: ignored. */
        size_t n = 5000;
        char *big = malloc(n);
        assert_non_null(big);
        memset(big, 'a', n);
        memcpy(big, "Content-Type: ", 14);
        assert_int_equal(header(big, n, "Content-Type", &v), 0);
        free(big);
}

static void test_token(void **state) {
        char *t = NULL;
        static const char a[] = "{\"token\":\"abc\",\"access_token\":\"def\"}";
        assert_int_equal(oci_registry_token_parse(a, strlen(a), &t), 0);
        assert_string_equal(t, "abc");
        free(t);
        static const char b[] = "{\"access_token\":\"def\"}";
        assert_int_equal(oci_registry_token_parse(b, strlen(b), &t), 0);
        assert_string_equal(t, "def");
        free(t);
        static const char *const bad[] = {
                "{\"token\":\"\"}",
                "{\"token\":\"a\\r\\nX-Evil: 1\"}",
                "{\"token\":\"a\\u0001\"}",
                "{\"token\":7}",
                "[\"token\"]",
                "",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(oci_registry_token_parse(bad[i], strlen(bad[i]), &t), -EBADMSG);
}

static void test_error_message(void **state) {
        char buf[16];
        static const char a[] = "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"requested access denied\"}]}";
        oci_registry_error_message(a, strlen(a), buf, sizeof(buf));
        assert_string_equal(buf, "requested acces");
        static const char b[] = "<html>502 Bad Gateway</html>";
        oci_registry_error_message(b, strlen(b), buf, sizeof(buf));
        assert_string_equal(buf, "");
}

static void test_realm(void **state) {
        assert_true(oci_registry_realm_is_allowed(false, "https://auth.docker.io/token"));
        assert_false(oci_registry_realm_is_allowed(false, "http://127.0.0.1:5000/token"));
        assert_true(oci_registry_realm_is_allowed(true, "http://127.0.0.1:5000/token"));
        assert_false(oci_registry_realm_is_allowed(true, "http://example.com/token"));
        /* userinfo that looks like a loopback host */
        assert_false(oci_registry_realm_is_allowed(true, "http://127.0.0.1@example.com/token"));
        assert_false(oci_registry_realm_is_allowed(true, "ftp://127.0.0.1/token"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_value), cmocka_unit_test(test_header_value_controls),
                cmocka_unit_test(test_token),        cmocka_unit_test(test_error_message),
                cmocka_unit_test(test_realm),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
