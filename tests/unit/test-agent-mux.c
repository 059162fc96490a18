/* SPDX-License-Identifier: MIT */
/* The agent multiplexer on its own thread and loop, in front of the real
 * agent session code served over a socketpair (one end is the "transport",
 * the other runs agent_session_run() in a re-executed child): many clients at
 * once, a client that stops reading stalls only itself, a client that goes
 * away takes its commands with it, the agent restarting, and a protocol-1
 * agent refused by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/wait.h>
#include <linux/close_range.h>

#include "agent-client.h"
#include "agent-mux.h"
#include "agent-session.h"
#include "agent-test-util.h"
#include "error.h"
#include "log.h"
#include "string-util.h"
#include "macro.h"

#define T_SEC (10 * USEC_PER_SEC)

static char tmpdir[64];
static char mux_path[128];

/* The "guest": each connect forks a child serving one agent session. */
typedef struct Guest {
        pid_t pid;     /* the current session's child */
        bool speak_v1; /* answer hellos as a protocol-1 agent instead */
        bool batch;    /* serve_batch() on a SOCK_SEQPACKET transport */
        unsigned connects;
} Guest;

static void serve_v1(int fd) {
        uint8_t buf[64];
        for (;;) {
                if (loop_read(fd, buf, AGENT_HELLO_FRAME_SIZE) != AGENT_HELLO_FRAME_SIZE)
                        _exit(0);
                /* A version-1 agent answers with its own version and our nonce. */
                uint8_t reply[AGENT_HELLO_FRAME_SIZE];
                agent_hello_encode(reply, 1, agent_get_u32(buf + AGENT_FRAME_HEADER_SIZE + 8));
                if (loop_write(fd, reply, sizeof(reply)) < 0)
                        _exit(0);
        }
}

/* The child re-executes this binary to serve the session: the mux calls
 * connect from one of its threads, and a forked copy of a threaded process
 * may only make async-signal-safe calls until it execs (malloc or the
 * sanitizers' allocator could be locked by another thread at the fork). */
