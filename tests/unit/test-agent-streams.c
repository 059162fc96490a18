/* SPDX-License-Identifier: MIT */
/* Protocol 2 on one connection to the real banger-agent: many streams at
 * once, per-stream flow control (a stuck stream does not hold up another),
 * PTYs (size, resize, Ctrl-C, exit code) and signals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/stat.h>

#include "agent-test-util.h"
#include "macro.h"

#define T_MS 10000

static char tmpdir[64];
static char sock_path[128];
static Process agent = { .pid = 0, .pidfd = -EBADF };

static int group_setup(void **state) {
        return test_agent_group_start("bg-streams", tmpdir, sock_path, &agent) < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
        test_agent_group_stop(tmpdir, &agent);
        return 0;
}

static int connect_hello(void) {
        int fd = test_connect_unix(sock_path);
        assert_true(fd >= 0);
        AgentHello h;
        assert_int_equal(test_hello(fd, &h), 0);
        assert_int_equal(h.window, AGENT_WINDOW_DEFAULT);
        return fd;
}

static void streams_done(TestStream *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i].out);
}

static bool all_closed(const TestStream *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!v[i].closed)
                        return false;
        return true;
}

static void test_parallel_execs(void **state) {
        int fd = connect_hello();
        TestStream v[8] = {};
        usec_t t0 = now_monotonic();
        for (unsigned i = 0; i < 8; i++) {
                char script[64];
                snprintf(script, sizeof(script), "sleep 1; echo %u", i);
                v[i].id = 2 * i + 1;
                char *argv[] = { "sh", "-c", script, NULL };
                assert_int_equal(test_open_exec(fd, v[i].id, argv, AGENT_WINDOW_DEFAULT, 0, 0, 0), 0);
        }
        while (!all_closed(v, 8))
                assert_int_equal(test_read_frame(fd, v, 8, T_MS), 1);
        usec_t took = now_monotonic() - t0;
        for (unsigned i = 0; i < 8; i++) {
                char want[8];
                snprintf(want, sizeof(want), "%u\n", i);
                assert_true(v[i].opened && v[i].exited);
                assert_int_equal(v[i].exit_code, 0);
                assert_string_equal(v[i].out, want);
        }
        /* Side by side, not one after another (8 s). */
        assert_true(took < 3 * USEC_PER_SEC);
        streams_done(v, 8);
        close(fd);
}

static void test_stuck_stream(void **state) {
        /* Stream 1 floods output and the host never returns credit: it must
         * stop at its window while stream 3 runs to its end. */
        int fd = connect_hello();
        TestStream v[2] = { { .id = 1 }, { .id = 3 } };
        char *flood[] = { "sh", "-c", "while :; do echo 0123456789abcdef; done", NULL };
        char *quick[] = { "sh", "-c", "sleep 0.5; echo done", NULL };
        assert_int_equal(test_open_exec(fd, 1, flood, 65536, 0, 0, 0), 0);
        assert_int_equal(test_open_exec(fd, 3, quick, AGENT_WINDOW_DEFAULT, 0, 0, 0), 0);
        usec_t t0 = now_monotonic();
        while (!v[1].closed)
                assert_int_equal(test_read_frame(fd, v, 2, T_MS), 1);
        assert_true(now_monotonic() - t0 < 3 * USEC_PER_SEC);
        assert_string_equal(v[1].out, "done\n");
        /* Nothing more than the window, however long we wait. */
        while (test_read_frame(fd, v, 2, 300) == 1)
                ;
        assert_int_equal(v[0].received, 65536);
        /* Credit returned: it moves again, by exactly that much. */
        assert_int_equal(test_send_frame(fd, (AgentStreamFrame){ .type = AGENT_MSG_WINDOW, .id = 1, .value = 1000 }),
                         0);
        while (test_read_frame(fd, v, 2, 300) == 1)
                ;
        assert_int_equal(v[0].received, 66536);
        /* Closing it kills it; the agent answers with its own CLOSE. */
        assert_int_equal(test_send_frame(fd, (AgentStreamFrame){ .type = AGENT_MSG_CLOSE, .id = 1 }), 0);
        while (!v[0].closed)
                assert_int_equal(test_read_frame(fd, v, 2, T_MS), 1);
        streams_done(v, 2);
        close(fd);
}

static void test_stdin_window(void **state) {
        /* More input than the agent granted, sent without waiting: refused. */
        int fd = connect_hello();
        TestStream v[1] = { { .id = 5 } };
        char *argv[] = { "sleep", "10", NULL };
        assert_int_equal(test_open_exec(fd, 5, argv, AGENT_WINDOW_DEFAULT, 0, 0, 0), 0);
        static uint8_t chunk[AGENT_DATA_CHUNK];
        /* Twice the window: even with a pipe buffer drained, far too much. */
        for (unsigned i = 0; i < 2 * AGENT_WINDOW_DEFAULT / AGENT_DATA_CHUNK; i++)
                assert_int_equal(test_send_frame(fd, (AgentStreamFrame){ .type = AGENT_MSG_DATA,
                                                                         .id = 5,
                                                                         .data = chunk,
                                                                         .len = sizeof(chunk) }),
                                 0);
        while (!v[0].closed)
                assert_int_equal(test_read_frame(fd, v, 1, T_MS), 1);
        assert_int_equal(v[0].close_errno, EPROTO);
        streams_done(v, 1);
        close(fd);
}

