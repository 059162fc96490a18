/* SPDX-License-Identifier: MIT */
/* Writes that reach the guest: on virtio-serial each one costs the guest an
 * interrupt and a turn of the agent's loop (about half a millisecond of
 * emulated CPU under TCG), so the host side sends together what is ready
 * together. Checked on a SOCK_SEQPACKET pair, where every write the real
 * agent-client library makes arrives as a packet of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-protocol.h"
#include "fs-util.h"

#define T_SEC (10 * USEC_PER_SEC)

enum { FAKE_OK = 0, FAKE_IO = 1, FAKE_NOT_OPEN = 2, FAKE_OPEN_ALONE = 3, FAKE_NO_CLOSE = 4 };

static int send_frame(int fd, const AgentStreamFrame *f) {
        uint8_t buf[256];
        size_t n = agent_stream_frame_encode(f, buf);
        return write(fd, buf, n) == (ssize_t) n ? 0 : -EIO;
}

/* A fake agent: answers the hello; the next packet must hold the exec's
 * OPEN and its stdin EOF; then OPENED, EXIT 0, CLOSE, and the host's CLOSE. */
static _Noreturn void fake_agent(int fd) {
        uint8_t buf[8192];
        if (read(fd, buf, sizeof(buf)) != AGENT_HELLO_FRAME_SIZE)
                _exit(FAKE_IO);
        AgentHello h = { .version = AGENT_PROTOCOL_VERSION,
                         .nonce = agent_get_u32(buf + AGENT_FRAME_HEADER_SIZE + 8),
                         .max_frame = AGENT_FRAME_MAX,
                         .window = AGENT_WINDOW_DEFAULT,
                         .max_streams = 4 };
        snprintf(h.caps, sizeof(h.caps), "exec");
        size_t n = agent_hello_reply_encode(&h, buf, sizeof(buf));
        if (n == 0 || write(fd, buf, n) != (ssize_t) n)
                _exit(FAKE_IO);
        ssize_t got = read(fd, buf, sizeof(buf));
        AgentFrame f;
        AgentStreamFrame open, eof;
        long k = got > 0 ? agent_frame_parse(buf, (size_t) got, &f) : -1;
        if (k <= 0 || agent_stream_frame_parse(&f, &open) < 0 || open.type != AGENT_MSG_OPEN)
                _exit(FAKE_NOT_OPEN);
        long k2 = agent_frame_parse(buf + k, (size_t) got - (size_t) k, &f);
        if (k2 <= 0 || agent_stream_frame_parse(&f, &eof) < 0 || eof.type != AGENT_MSG_EOF || eof.id != open.id ||
            eof.channel != AGENT_CHANNEL_STDIN)
                _exit(FAKE_OPEN_ALONE);
        uint32_t id = open.id;
        if (send_frame(fd, &(AgentStreamFrame){ .type = AGENT_MSG_OPENED, .id = id, .value = 42 }) < 0 ||
            send_frame(fd, &(AgentStreamFrame){ .type = AGENT_MSG_EXIT, .id = id, .exit_kind = AGENT_EXIT_CODE }) < 0 ||
            send_frame(fd, &(AgentStreamFrame){ .type = AGENT_MSG_CLOSE, .id = id }) < 0)
                _exit(FAKE_IO);
        got = read(fd, buf, sizeof(buf));
        k = got > 0 ? agent_frame_parse(buf, (size_t) got, &f) : -1;
        if (k <= 0 || agent_stream_frame_parse(&f, &open) < 0 || open.type != AGENT_MSG_CLOSE || open.id != id)
                _exit(FAKE_NO_CLOSE);
        _exit(FAKE_OK);
}

/* A command whose stdin is already at its end (/dev/null, as under a
 * benchmark or a CI job): the EOF leaves in the same write as the OPEN,
 * not in a second one a poll later. */
static void test_open_carries_ready_eof(void **state) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(sv[0]);
                fake_agent(sv[1]);
        }
        close(sv[1]);
        AgentClient *c = NULL;
        assert_int_equal(agent_client_new(sv[0], &c), 0);
        assert_int_equal(agent_client_hello(c, T_SEC, NULL), 0);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(null >= 0);
        char *argv[] = { "true", NULL };
        AgentExecOptions o = { .argv = argv, .stdin_fd = null, .stdout_fd = -1, .stderr_fd = -1, .tty_fd = -1 };
        AgentExecResult res = {};
        assert_int_equal(agent_client_exec(c, &o, T_SEC, &res), 0);
        assert_int_equal(res.pid, 42);
        assert_int_equal(res.code, 0);
        agent_client_free(c);
        close(null);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), FAKE_OK);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_open_carries_ready_eof),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