static int guest_connect(void *userdata, usec_t timeout) {
        Guest *g = userdata;
        int sv[2];
        char fdarg[16];
        if (socketpair(AF_UNIX, (g->batch ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        snprintf(fdarg, sizeof(fdarg), "%d", 3);
        const char *mode = g->speak_v1 ? "--serve-v1" : g->batch ? "--serve-batch" : "--serve";
        char *argv[] = { (char *) "test-agent-mux", (char *) mode, fdarg, NULL };
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Only our end survives, as fd 3 (dup2 clears its CLOEXEC). */
                if (dup2(sv[1], 3) < 0)
                        _exit(127);
                (void) close_range(4, ~0U, 0);
                execv("/proc/self/exe", argv);
                _exit(127);
        }
        close(sv[1]);
        g->pid = pid;
        g->connects++;
        return sv[0];
}

static int send_frames(int fd, const AgentStreamFrame *f, size_t n) {
        uint8_t buf[512];
        size_t len = 0;
        for (size_t i = 0; i < n; i++)
                len += agent_stream_frame_encode(&f[i], buf + len);
        return write(fd, buf, len) == (ssize_t) len ? 0 : -EIO;
}

/* A fake agent on a SOCK_SEQPACKET transport, where each write of the mux
 * is one packet: every exec it is asked for exits 0 at once, and it notes
 * in $TEST_BATCH_LOG how the host's CLOSEs arrive: "together" in the
 * packet of the next OPEN, "alone" in a packet of their own. */
static _Noreturn void serve_batch(int fd) {
        uint8_t buf[8192];
        const char *log = getenv("TEST_BATCH_LOG");
        FILE *out = log ? fopen(log, "we") : NULL;
        if (!out || read(fd, buf, sizeof(buf)) != AGENT_HELLO_FRAME_SIZE)
                _exit(1);
        AgentHello h = { .version = AGENT_PROTOCOL_VERSION,
                         .nonce = agent_get_u32(buf + AGENT_FRAME_HEADER_SIZE + 8),
                         .max_frame = AGENT_FRAME_MAX,
                         .window = AGENT_WINDOW_DEFAULT,
                         .max_streams = 8 };
        snprintf(h.caps, sizeof(h.caps), "exec");
        size_t n = agent_hello_reply_encode(&h, buf, sizeof(buf));
        if (write(fd, buf, n) != (ssize_t) n)
                _exit(1);
        for (ssize_t got; (got = read(fd, buf, sizeof(buf))) > 0;) {
                bool closes = false, opens = false;
                AgentFrame f;
                for (long off = 0, k; (k = agent_frame_parse(buf + off, (size_t) (got - off), &f)) > 0; off += k) {
                        AgentStreamFrame s;
                        if (agent_stream_frame_parse(&f, &s) < 0)
                                _exit(1);
                        closes |= s.type == AGENT_MSG_CLOSE;
                        if (s.type != AGENT_MSG_OPEN)
                                continue;
                        opens = true;
                        AgentStreamFrame r[] = { { .type = AGENT_MSG_OPENED, .id = s.id, .value = 7 },
                                                 { .type = AGENT_MSG_EXIT, .id = s.id },
                                                 { .type = AGENT_MSG_CLOSE, .id = s.id } };
                        if (send_frames(fd, r, ELEMENTSOF(r)) < 0)
                                _exit(1);
                }
                if (closes)
                        fprintf(out, "%s\n", opens ? "together" : "alone");
                fflush(out);
        }
        _exit(0);
}

/* argv: --serve|--serve-v1|--serve-batch FD (see guest_connect). */
static int serve_main(char **argv) {
        int fd = atoi(argv[2]);
        if (streq(argv[1], "--serve-v1"))
                serve_v1(fd);
        if (streq(argv[1], "--serve-batch"))
                serve_batch(fd);
        SessionOptions o = { .proc_root = "/proc" };
        return agent_session_run(fd, &o) < 0 ? 1 : 0;
}

static int group_setup(void **state) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/bg-mux-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(mux_path, sizeof(mux_path), "%s/mux.sock", tmpdir);
        (void) signal(SIGPIPE, SIG_IGN);
        (void) log_parse_environment();
        return 0;
}

static int group_teardown(void **state) {
        char *argv[] = { "rm", "-rf", "--", tmpdir, NULL };
        (void) spawn_run_capture(argv, T_SEC, 0, false, NULL);
        return 0;
}

static AgentMuxThread *mux_start(Guest *g) {
        /* A batching guest: a delay that a loaded machine cannot outlast. */
        AgentMuxOptions o = { .socket_path = mux_path,
                              .name = "testvm",
                              .connect = guest_connect,
                              .userdata = g,
                              .lazy_delay = g->batch ? 2 * USEC_PER_SEC : 0 };
        AgentMuxThread *t = NULL;
        assert_int_equal(agent_mux_thread_start(&o, &t), 0);
        return t;
}

static void mux_stop(AgentMuxThread *t, Guest *g) {
        agent_mux_thread_stop(t);
        if (g->pid > 0) {
                (void) kill(g->pid, SIGKILL);
                (void) waitpid(g->pid, NULL, 0);
        }
        /* Reap any earlier sessions' children too. */
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

static AgentClient *client(void) {
        AgentClient *c = NULL;
        assert_int_equal(agent_client_new(test_connect_unix(mux_path), &c), 0);
        int r = agent_client_hello(c, T_SEC, NULL);
        if (r < 0)
                fail_msg("hello: %s", error_last_message());
        return c;
}

static int exec_capture(AgentClient *c, char *const argv[], char *out, size_t len, AgentExecResult *res) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        AgentExecOptions o = {
                .argv = argv, .stdin_fd = -1, .stdout_fd = p[1], .stderr_fd = -1, .signal_fd = -1, .tty_fd = -1
        };
        int r = agent_client_exec(c, &o, T_SEC, res);
        close(p[1]);
        ssize_t n = read(p[0], out, len - 1);
        out[n > 0 ? n : 0] = 0;
        close(p[0]);
        return r;
}

static void test_socket_private(void **state) {
        Guest g = {};
        AgentMuxThread *t = mux_start(&g);
        struct stat st;
        assert_int_equal(lstat(mux_path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0600);
        _cleanup_(agent_client_freep) AgentClient *c = client();
        AgentHealth h;
        assert_int_equal(agent_client_health(c, T_SEC, &h), 0);
        assert_int_equal(h.protocol, AGENT_PROTOCOL_VERSION);
        agent_health_done(&h);
        mux_stop(t, &g);
        assert_int_equal(access(mux_path, F_OK), -1);
}

static void test_parallel_clients(void **state) {
        Guest g = {};
        AgentMuxThread *t = mux_start(&g);
        pid_t kids[8];
        usec_t t0 = now_monotonic();
        for (int i = 0; i < 8; i++) {
                kids[i] = fork();
                assert_true(kids[i] >= 0);
                if (kids[i] > 0)
                        continue;
                AgentClient *c = NULL;
                if (agent_client_new(test_connect_unix(mux_path), &c) < 0 || agent_client_hello(c, T_SEC, NULL) < 0)
                        _exit(2);
                char script[64], out[64], want[16];
                snprintf(script, sizeof(script), "sleep 1; echo %d", i);
                snprintf(want, sizeof(want), "%d\n", i);
                char *argv[] = { "sh", "-c", script, NULL };
                AgentExecResult res;
                _exit(exec_capture(c, argv, out, sizeof(out), &res) == 0 && res.code == 0 && streq(out, want) ? 0 : 3);
        }
        for (int i = 0; i < 8; i++) {
                int status;
                assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
        }
        assert_true(now_monotonic() - t0 < 3 * USEC_PER_SEC);
        assert_int_equal(g.connects, 1); /* one transport connection for all of them */
        mux_stop(t, &g);
}

static void test_stuck_client(void **state) {
        /* A client floods itself with output and never reads: the mux buffers
         * at most its window, and another client is served as usual. */
        Guest g = {};
        AgentMuxThread *t = mux_start(&g);
        int stuck = test_connect_unix(mux_path);
        assert_true(stuck >= 0);
        AgentHello h;
        assert_int_equal(test_hello(stuck, &h), 0);
        int rcv = 4096;
        (void) setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
        char *flood[] = { "sh", "-c", "while :; do echo 0123456789abcdef0123456789abcdef; done", NULL };
        assert_int_equal(test_open_exec(stuck, 1, flood, 65536, 0, 0, 0), 0);
        usleep(500 * 1000);
        usec_t t0 = now_monotonic();
        _cleanup_(agent_client_freep) AgentClient *c = client();
        char out[64];
        AgentExecResult res;
        char *argv[] = { "echo", "through", NULL };
        assert_int_equal(exec_capture(c, argv, out, sizeof(out), &res), 0);
        assert_string_equal(out, "through\n");
        assert_true(now_monotonic() - t0 < 2 * USEC_PER_SEC);
        /* The stuck stream got no more than its window, however long we wait. */
        TestStream ts = { .id = 1 };
        while (test_read_frame(stuck, &ts, 1, 500) == 1)
                ;
        assert_int_equal(ts.received, 65536);
        free(ts.out);
        close(stuck);
        mux_stop(t, &g);
}

/* The next frame is neither an ERROR nor a HELLO. */
static void assert_no_error_next(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        uint8_t type = 0;
        if (poll(&p, 1, 5000) == 1 && recv(fd, &type, 1, MSG_PEEK) == 1)
                assert_true(type != AGENT_MSG_ERROR && type != AGENT_MSG_HELLO);
}

static void test_hello_resent(void **state) {
        /* A client says the same hello again (agent_client_hello does, every
         * 500 ms, until answered): once before the answer and once after it.
         * One answer, no error, and the connection serves as usual. */
        Guest g = {};
        AgentMuxThread *t = mux_start(&g);
        int fd = test_connect_unix(mux_path);
        assert_true(fd >= 0);
        uint8_t hello[AGENT_HELLO_FRAME_SIZE];
        agent_hello_encode(hello, AGENT_PROTOCOL_VERSION, 7); /* test_hello's nonce */
        assert_int_equal(loop_write(fd, hello, sizeof(hello)), 0);
        AgentHello h;
        assert_int_equal(test_hello(fd, &h), 0);
        assert_int_equal(h.nonce, 7);
        assert_int_equal(loop_write(fd, hello, sizeof(hello)), 0);
        char *argv[] = { "echo", "still", NULL };
        assert_int_equal(test_open_exec(fd, 1, argv, 65536, 0, 0, 0), 0);
        TestStream ts = { .id = 1 };
        while (!ts.closed) {
                assert_no_error_next(fd);
                assert_int_equal(test_read_frame(fd, &ts, 1, 5000), 1);
        }
        assert_true(ts.exited && ts.exit_code == 0);
        assert_string_equal(ts.out, "still\n");
        free(ts.out);
        close(fd);
        mux_stop(t, &g);
}

typedef struct SlowSink {
        int fd;
        size_t total;
} SlowSink;

static void *slow_sink(void *p) {
        SlowSink *s = p;
        char buf[4096];
        for (ssize_t n; (n = read(s->fd, buf, sizeof(buf))) > 0; s->total += (size_t) n)
                usleep(100);
        return NULL;
}

static void test_large_output_intact(void **state) {
        /* Many MiB (a file copied out, 1 MiB window) through a reader slower
         * than the agent: the mux's buffer toward the client fills, drains
         * part way and is compacted while frames keep arriving; not a byte
         * may go missing. */
        char path[160];
        snprintf(path, sizeof(path), "%s/big", tmpdir);
        _cleanup_close_ int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(f >= 0);
        assert_int_equal(ftruncate(f, 8000000), 0);
        struct timespec ts[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };
        assert_int_equal(futimens(f, ts), 0); /* whole seconds: no pax header */
        Guest g = {};
        AgentMuxThread *t = mux_start(&g);
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        SlowSink sink = { .fd = p[0] };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, slow_sink, &sink), 0);
        for (int i = 0; i < 3; i++) {
                _cleanup_(agent_client_freep) AgentClient *c = client();
                AgentFilesOptions o = { .kind = AGENT_STREAM_FILES_GET, .path = path, .data_fd = p[1] };
                assert_int_equal(agent_client_files(c, &o, T_SEC * 6), 0);
        }
        close(p[1]);
        pthread_join(th, NULL);
        close(p[0]);
        assert_int_equal(sink.total, 3 * (512 + 8000000 + 1024)); /* header, data (512 x 15625), end */
        mux_stop(t, &g);
}