/* Read until the stream's output holds want (and drop what came before). */
static void expect_output(int fd, TestStream *t, const char *want) {
        usec_t deadline = now_monotonic() + T_MS * USEC_PER_MSEC;
        while (!t->out || !strstr(t->out, want)) {
                assert_true(now_monotonic() < deadline);
                assert_true(test_read_frame(fd, t, 1, T_MS) >= 0);
                assert_false(t->closed);
        }
        free(t->out);
        t->out = NULL;
        t->out_len = 0;
}

static void type(int fd, uint32_t id, const char *s) {
        assert_int_equal(test_send_frame(fd, (AgentStreamFrame){ .type = AGENT_MSG_DATA,
                                                                 .id = id,
                                                                 .channel = AGENT_CHANNEL_STDIN,
                                                                 .data = (const uint8_t *) s,
                                                                 .len = strlen(s) }),
                         0);
}

static void test_pty(void **state) {
        int fd = connect_hello();
        TestStream t = { .id = 9 };
        char *argv[] = { "sh", NULL };
        assert_int_equal(test_open_exec(fd, 9, argv, AGENT_WINDOW_DEFAULT, AGENT_EXEC_FLAG_PTY, 30, 100), 0);
        type(fd, 9, "stty size; tty; echo \"T=$TERM\"\n");
        expect_output(fd, &t, "30 100");
        assert_true(t.opened);
        type(fd, 9, "tty\n");
        expect_output(fd, &t, "/dev/pts/");
        assert_int_equal(
                test_send_frame(fd, (AgentStreamFrame){ .type = AGENT_MSG_RESIZE, .id = 9, .rows = 40, .cols = 120 }),
                0);
        type(fd, 9, "stty size\n");
        expect_output(fd, &t, "40 120");
        /* Ctrl-C through the terminal interrupts the foreground job only. */
        type(fd, 9, "sleep 100\n");
        usleep(300 * 1000);
        type(fd, 9, "\003");
        type(fd, 9, "echo alive-$((40+2))\n");
        expect_output(fd, &t, "alive-42");
        type(fd, 9, "exit 4\n");
        while (!t.closed)
                assert_int_equal(test_read_frame(fd, &t, 1, T_MS), 1);
        assert_true(t.exited);
        assert_int_equal(t.exit_kind, AGENT_EXIT_CODE);
        assert_int_equal(t.exit_code, 4);
        free(t.out);
        close(fd);
}

static void test_signal(void **state) {
        int fd = connect_hello();
        TestStream t = { .id = 11 };
        char *argv[] = { "sleep", "100", NULL };
        assert_int_equal(test_open_exec(fd, 11, argv, AGENT_WINDOW_DEFAULT, 0, 0, 0), 0);
        while (!t.opened)
                assert_int_equal(test_read_frame(fd, &t, 1, T_MS), 1);
        assert_int_equal(
                test_send_frame(fd, (AgentStreamFrame){ .type = AGENT_MSG_SIGNAL, .id = 11, .value = SIGTERM }), 0);
        while (!t.closed)
                assert_int_equal(test_read_frame(fd, &t, 1, T_MS), 1);
        assert_int_equal(t.exit_kind, AGENT_EXIT_SIGNAL);
        assert_int_equal(t.exit_code, SIGTERM);
        free(t.out);
        close(fd);
}

static void test_too_many_streams(void **state) {
        int fd = connect_hello();
        static TestStream v[AGENT_MAX_STREAMS + 1];
        char *argv[] = { "sleep", "5", NULL };
        for (unsigned i = 0; i <= AGENT_MAX_STREAMS; i++) {
                v[i] = (TestStream){ .id = 2 * i + 101 };
                assert_int_equal(test_open_exec(fd, v[i].id, argv, 4096, 0, 0, 0), 0);
        }
        TestStream *last = &v[AGENT_MAX_STREAMS];
        while (!last->closed)
                assert_int_equal(test_read_frame(fd, v, AGENT_MAX_STREAMS + 1, T_MS), 1);
        assert_int_equal(last->close_errno, EMFILE);
        assert_false(last->opened);
        close(fd); /* hanging up ends the other 64 */
        streams_done(v, AGENT_MAX_STREAMS + 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parallel_execs), cmocka_unit_test(test_stuck_stream),
                cmocka_unit_test(test_stdin_window),   cmocka_unit_test(test_pty),
                cmocka_unit_test(test_signal),         cmocka_unit_test(test_too_many_streams),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
