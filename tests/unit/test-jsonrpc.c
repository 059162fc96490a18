/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs-util.h"
#include "io-util.h"
#include "jsonrpc.h"
#include "macro.h"
#include "rpc-client.h"

static void test_partial_lines(void **state) {
        JsonRpcReader r;
        jsonrpc_reader_init(&r, 1024);
        const char *line;
        size_t len;
        assert_int_equal(jsonrpc_reader_feed(&r, "{\"a\":", 5), 0);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 0);
        assert_int_equal(jsonrpc_reader_feed(&r, "1}", 2), 0);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 0);
        assert_int_equal(jsonrpc_reader_feed(&r, "\n", 1), 0);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 1);
        assert_int_equal(len, 7);
        assert_memory_equal(line, "{\"a\":1}", 7);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 0);
        jsonrpc_reader_done(&r);
}

/* A long line read in pieces is searched for its newline once: the bytes
 * already searched are not searched again at the next piece, and a line
 * after it is still found from where the first ended. */
static void test_long_line_searched_once(void **state) {
        JsonRpcReader r;
        jsonrpc_reader_init(&r, 1 << 20);
        const char *line;
        size_t len;
        char piece[4096];
        memset(piece, ' ', sizeof(piece));
        assert_int_equal(jsonrpc_reader_feed(&r, "[", 1), 0);
        for (size_t i = 0; i < 64; i++) {
                assert_int_equal(jsonrpc_reader_feed(&r, piece, sizeof(piece)), 0);
                assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 0);
                assert_int_equal(r.scanned, r.len);
        }
        assert_int_equal(jsonrpc_reader_feed(&r, "]\n{}\n{", 6), 0);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 1);
        assert_int_equal(len, 2 + 64 * sizeof(piece));
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 1);
        assert_int_equal(len, 2);
        assert_memory_equal(line, "{}", 2);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 0);
        assert_int_equal(jsonrpc_reader_feed(&r, "}\n", 2), 0);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 1);
        assert_memory_equal(line, "{}", 2);
        jsonrpc_reader_done(&r);
}

static void test_several_in_one_read(void **state) {
        JsonRpcReader r;
        jsonrpc_reader_init(&r, 1024);
        const char *line;
        size_t len;
        const char *in = "{\"x\":1}\n{\"x\":2}\r\n\n{\"x\":3}\n{\"x\"";
        assert_int_equal(jsonrpc_reader_feed(&r, in, strlen(in)), 0);
        const char *want[] = { "{\"x\":1}", "{\"x\":2}", "", "{\"x\":3}" };
        for (size_t i = 0; i < 4; i++) {
                assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 1);
                assert_int_equal(len, strlen(want[i]));
                assert_memory_equal(line, want[i], len);
        }
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 0);
        assert_int_equal(jsonrpc_reader_feed(&r, ":4}\n", 4), 0);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 1);
        assert_string_equal(line, "{\"x\":4}");
        jsonrpc_reader_done(&r);
}

static void test_oversize(void **state) {
        JsonRpcReader r;
        jsonrpc_reader_init(&r, 16);
        const char *line;
        size_t len;
        /* Exactly at the limit is fine. */
        assert_int_equal(jsonrpc_reader_feed(&r, "0123456789abcdef\n", 17), 0);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 1);
        /* One byte over without a newline yet: refused as soon as it is known. */
        assert_int_equal(jsonrpc_reader_feed(&r, "0123456789abcdefg", 17), -EMSGSIZE);
        jsonrpc_reader_done(&r);

        jsonrpc_reader_init(&r, 16);
        assert_int_equal(jsonrpc_reader_feed(&r, "{}\n0123456789abcdefgh\n", 22), 0);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), 1);
        assert_int_equal(jsonrpc_reader_next(&r, &line, &len), -EMSGSIZE);
        jsonrpc_reader_done(&r);

        /* The server limit is 1 MiB. */
        size_t big = JSONRPC_MAX_MESSAGE + 10;
        _cleanup_free_ char *s = malloc(big);
        memset(s, ' ', big);
        jsonrpc_reader_init(&r, JSONRPC_MAX_MESSAGE);
        assert_int_equal(jsonrpc_reader_feed(&r, s, big), -EMSGSIZE);
        jsonrpc_reader_done(&r);
}