static void test_client_gone_kills(void **state) {
        Guest g = {};
        AgentMuxThread *t = mux_start(&g);
        int fd = test_connect_unix(mux_path);
        AgentHello h;
        assert_int_equal(test_hello(fd, &h), 0);
        char *argv[] = { "sleep", "100", NULL };
        assert_int_equal(test_open_exec(fd, 7, argv, 4096, 0, 0, 0), 0);
        TestStream ts = { .id = 7 };
        while (!ts.opened)
                assert_int_equal(test_read_frame(fd, &ts, 1, 5000), 1);
        close(fd);
        /* The agent session (our child) killed the sleep: it has no children left. */
        usec_t deadline = now_monotonic() + 5 * USEC_PER_SEC;
        bool gone = false;
        while (!gone && now_monotonic() < deadline) {
                char path[64], buf[256] = "";
                snprintf(path, sizeof(path), "/proc/%d/task/%d/children", g.pid, g.pid);
                _cleanup_close_ int cfd = open(path, O_RDONLY | O_CLOEXEC);
                gone = cfd >= 0 && read(cfd, buf, sizeof(buf) - 1) == 0;
                usleep(50 * 1000);
        }
        assert_true(gone);
        free(ts.out);
        mux_stop(t, &g);
}

static void test_agent_restart(void **state) {
        Guest g = {};
        AgentMuxThread *t = mux_start(&g);
        _cleanup_(agent_client_freep) AgentClient *c = client();
        AgentHealth h;
        assert_int_equal(agent_client_health(c, T_SEC, &h), 0);
        agent_health_done(&h);
        /* The transport dies: the mux connects again, and a new client works. */
        pid_t old = g.pid;
        assert_int_equal(kill(old, SIGKILL), 0);
        assert_int_equal(waitpid(old, NULL, 0), old);
        _cleanup_(agent_client_freep) AgentClient *c2 = client();
        assert_int_equal(agent_client_health(c2, T_SEC, &h), 0);
        agent_health_done(&h);
        assert_int_equal(g.connects, 2);
        mux_stop(t, &g);
}

