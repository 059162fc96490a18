/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-text.h"
#include "macro.h"

/* json_text_write_indented() of text into a string. */
static char *indented(const char *text, int *ret) {
        char *out = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&out, &n);
        assert_non_null(f);
        *ret = json_text_write_indented(text, strlen(text), f);
        assert_int_equal(fclose(f), 0);
        return out;
}

/* What jansson's json_dumpf(JSON_INDENT(2)) writes of j, the CLI's layout. */
static char *jansson_indented(json_t *j) {
        return json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
}

static void assert_same_as_jansson(json_t *j) {
        int r;
        _cleanup_free_ char *compact = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        _cleanup_free_ char *want = jansson_indented(j);
        _cleanup_free_ char *got = indented(compact, &r);
        assert_int_equal(r, 0);
        assert_string_equal(got, want);
        /* Indented text (whitespace outside strings) comes out the same. */
        _cleanup_free_ char *again = indented(want, &r);
        assert_int_equal(r, 0);
        assert_string_equal(again, want);
}

/* The layout jansson writes, for every kind of value, from its compact text. */
static void test_indented_is_janssons(void **state) {
        json_t *vm = json_pack("{s:s, s:s?, s:I, s:b, s:b, s:n, s:f, s:{s:b,s:b}, s:{}, s:[], s:[i,s,[],{}], s:s}",
                               "id", "0123456789abcdef", "last_error", NULL, "disk_bytes", (json_int_t) 1 << 40, "nat",
                               1, "ready", 0, "pid", "ratio", 0.25, "idle", "a", 1, "b", 0, "empty", "none", "mixed",
                               -3, "x", "name", "q\"uote\\ tab\t nl\n esc\x1b \xc3\xa9 \xe2\x82\xac / del\x7f");
        assert_non_null(vm);
        json_t *doc = json_pack("{s:[O,O]}", "vms", vm, vm);
        assert_same_as_jansson(doc);
        assert_same_as_jansson(vm);
        json_t *empty = json_pack("{s:[]}", "vms");
        assert_same_as_jansson(empty);
        json_decref(empty);
        json_decref(doc);
        json_decref(vm);
        (void) state;
}

/* Text a terminal would act on, or that is not JSON's shape: refused, and
 * nothing written. */
static void test_indented_refuses(void **state) {
        static const char *const bad[] = {
                "{\"a\":\"x\x1b[2Jy\"}", /* a raw control character in a string */
                "{\"a\":\"x\ny\"}",
                "{\"a\":\"\xc3\"}",         /* cut UTF-8 */
                "{\"a\":\"\xed\xa0\x80\"}", /* a surrogate */
                "{\"a\":1]",
                "[1}",
                "{\"a\":[1,2}",
                "{\"a\":\"open}",
                "{\"a\":1",
                "]",
                "{\"a\":1} \x1b",
                "{\"a\":<b>}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r;
                _cleanup_free_ char *out = indented(bad[i], &r);
                assert_int_equal(r, -EBADMSG);
                assert_string_equal(out, "");
                assert_int_equal(json_text_write_indented(bad[i], strlen(bad[i]), NULL), -EBADMSG);
        }
        /* 65 levels, one too many; 64 are written. */
        char deep[200] = "";
        for (size_t i = 0; i < 65; i++)
                strcat(deep, "[");
        strcat(deep, "1");
        for (size_t i = 0; i < 65; i++)
                strcat(deep, "]");
        assert_int_equal(json_text_write_indented(deep, strlen(deep), NULL), -EBADMSG);
        assert_int_equal(json_text_write_indented(deep + 1, strlen(deep) - 2, NULL), 0);
        (void) state;
}

static void assert_span(const char *s, const char *key, const char *want) {
        size_t a = 0, b = 0;
        assert_int_equal(json_text_member_span(s, strlen(s), key, &a, &b), 0);
        assert_int_equal(b - a, strlen(want));
        assert_memory_equal(s + a, want, b - a);
}

static void test_member_span(void **state) {
        assert_span("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"vms\":[{\"result\":2}]}}", "result",
                    "{\"vms\":[{\"result\":2}]}");
        /* The key inside a string or a nested object is not the member. */
        assert_span("{\"id\":\"\\\"result\\\":7\",\"x\":{\"result\":3},\"result\" : [1,\"]}\"] ,\"id2\":2}", "result",
                    "[1,\"]}\"]");
        assert_span("{\"result\":\"a,b\"}", "result", "\"a,b\"");
        assert_span("{\"result\":null}", "result", "null");
        size_t a, b;
        static const char none[] = "{\"error\":{\"result\":1},\"id\":1}", cut[] = "{\"id\":1,\"result\":{\"vms\":[";
        assert_int_equal(json_text_member_span(none, strlen(none), "result", &a, &b), -ENOENT);
        assert_int_equal(json_text_member_span(cut, strlen(cut), "result", &a, &b), -EBADMSG);
        (void) state;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_indented_is_janssons),
                cmocka_unit_test(test_indented_refuses),
                cmocka_unit_test(test_member_span),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