static void test_parse_errors(void **state) {
        json_t *j = NULL;
        const char *why;
        assert_int_equal(jsonrpc_parse_line("{\"a\":\"\xff\"}", 9, &j, &why), JSONRPC_PARSE_ERROR);
        assert_non_null(strstr(why, "UTF-8"));
        assert_int_equal(jsonrpc_parse_line("{\"a\":", 5, &j, &why), JSONRPC_PARSE_ERROR);
        assert_int_equal(jsonrpc_parse_line("[1,2]", 5, &j, &why), JSONRPC_INVALID_REQUEST);
        assert_int_equal(jsonrpc_parse_line("42", 2, &j, &why), JSONRPC_INVALID_REQUEST);
        assert_int_equal(jsonrpc_parse_line("{\"a\":1,\"a\":2}", 13, &j, &why), JSONRPC_PARSE_ERROR);
        assert_int_equal(jsonrpc_parse_line("{\"a\":\"x\0y\"}", 11, &j, &why), JSONRPC_PARSE_ERROR);

        /* 64 levels are allowed, 65 are not; brackets inside strings don't count. */
        char deep[200];
        size_t n = 0;
        for (int i = 0; i < 63; i++)
                deep[n++] = '[';
        for (int i = 0; i < 63; i++)
                deep[n++] = ']';
        char obj[300];
        snprintf(obj, sizeof(obj), "{\"a\":%.*s}", (int) n, deep);
        assert_int_equal(jsonrpc_parse_line(obj, strlen(obj), &j, &why), 0);
        json_decref(j);
        snprintf(obj, sizeof(obj), "{\"a\":[%.*s]}", (int) n, deep);
        assert_int_equal(jsonrpc_parse_line(obj, strlen(obj), &j, &why), JSONRPC_INVALID_REQUEST);
        assert_non_null(strstr(why, "64"));
        const char *s = "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"}";
        assert_int_equal(jsonrpc_parse_line(s, strlen(s), &j, &why), 0);
        json_decref(j);
}

static void test_request_shape(void **state) {
        struct {
                const char *text;
                int code;
        } cases[] = {
                { "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":1}", 0 },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":\"abc\",\"params\":{}}", 0 },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\"}", 0 },
                { "{\"jsonrpc\":\"1.0\",\"method\":\"daemon.ping\",\"id\":1}", JSONRPC_INVALID_REQUEST },
                { "{\"method\":\"daemon.ping\",\"id\":1}", JSONRPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"method\":7,\"id\":1}", JSONRPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"\",\"id\":1}", JSONRPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":1.5}", JSONRPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":[1]}", JSONRPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":1,\"params\":[1]}", JSONRPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":1,\"extra\":true}", JSONRPC_INVALID_REQUEST },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *j = NULL;
                const char *why;
                assert_int_equal(jsonrpc_parse_line(cases[i].text, strlen(cases[i].text), &j, &why), 0);
                JsonRpcRequest req;
                int r = jsonrpc_request_from_json(j, &req, &why);
                if (r != cases[i].code)
                        fail_msg("case %zu (%s): got %d want %d", i, cases[i].text, r, cases[i].code);
                json_decref(j);
        }
}

