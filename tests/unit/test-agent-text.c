/* SPDX-License-Identifier: MIT */
/* Guest text through the agent protocol: an ERROR frame's text and a
 * stream's CLOSE text (from a malicious agent on a socket pair, through the
 * real agent-client library) come out valid UTF-8 without control
 * characters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-protocol.h"
#include "error.h"
#include "fs-util.h"
#include "string-util.h"

#define T_SEC (10 * USEC_PER_SEC)

/* An ERROR frame's text is the guest's: it must come out valid UTF-8 (it is
 * stored and serialised as JSON) and without control characters (it is
 * logged and printed). */
static void test_error_text_cleaned(void **state) {
        static const uint8_t payload[] = { 0, 0, 0, 5, 0xff, 0xfe, 'x', 0x1b, '[', '2', 'J', '\n', 'y' };
        _cleanup_free_ char *text = NULL;
        int e = 0;
        assert_int_equal(agent_error_parse(payload, sizeof(payload), &e, &text), 0);
        assert_int_equal(e, 5);
        assert_true(utf8_is_valid_n(text, strlen(text)));
        assert_string_equal(text, "\xef\xbf\xbd\xef\xbf\xbdx?[2J?y");
}

/* A malicious agent: answers the hello, then closes the first stream it is
 * asked to open with text full of escapes and invalid UTF-8. */
static _Noreturn void evil_agent(int fd) {
        uint8_t buf[4096];
        if (loop_read(fd, buf, AGENT_HELLO_FRAME_SIZE) != AGENT_HELLO_FRAME_SIZE)
                _exit(1);
        AgentHello h = { .version = AGENT_PROTOCOL_VERSION,
                         .nonce = agent_get_u32(buf + AGENT_FRAME_HEADER_SIZE + 8),
                         .max_frame = AGENT_FRAME_MAX,
                         .window = AGENT_WINDOW_DEFAULT,
                         .max_streams = 4 };
        size_t n = agent_hello_reply_encode(&h, buf, sizeof(buf));
        if (n == 0 || loop_write(fd, buf, n) < 0)
                _exit(1);
        if (loop_read(fd, buf, AGENT_FRAME_HEADER_SIZE) != AGENT_FRAME_HEADER_SIZE)
                _exit(1);
        uint32_t len = agent_get_u32(buf + 1);
        if (buf[0] != AGENT_MSG_OPEN || len > sizeof(buf) || loop_read(fd, buf, len) != (ssize_t) len)
                _exit(1);
        static const char text[] = "bad\xff\xfe \x1b]0;PWN\x07\x1b[2J\nforged line";
        AgentStreamFrame f = { .type = AGENT_MSG_CLOSE,
                               .id = agent_get_u32(buf),
                               .value = EIO,
                               .data = (const uint8_t *) text,
                               .len = sizeof(text) - 1 };
        n = agent_stream_frame_encode(&f, buf);
        if (loop_write(fd, buf, n) < 0)
                _exit(1);
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
        _exit(0);
}

/* A stream's CLOSE text becomes the error the user reads: cleaned. */
static void test_close_text_cleaned(void **state) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(sv[0]);
                evil_agent(sv[1]);
        }
        close(sv[1]);
        AgentClient *c = NULL;
        assert_int_equal(agent_client_new(sv[0], &c), 0);
        assert_int_equal(agent_client_hello(c, T_SEC, NULL), 0);
        AgentHealth health;
        assert_int_equal(agent_client_health(c, T_SEC, &health), -EIO);
        const char *m = error_last_message();
        assert_non_null(m);
        assert_true(utf8_is_valid_n(m, strlen(m)));
        for (const char *p = m; *p; p++)
                assert_false((unsigned char) *p < 0x20 || *p == 0x7f);
        assert_non_null(strstr(m, "forged line"));
        agent_client_free(c);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_error_text_cleaned),
                cmocka_unit_test(test_close_text_cleaned),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
