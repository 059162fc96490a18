/* SPDX-License-Identifier: MIT */
#pragma once

/* Driving the real banger-agent binary in tests: start it on a Unix socket
 * in a temporary directory, and speak raw protocol-2 frames to it: many
 * streams on one connection, each frame checked as it arrives. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent-protocol.h"
#include "fs-util.h"
#include "spawn.h"
#include "time-util.h"

#define AGENT_BIN TEST_BUILD_DIR "/src/agent/banger-agent"

static inline int test_connect_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int e = -errno;
                close(fd);
                return e;
        }
        return fd;
}

/* Start an agent (argv) logging to dir/agent.log and wait for path to accept. */
static inline int test_start_agent(char *const argv[], const char *dir, const char *path, Process *ret) {
        char log[256];
        snprintf(log, sizeof(log), "%s/agent.log", dir);
        int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        SpawnOptions o;
        spawn_options_init(&o);
        o.stderr_fd = logfd;
        int r = spawn_process(argv, &o, ret);
        if (logfd >= 0)
                close(logfd);
        if (r < 0)
                return r;
        for (int i = 0; i < 500; i++) {
                int fd = test_connect_unix(path);
                if (fd >= 0) {
                        close(fd);
                        return 0;
                }
                usleep(10000);
        }
        return -ETIMEDOUT;
}

/* A test group's agent: a fresh directory /tmp/PREFIX-XXXXXX, the agent
 * listening on its agent.sock, logging to its agent.log. */
static inline int test_agent_group_start(const char *prefix, char dir[static 64], char sock[static 128], Process *ret) {
        snprintf(dir, 64, "/tmp/%s-XXXXXX", prefix);
        if (!mkdtemp(dir))
                return -errno;
        snprintf(sock, 128, "%s/agent.sock", dir);
        char *argv[] = { AGENT_BIN, "--listen-unix", sock, NULL };
        return test_start_agent(argv, dir, sock, ret);
}

static inline void test_agent_group_stop(const char *dir, Process *p) {
        process_kill_and_reap(p);
        char *argv[] = { "rm", "-rf", "--", (char *) dir, NULL };
        (void) spawn_run_capture(argv, 10 * USEC_PER_SEC, 0, false, NULL);
}

static inline int test_send_frame(int fd, AgentStreamFrame f) {
        uint8_t *buf = malloc(agent_stream_frame_size(&f));
        if (!buf)
                return -ENOMEM;
        size_t n = agent_stream_frame_encode(&f, buf);
        int r = loop_write(fd, buf, n);
        free(buf);
        return r;
}

/* Send a hello and read the agent's answer. */
static inline int test_hello(int fd, AgentHello *ret) {
        uint8_t hello[AGENT_HELLO_FRAME_SIZE], buf[512];
        agent_hello_encode(hello, AGENT_PROTOCOL_VERSION, 7);
        if (loop_write(fd, hello, sizeof(hello)) < 0 || loop_read(fd, buf, AGENT_FRAME_HEADER_SIZE) != 5)
                return -EIO;
        uint32_t len = agent_get_u32(buf + 1);
        if (buf[0] != AGENT_MSG_HELLO || len > sizeof(buf) || loop_read(fd, buf, len) != (ssize_t) len)
                return -EBADMSG;
        return agent_hello_parse(buf, len, ret);
}

/* What came back on each stream of a raw connection. */
typedef struct TestStream {
        uint32_t id;
        char *out;
        size_t out_len;
        uint64_t received; /* data bytes, both channels */
        bool opened, exited, closed;
        uint8_t exit_kind;
        uint32_t exit_code, close_errno;
} TestStream;

static inline TestStream *test_stream_find(TestStream *v, size_t n, uint32_t id) {
        for (size_t i = 0; i < n; i++)
                if (v[i].id == id)
                        return &v[i];
        return NULL;
}

/* Read one frame within timeout_ms and account it to its stream: 1 read,
 * 0 timed out, < 0 error or EOF. */
static inline int test_read_frame(int fd, TestStream *v, size_t n, int timeout_ms) {
        static uint8_t buf[AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX];
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) <= 0)
                return 0;
        if (loop_read(fd, buf, AGENT_FRAME_HEADER_SIZE) != AGENT_FRAME_HEADER_SIZE)
                return -ECONNRESET;
        uint32_t len = agent_get_u32(buf + 1);
        if (len > AGENT_FRAME_MAX || loop_read(fd, buf + 5, len) != (ssize_t) len)
                return -EBADMSG;
        AgentFrame f = { .type = buf[0], .len = len, .payload = buf + 5 };
        AgentStreamFrame s;
        if (!agent_msg_is_stream(f.type) || agent_stream_frame_parse(&f, &s) < 0)
                return 1; /* errors and hellos: not ours to account */
        TestStream *t = test_stream_find(v, n, s.id);
        if (!t)
                return -ESRCH;
        switch (s.type) {
        case AGENT_MSG_OPENED:
                t->opened = true;
                break;
        case AGENT_MSG_DATA:
                t->out = realloc(t->out, t->out_len + s.len + 1);
                memcpy(t->out + t->out_len, s.data, s.len);
                t->out_len += s.len;
                t->out[t->out_len] = 0;
                t->received += s.len;
                break;
        case AGENT_MSG_EXIT:
                t->exited = true;
                t->exit_kind = s.exit_kind;
                t->exit_code = s.value;
                break;
        case AGENT_MSG_CLOSE:
                t->closed = true;
                t->close_errno = s.value;
                break;
        default:
                break;
        }
        return 1;
}

/* Open an exec stream: argv (NULL-terminated), our window, flags. */
static inline int test_open_exec(int fd, uint32_t id, char **argv, uint32_t window, uint32_t flags, uint16_t rows,
                                 uint16_t cols) {
        AgentExecSpec spec = { .flags = flags, .rows = rows, .cols = cols, .argv = argv };
        uint8_t *req = NULL;
        size_t len;
        int r = agent_exec_spec_encode(&spec, &req, &len);
        if (r < 0)
                return r;
        r = test_send_frame(fd, (AgentStreamFrame){ .type = AGENT_MSG_OPEN,
                                                    .id = id,
                                                    .kind = AGENT_STREAM_EXEC,
                                                    .value = window,
                                                    .data = req,
                                                    .len = len });
        free(req);
        return r;
}