static void test_format(void **state) {
        json_t *id = json_integer(7);
        _cleanup_free_ char *a = jsonrpc_format_result(id, json_pack("{s:b}", "pong", 1));
        assert_string_equal(a, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"pong\":true}}\n");
        _cleanup_free_ char *b = jsonrpc_format_error(id, JSONRPC_INVALID_PARAMS, "unknown parameter \"x\"", NULL);
        assert_string_equal(b, "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32602,\"message\":\"unknown "
                               "parameter \\\"x\\\"\"}}\n");
        _cleanup_free_ char *c = jsonrpc_format_error(NULL, JSONRPC_PARSE_ERROR, "bad", NULL);
        assert_string_equal(c, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"bad\"}}\n");
        _cleanup_free_ char *d = jsonrpc_format_notification("progress", json_pack("{s:s}", "stage", "boot"));
        assert_string_equal(d, "{\"jsonrpc\":\"2.0\",\"method\":\"progress\",\"params\":{\"stage\":\"boot\"}}\n");
        /* A result given as text: the same line as jsonrpc_format_result()'s. */
        static const char res[] = "{\"pong\":true}";
        _cleanup_free_ char *e = jsonrpc_format_result_text(id, res, strlen(res));
        assert_string_equal(e, a);
        json_t *sid = json_string("a\"b");
        _cleanup_free_ char *f = jsonrpc_format_result_text(sid, "[]", 2);
        assert_string_equal(f, "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\",\"result\":[]}\n");
        json_decref(sid);
        /* A newline would end the message early: refused. */
        assert_null(jsonrpc_format_result_text(id, "[1,\n2]", 6));
        json_decref(id);
}

static void count_events(const char *method, json_t *params, void *userdata) {
        int *n = userdata;
        assert_string_equal(method, "event");
        assert_int_equal(json_integer_value(json_object_get(params, "n")), *n + 1);
        (*n)++;
}

static void send_str(int fd, const char *s) {
        assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t) strlen(s));
}

#define NOTE(n) "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"n\":" #n "}}\n"

/* A client connected to a listening Unix socket; returns the server's end.
 * The socket's name and directory go at once (the connection stays). */
static int client_and_server(RpcClient **ret) {
        char dir[] = "/tmp/test-jsonrpc-XXXXXX";
        assert_non_null(mkdtemp(dir));
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
        _cleanup_close_ int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(l, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(l, 1), 0);
        assert_int_equal(rpc_client_connect(sa.sun_path, ret), 0);
        int srv = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        assert_true(srv >= 0);
        (void) unlink(sa.sun_path);
        (void) rmdir(dir);
        return srv;
}

/* A subscription: notifications that came with the reply, then more, cut
 * anywhere, a stray reply skipped, and the server's EOF. */