static void test_v1_agent(void **state) {
        Guest g = { .speak_v1 = true };
        AgentMuxThread *t = mux_start(&g);
        AgentClient *c = NULL;
        assert_int_equal(agent_client_new(test_connect_unix(mux_path), &c), 0);
        error_clear();
        assert_int_equal(agent_client_hello(c, T_SEC, NULL), -EPROTONOSUPPORT);
        const char *msg = error_last_message();
        assert_non_null(msg);
        assert_non_null(strstr(msg, "vm testvm"));
        assert_non_null(strstr(msg, "protocol 1"));
        assert_non_null(strstr(msg, "image build"));
        agent_client_free(c);
        mux_stop(t, &g);
}

/* Our answer to the agent's CLOSE leaves with the next OPEN (one wakeup of
 * the guest instead of two), or on its own after the delay when nothing
 * else comes. The execs are apart (as from separate CLIs), not one right
 * after the other in one read of the mux. */
static void test_close_answer_batched(void **state) {
        Guest g = { .batch = true };
        char log[160], text[64] = "";
        snprintf(log, sizeof(log), "%s/batch.log", tmpdir);
        assert_int_equal(setenv("TEST_BATCH_LOG", log, 1), 0); /* before the mux's threads */
        AgentMuxThread *t = mux_start(&g);
        _cleanup_(agent_client_freep) AgentClient *c = client();
        char *argv[] = { "true", NULL };
        AgentExecOptions o = { .argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .tty_fd = -1 };
        AgentExecResult res;
        for (int i = 0; i < 2; i++) {
                if (i > 0)
                        usleep(100000);
                assert_int_equal(agent_client_exec(c, &o, T_SEC, &res), 0);
                assert_int_equal(res.pid, 7);
        }
        for (usec_t end = now_monotonic() + 5 * USEC_PER_SEC; now_monotonic() < end; usleep(10000)) {
                _cleanup_close_ int fd = open(log, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
                text[n > 0 ? n : 0] = 0;
                if (streq(text, "together\nalone\n"))
                        break;
        }
        assert_string_equal(text, "together\nalone\n");
        mux_stop(t, &g);
}

int main(int argc, char **argv) {
        if (argc == 3 && (streq(argv[1], "--serve") || streq(argv[1], "--serve-v1") || streq(argv[1], "--serve-batch")))
                return serve_main(argv);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_socket_private),
                cmocka_unit_test(test_parallel_clients),
                cmocka_unit_test(test_stuck_client),
                cmocka_unit_test(test_large_output_intact),
                cmocka_unit_test(test_client_gone_kills),
                cmocka_unit_test(test_agent_restart),
                cmocka_unit_test(test_v1_agent),
                cmocka_unit_test(test_hello_resent),
                cmocka_unit_test(test_close_answer_batched),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