static void test_client_notifications_after_a_call(void **state) {
        RpcClient *c = NULL;
        _cleanup_close_ int srv = client_and_server(&c);
        send_str(srv, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"subscribed\":true}}\n" NOTE(1) NOTE(2) "{\"jsonr");
        json_t *res = NULL;
        assert_int_equal(rpc_client_call(c, "events.subscribe", NULL, USEC_PER_SEC, NULL, NULL, &res, NULL), 0);
        json_decref(res);
        int n = 0;
        assert_int_equal(rpc_client_read_notifications(c, count_events, &n), 0);
        assert_int_equal(n, 2); /* those that came with the reply; nothing more to read */
        send_str(srv, "pc\":\"2.0\",\"method\":\"event\",\"params\":{\"n\":3}}\n{\"jsonrpc\":\"2.0\",\"id\":9,"
                      "\"result\":1}\n");
        assert_true(fd_wait_until(rpc_client_fd(c), POLLIN, USEC_INFINITY) > 0);
        assert_int_equal(rpc_client_read_notifications(c, count_events, &n), 0);
        assert_int_equal(n, 3);
        send_str(srv, NOTE(4));
        srv = safe_close(srv);
        assert_true(fd_wait_until(rpc_client_fd(c), POLLIN, USEC_INFINITY) > 0);
        assert_int_equal(rpc_client_read_notifications(c, count_events, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(rpc_client_read_notifications(c, count_events, &n), -ECONNRESET);
        rpc_client_free(c);
        (void) state;
}

/* A text call: another id's reply and a notification are passed over, the
 * result comes as the bytes the server sent; an error reply is an error. */
static void test_client_call_text(void **state) {
        RpcClient *c = NULL;
        _cleanup_close_ int srv = client_and_server(&c);
        send_str(srv, "{\"jsonrpc\":\"2.0\",\"method\":\"progress\",\"params\":{}}\n"
                      "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"other\":1}}\n"
                      "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"vms\":[{\"n\":\"\\u001b\"}]}}\n"
                      "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32001,\"message\":\"gone\"}}\n");
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        assert_int_equal(rpc_client_call_text(c, "vm.list", NULL, USEC_PER_SEC, NULL, NULL, &text, &len, NULL), 0);
        assert_string_equal(text, "{\"vms\":[{\"n\":\"\\u001b\"}]}");
        assert_int_equal(len, strlen(text));
        RpcError err = {};
        _cleanup_free_ char *none = NULL;
        assert_int_equal(rpc_client_call_text(c, "vm.list", NULL, USEC_PER_SEC, NULL, NULL, &none, &len, &err),
                         -EREMOTEIO);
        assert_int_equal(err.code, -32001);
        assert_string_equal(err.message, "gone");
        assert_null(none);
        rpc_error_done(&err);
        rpc_client_free(c);
        (void) state;
}

typedef struct Interrupted {
        int notes; /* notifications seen */
        int notes_at_interrupt;
        int srv, pipe_r;
} Interrupted;

static void count_note(const char *method, json_t *params, void *userdata) {
        Interrupted *t = userdata;
        (void) method;
        (void) params;
        t->notes++;
}

static void on_interrupt_reply(void *userdata) {
        Interrupted *t = userdata;
        char b;
        assert_int_equal(read(t->pipe_r, &b, 1), 1);
        t->notes_at_interrupt = t->notes;
        send_str(t->srv, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n");
}

/* Ctrl-C while the operation's notification is already in the socket: the
 * notification is handled first (the CLI needs its id to cancel it). */
static void test_client_interrupt_after_pending_notification(void **state) {
        RpcClient *c = NULL;
        _cleanup_close_ int srv = client_and_server(&c);
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        Interrupted t = { .notes_at_interrupt = -1, .srv = srv, .pipe_r = p[0] };
        rpc_client_set_interrupt(c, p[0], on_interrupt_reply, &t);
        send_str(srv, NOTE(1));
        assert_int_equal(write(p[1], "x", 1), 1);
        assert_int_equal(rpc_client_call(c, "image.import", NULL, 5 * USEC_PER_SEC, count_note, &t, NULL, NULL), 0);
        assert_int_equal(t.notes, 1);
        assert_int_equal(t.notes_at_interrupt, 1);
        rpc_client_free(c);
        close(p[0]);
        close(p[1]);
        (void) state;
}

/* Names and paths from a request are echoed in messages: the message that
 * goes out is one printable line of bounded length, whatever they held. */
static void test_error_message_clean(void **state) {
        _cleanup_free_ char *a = jsonrpc_format_error(NULL, JSONRPC_NOT_FOUND, "no VM named 'a\nb\x1b]0;x\x07'", NULL);
        assert_string_equal(a, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32001,\"message\":\"no VM "
                               "named 'a?b?]0;x?'\"}}\n");
        char long_msg[2000];
        memset(long_msg, 'a', sizeof(long_msg) - 3);
        memcpy(long_msg + 511, "\xc3\xa9", 2); /* a two-byte character across the cut */
        long_msg[sizeof(long_msg) - 3] = '\0';
        _cleanup_free_ char *m = jsonrpc_error_message_clean(long_msg);
        assert_int_equal(strlen(m), 511 + 3);
        assert_string_equal(m + 509, "aa...");
        _cleanup_free_ char *bad = jsonrpc_error_message_clean("x\xff\xfey");
        assert_string_equal(bad, "x??y");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_error_message_clean),
                cmocka_unit_test(test_partial_lines),
                cmocka_unit_test(test_long_line_searched_once),
                cmocka_unit_test(test_several_in_one_read),
                cmocka_unit_test(test_oversize),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_request_shape),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_client_notifications_after_a_call),
                cmocka_unit_test(test_client_interrupt_after_pending_notification),
                cmocka_unit_test(test_client_call_text),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
