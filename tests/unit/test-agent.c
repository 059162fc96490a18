/* SPDX-License-Identifier: MIT */
/* Drives the real banger-agent binary (started with --listen-unix in a temp
 * dir, so it runs on this host like it would in a guest) through the real
 * agent-client library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-protocol.h"
#include "agent-workdisk.h"
#include "banger-build.h"
#include "error.h"
#include "fs-util.h"
#include "spawn.h"
#include "string-util.h"

#define AGENT_BIN TEST_BUILD_DIR "/src/agent/banger-agent"
#define T_SEC (10 * USEC_PER_SEC)

static char tmpdir[64];
static char sock_path[128];
static Process agent = { .pid = 0, .pidfd = -EBADF };
/* Agents started by single tests, killed in teardown even when a test fails. */
static Process extra_agent = { .pid = 0, .pidfd = -EBADF };

static int connect_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
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

/* The agent creates its socket after start; there is no readiness
 * notification in --listen-unix mode, so retry connecting briefly. */
static int connect_retry(const char *path) {
        for (int i = 0; i < 500; i++) {
                int fd = connect_unix(path);
                if (fd >= 0 || (fd != -ENOENT && fd != -ECONNREFUSED))
                        return fd;
                usleep(10000);
        }
        return -ETIMEDOUT;
}

static int start_agent(char *const argv[], Process *ret, const char *path) {
        /* Logs to a file: an inherited stderr pipe would keep a test runner
         * waiting if an agent outlived the test. */
        char log[160];
        snprintf(log, sizeof(log), "%s/agent.log", tmpdir);
        _cleanup_close_ int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        SpawnOptions o;
        spawn_options_init(&o);
        o.stderr_fd = logfd;
        int r = spawn_process(argv, &o, ret);
        if (r < 0)
                return r;
        int fd = connect_retry(path);
        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

static int group_setup(void **state) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/bg-agent-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", tmpdir);
        char *argv[] = { AGENT_BIN, "--listen-unix", sock_path, NULL };
        return start_agent(argv, &agent, sock_path) < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
        process_kill_and_reap(&agent);
        process_kill_and_reap(&extra_agent);
        char cmd_dir[128];
        snprintf(cmd_dir, sizeof(cmd_dir), "%s", tmpdir);
        char *argv[] = { "rm", "-rf", "--", cmd_dir, NULL };
        (void) spawn_run_capture(argv, T_SEC, 0, false, NULL);
        return 0;
}

static AgentClient *client_connect(const char *path) {
        int fd = connect_unix(path);
        assert_true(fd >= 0);
        AgentClient *c = NULL;
        assert_int_equal(agent_client_new(fd, &c), 0);
        AgentHello h;
        assert_int_equal(agent_client_hello(c, T_SEC, &h), 0);
        assert_int_equal(h.version, AGENT_PROTOCOL_VERSION);
        assert_true(agent_hello_has_cap(&h, "exec") && agent_hello_has_cap(&h, "pty"));
        return c;
}

static void test_static_binary(void **state) {
        if (!AGENT_STATIC) {
                print_message("sanitizer build: the agent is linked dynamically here\n");
                skip();
        }
        _cleanup_free_ char *out = NULL;
        char *argv[] = { "file", "-b", AGENT_BIN, NULL };
        assert_int_equal(spawn_run_capture(argv, T_SEC, 4096, false, &out), 0);
        assert_non_null(strstr(out, "statically linked"));
}

static void test_health(void **state) {
        _cleanup_(agent_client_freep) AgentClient *c = client_connect(sock_path);
        AgentHealth h;
        assert_int_equal(agent_client_health(c, T_SEC, &h), 0);
        _cleanup_free_ char *boot_id = NULL;
        _cleanup_close_ int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        char buf[64] = "";
        assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
        buf[strcspn(buf, "\n")] = 0;
        assert_string_equal(h.boot_id, buf);
        assert_string_equal(h.agent_version, BANGER_VERSION);
        assert_int_equal(h.protocol, AGENT_PROTOCOL_VERSION);
        assert_true(h.uptime_sec > 0);
        struct utsname u;
        uname(&u);
        assert_string_equal(h.kernel, u.release);
        agent_health_done(&h);
}

static void test_work_disk_parse(void **state) {
        static const char mountinfo[] = "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
                                        "30 22 254:16 / /root rw,relatime - ext4 /dev/vdb rw\n";
        AgentWorkDisk w;
        /* Debian image's entry, mounted. */
        assert_int_equal(agent_work_disk_parse("# c\n/dev/vda / ext4 defaults 0 1\n"
                                               "/dev/vdb /root ext4 defaults,nofail,x-systemd.device-timeout=0 0 2\n",
                                               mountinfo, &w),
                         1);
        assert_string_equal(w.device, "/dev/vdb");
        assert_string_equal(w.mount, "/root");
        assert_true(w.mounted);
        agent_work_disk_done(&w);
        /* By label, not mounted. */
        assert_int_equal(agent_work_disk_parse("LABEL=banger-work\t/work ext4 defaults 0 2\n", mountinfo, &w), 1);
        assert_string_equal(w.mount, "/work");
        assert_false(w.mounted);
        agent_work_disk_done(&w);
        /* No entry, a comment, noauto, another disk: no work disk to wait for. */
        assert_int_equal(agent_work_disk_parse("#/dev/vdb /root ext4 defaults 0 2\n"
                                               "/dev/vdb /root ext4 noauto 0 2\n/dev/vdc /data ext4 defaults 0 2\n",
                                               mountinfo, &w),
                         0);
        assert_null(w.device);
        assert_int_equal(agent_work_disk_parse("", "", &w), 0);
}

static char *read_memfd(int fd) {
        off_t len = lseek(fd, 0, SEEK_END);
        char *s = calloc(1, (size_t) len + 1);
        assert_non_null(s);
        assert_int_equal(pread(fd, s, (size_t) len, 0), len);
        return s;
}

typedef struct ExecOut {
        int r;
        AgentExecResult res;
        char *out, *err;
} ExecOut;

static ExecOut run(AgentClient *c, char *const argv[], char *const env[], const char *cwd, int in, usec_t timeout) {
        _cleanup_close_ int o = memfd_create("out", MFD_CLOEXEC), e = memfd_create("err", MFD_CLOEXEC);
        AgentExecOptions opt = { .argv = argv,
                                 .env = env,
                                 .cwd = cwd,
                                 .stdin_fd = in,
                                 .stdout_fd = o,
                                 .stderr_fd = e,
                                 .signal_fd = -1,
                                 .tty_fd = -1 };
        ExecOut x = {};
        x.r = agent_client_exec(c, &opt, timeout, &x.res);
        x.out = read_memfd(o);
        x.err = read_memfd(e);
        return x;
}

static void exec_out_done(ExecOut *x) {
        free(x->out);
        free(x->err);
}

static void test_exec_uname(void **state) {
        _cleanup_(agent_client_freep) AgentClient *c = client_connect(sock_path);
        struct utsname u;
        uname(&u);
        char want[128];
        snprintf(want, sizeof(want), "%s\n", u.release);
        char *argv[] = { "uname", "-r", NULL };
        ExecOut x = run(c, argv, NULL, NULL, -1, T_SEC);
        assert_int_equal(x.r, 0);
        assert_string_equal(x.out, want);
        assert_string_equal(x.err, "");
        assert_int_equal(x.res.kind, AGENT_EXIT_CODE);
        assert_int_equal(x.res.code, 0);
        assert_true(x.res.pid > 0);
        exec_out_done(&x);
}

static void test_exec_stdin(void **state) {
        _cleanup_(agent_client_freep) AgentClient *c = client_connect(sock_path);
        /* Small input through a pipe. */
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(write(p[1], "hello\nworld\n", 12), 12);
        close(p[1]);
        char *argv[] = { "cat", NULL };
        ExecOut x = run(c, argv, NULL, NULL, p[0], T_SEC);
        close(p[0]);
        assert_int_equal(x.r, 0);
        assert_string_equal(x.out, "hello\nworld\n");
        exec_out_done(&x);

        /* 3 MiB both ways: more than any queue, so flow control must work. */
        size_t big = 3 << 20;
        _cleanup_close_ int in = memfd_create("in", MFD_CLOEXEC);
        _cleanup_free_ char *data = malloc(big + 1);
        for (size_t i = 0; i < big; i++)
                data[i] = (char) ('a' + (i * 7) % 26);
        data[big] = 0;
        assert_int_equal(loop_write(in, data, big), 0);
        lseek(in, 0, SEEK_SET);
        x = run(c, argv, NULL, NULL, in, T_SEC * 3);
        assert_int_equal(x.r, 0);
        assert_int_equal(strlen(x.out), big);
        assert_true(memcmp(x.out, data, big) == 0);
        exec_out_done(&x);
}

static void test_exec_streams_and_codes(void **state) {
        _cleanup_(agent_client_freep) AgentClient *c = client_connect(sock_path);
        char *a1[] = { "sh", "-c", "echo out; echo err >&2; echo out2", NULL };
        ExecOut x = run(c, a1, NULL, NULL, -1, T_SEC);
        assert_int_equal(x.r, 0);
        assert_string_equal(x.out, "out\nout2\n");
        assert_string_equal(x.err, "err\n");
        exec_out_done(&x);

        char *a2[] = { "sh", "-c", "exit 7", NULL };
        x = run(c, a2, NULL, NULL, -1, T_SEC);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.res.kind, AGENT_EXIT_CODE);
        assert_int_equal(x.res.code, 7);
        exec_out_done(&x);

        char *a3[] = { "sh", "-c", "kill -TERM $$", NULL };
        x = run(c, a3, NULL, NULL, -1, T_SEC);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.res.kind, AGENT_EXIT_SIGNAL);
        assert_int_equal(x.res.code, SIGTERM);
        exec_out_done(&x);

        char *env[] = { "FOO=bar baz", "PATH=/usr/bin:/bin", NULL };
        char *a4[] = { "sh", "-c", "echo \"$FOO\" \"$(pwd)\" \"$HOME\"", NULL };
        x = run(c, a4, env, "/tmp", -1, T_SEC);
        assert_int_equal(x.r, 0);
        assert_string_equal(x.out, "bar baz /tmp /root\n"); /* HOME: the agent's default, added */
        exec_out_done(&x);

        error_clear();
        char *a5[] = { "/nonexistent/banger-test", NULL };
        x = run(c, a5, NULL, NULL, -1, T_SEC);
        assert_int_equal(x.r, -ENOENT);
        assert_non_null(strstr(error_last_message(), "/nonexistent/banger-test"));
        exec_out_done(&x);

        /* A deadline kills the command and the session stays usable. */
        char *a6[] = { "sleep", "30", NULL };
        usec_t t0 = now_monotonic();
        x = run(c, a6, NULL, NULL, -1, 300 * USEC_PER_MSEC);
        assert_int_equal(x.r, -ETIMEDOUT);
        assert_true(now_monotonic() - t0 < 3 * USEC_PER_SEC);
        exec_out_done(&x);
        AgentHealth h;
        assert_int_equal(agent_client_health(c, T_SEC, &h), 0);
        agent_health_done(&h);
}

static void test_ports(void **state) {
        _cleanup_close_ int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        _cleanup_close_ int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        assert_int_equal(bind(tcp, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(tcp, 1), 0);
        assert_int_equal(getsockname(tcp, (struct sockaddr *) &sa, &sl), 0);
        unsigned tport = ntohs(sa.sin_port);
        sa.sin_port = 0;
        assert_int_equal(bind(udp, (struct sockaddr *) &sa, sizeof(sa)), 0);
        sl = sizeof(sa);
        assert_int_equal(getsockname(udp, (struct sockaddr *) &sa, &sl), 0);
        unsigned uport = ntohs(sa.sin_port);

        char comm[32] = "";
        _cleanup_close_ int cfd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
        assert_true(read(cfd, comm, sizeof(comm) - 1) > 0);
        comm[strcspn(comm, "\n")] = 0;

        _cleanup_(agent_client_freep) AgentClient *c = client_connect(sock_path);
        AgentPort *ports = NULL;
        size_t n = 0;
        assert_int_equal(agent_client_ports(c, T_SEC, &ports, &n), 0);
        bool found_tcp = false, found_udp = false;
        for (size_t i = 0; i < n; i++) {
                bool ours = streq(ports[i].address, "127.0.0.1") && ports[i].pid == getpid();
                if (ours && streq(ports[i].proto, "tcp") && ports[i].port == tport) {
                        assert_string_equal(ports[i].process, comm);
                        found_tcp = true;
                }
                if (ours && streq(ports[i].proto, "udp") && ports[i].port == uport)
                        found_udp = true;
        }
        agent_ports_free(ports, n);
        assert_true(found_tcp);
        assert_true(found_udp);
}

static unsigned long long meminfo_total(void) {
        _cleanup_close_ int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
        char buf[256] = "";
        assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
        return strtoull(buf + strlen("MemTotal:"), NULL, 10);
}

static void test_stats(void **state) {
        _cleanup_(agent_client_freep) AgentClient *c = client_connect(sock_path);
        AgentStats s;
        assert_int_equal(agent_client_stats(c, T_SEC, &s), 0);
        assert_true(s.mem_total_kib == meminfo_total());
        assert_true(s.mem_available_kib > 0 && s.mem_available_kib <= s.mem_total_kib);
        assert_true(s.procs_total > 0);
        assert_true(s.load1 >= 0);
}

/* --- raw protocol abuse --- */

static void raw_send(int fd, uint8_t type, uint32_t len, const void *payload, size_t actual) {
        uint8_t hdr[AGENT_FRAME_HEADER_SIZE];
        agent_frame_header_encode(hdr, type, len);
        assert_int_equal(loop_write(fd, hdr, sizeof(hdr)), 0);
        if (actual > 0)
                assert_int_equal(loop_write(fd, payload, actual), 0);
}

static void raw_stream(int fd, AgentStreamFrame f) {
        uint8_t *buf = malloc(agent_stream_frame_size(&f));
        assert_non_null(buf);
        size_t n = agent_stream_frame_encode(&f, buf);
        assert_int_equal(loop_write(fd, buf, n), 0);
        free(buf);
}

/* Read one frame (5 s limit): returns its type, -1 on EOF. */
static int raw_recv(int fd, uint8_t *buf, size_t cap, uint32_t *ret_len) {
        struct timeval tv = { .tv_sec = 5 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        uint8_t hdr[AGENT_FRAME_HEADER_SIZE];
        ssize_t n = loop_read(fd, hdr, sizeof(hdr));
        if (n == 0)
                return -1;
        assert_int_equal(n, sizeof(hdr));
        uint32_t len = agent_get_u32(hdr + 1);
        assert_true(len <= cap);
        assert_int_equal(loop_read(fd, buf, len), len);
        if (ret_len)
                *ret_len = len;
        return hdr[0];
}

/* The next stream frame (parsed into *f, its payload in buf). */
static void raw_recv_stream(int fd, uint8_t *buf, size_t cap, AgentStreamFrame *f) {
        uint32_t len;
        int type = raw_recv(fd, buf, cap, &len);
        assert_true(type > 0 && agent_msg_is_stream((uint8_t) type));
        AgentFrame fr = { .type = (uint8_t) type, .len = len, .payload = buf };
        assert_int_equal(agent_stream_frame_parse(&fr, f), 0);
}

static int raw_connect_hello(void) {
        int fd = connect_unix(sock_path);
        assert_true(fd >= 0);
        uint8_t hello[AGENT_HELLO_FRAME_SIZE], buf[512];
        agent_hello_encode(hello, AGENT_PROTOCOL_VERSION, 42);
        assert_int_equal(loop_write(fd, hello, sizeof(hello)), 0);
        assert_int_equal(raw_recv(fd, buf, sizeof(buf), NULL), AGENT_MSG_HELLO);
        return fd;
}

static void expect_error(int fd, int err) {
        uint8_t buf[2048];
        uint32_t len;
        assert_int_equal(raw_recv(fd, buf, sizeof(buf), &len), AGENT_MSG_ERROR);
        assert_true(len >= 4);
        assert_int_equal(agent_get_u32(buf), err);
}

/* A health stream on a raw connection: OPENED, DATA, CLOSE(0). */
static void expect_health(int fd, uint32_t id) {
        uint8_t buf[8192];
        AgentStreamFrame f;
        raw_stream(fd, (AgentStreamFrame){ .type = AGENT_MSG_OPEN,
                                           .id = id,
                                           .kind = AGENT_STREAM_HEALTH,
                                           .value = AGENT_WINDOW_DEFAULT });
        raw_recv_stream(fd, buf, sizeof(buf), &f);
        assert_int_equal(f.type, AGENT_MSG_OPENED);
        assert_int_equal(f.id, id);
        raw_recv_stream(fd, buf, sizeof(buf), &f);
        assert_int_equal(f.type, AGENT_MSG_DATA);
        raw_recv_stream(fd, buf, sizeof(buf), &f);
        assert_int_equal(f.type, AGENT_MSG_CLOSE);
        assert_int_equal(f.value, 0);
        raw_stream(fd, (AgentStreamFrame){ .type = AGENT_MSG_CLOSE, .id = id });
}

static void expect_eof(int fd) {
        uint8_t buf[16];
        assert_int_equal(raw_recv(fd, buf, sizeof(buf), NULL), -1);
}

static void test_bad_frames(void **state) {
        /* Unknown type: an error, and the connection carries on. */
        int fd = raw_connect_hello();
        raw_send(fd, 0x7f, 3, "abc", 3);
        expect_error(fd, EBADMSG);
        expect_health(fd, 1);
        /* A malformed stream frame (id 0), then a malformed exec request (argc 0). */
        raw_send(fd, AGENT_MSG_WINDOW, 8, "\0\0\0\0\0\0\0\1", 8);
        expect_error(fd, EBADMSG);
        uint8_t bad[16] = { 0 }, buf[2048];
        raw_stream(fd, (AgentStreamFrame){ .type = AGENT_MSG_OPEN,
                                           .id = 3,
                                           .kind = AGENT_STREAM_EXEC,
                                           .value = 4096,
                                           .data = bad,
                                           .len = sizeof(bad) });
        AgentStreamFrame f;
        raw_recv_stream(fd, buf, sizeof(buf), &f);
        assert_int_equal(f.type, AGENT_MSG_CLOSE);
        assert_int_equal(f.id, 3);
        assert_int_equal(f.value, E2BIG);
        raw_stream(fd, (AgentStreamFrame){ .type = AGENT_MSG_CLOSE, .id = 3 });
        expect_health(fd, 3);
        /* Oversized: error, then the connection is closed. */
        raw_send(fd, AGENT_MSG_DATA, 0x7fffffff, NULL, 0);
        expect_error(fd, EMSGSIZE);
        expect_eof(fd);
        close(fd);

        /* Truncated: the peer hangs up half way through a frame. */
        fd = raw_connect_hello();
        raw_send(fd, AGENT_MSG_OPEN, 100, "0123456789", 10);
        shutdown(fd, SHUT_WR);
        expect_error(fd, EBADMSG);
        expect_eof(fd);
        close(fd);

        /* Garbage and requests before hello. */
        fd = connect_unix(sock_path);
        assert_int_equal(loop_write(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 0);
        expect_error(fd, EMSGSIZE);
        expect_eof(fd);
        close(fd);
        fd = connect_unix(sock_path);
        raw_stream(fd, (AgentStreamFrame){ .type = AGENT_MSG_OPEN, .id = 1, .kind = AGENT_STREAM_HEALTH, .value = 1 });
        expect_error(fd, EPROTO);
        expect_eof(fd);
        close(fd);

        /* A host of protocol version 1 is told to upgrade. */
        fd = connect_unix(sock_path);
        uint8_t hello[AGENT_HELLO_FRAME_SIZE];
        agent_hello_encode(hello, 1, 42);
        assert_int_equal(loop_write(fd, hello, sizeof(hello)), 0);
        expect_error(fd, EPROTONOSUPPORT);
        expect_eof(fd);
        close(fd);

        /* The agent survived all of it. */
        _cleanup_(agent_client_freep) AgentClient *c = client_connect(sock_path);
        AgentHealth h;
        assert_int_equal(agent_client_health(c, T_SEC, &h), 0);
        agent_health_done(&h);
}

static void test_concurrent_sessions(void **state) {
        /* A command running on one connection does not hold up another. */
        _cleanup_(agent_client_freep) AgentClient *busy = client_connect(sock_path);
        char *argv[] = { "sleep", "3", NULL };
        usec_t t0 = now_monotonic();
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                AgentExecOptions o = {
                        .argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .signal_fd = -1, .tty_fd = -1
                };
                AgentExecResult res;
                _exit(agent_client_exec(busy, &o, T_SEC, &res) == 0 ? 0 : 1);
        }
        usleep(200 * 1000);
        _cleanup_(agent_client_freep) AgentClient *c = client_connect(sock_path);
        AgentStats s;
        assert_int_equal(agent_client_stats(c, T_SEC, &s), 0);
        assert_true(now_monotonic() - t0 < USEC_PER_SEC);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_poweroff_refused(void **state) {
        _cleanup_(agent_client_freep) AgentClient *c = client_connect(sock_path);
        assert_int_equal(agent_client_poweroff(c, T_SEC), -EPERM);
}

static void test_poweroff_pidns(void **state) {
        /* In its own PID namespace the agent is PID 1, and reboot() only ends
         * that namespace: the real poweroff path, safely. */
        char path[160];
        snprintf(path, sizeof(path), "%s/pidns.sock", tmpdir);
        char *argv[] = { "unshare", "--pid", "--fork", "--kill-child", AGENT_BIN, "--listen-unix", path, NULL };
        Process *p = &extra_agent;
        int r = start_agent(argv, p, path);
        if (r < 0) {
                process_kill_and_reap(p);
                print_message("cannot run the agent in a PID namespace here: %s\n", strerror(-r));
                skip();
        }
        AgentClient *c = client_connect(path);
        assert_int_equal(agent_client_poweroff(c, T_SEC), 0);
        agent_client_free(c);
        int status = 0;
        r = process_wait(p, T_SEC, &status);
        assert_int_equal(r, 0);
        /* unshare re-raises the signal its child died of: SIGINT for poweroff. */
        assert_true((WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) ||
                    (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGINT));
        process_release(p);
        *p = PROCESS_NULL;
}

/* --- stream transport (a pty stands in for the virtio-serial port) --- */

static void test_stream_resync(void **state) {
        int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        assert_true(m >= 0);
        assert_int_equal(grantpt(m), 0);
        assert_int_equal(unlockpt(m), 0);
        char pts[64];
        assert_int_equal(ptsname_r(m, pts, sizeof(pts)), 0);
        /* Holding the slave open keeps master reads from failing with EIO
         * before the agent opened its side. */
        _cleanup_close_ int slave = open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
        struct termios t;
        assert_int_equal(tcgetattr(slave, &t), 0);
        cfmakeraw(&t);
        assert_int_equal(tcsetattr(slave, TCSANOW, &t), 0);
        char path[160];
        snprintf(path, sizeof(path), "%s/stream.sock", tmpdir);
        char *argv[] = { AGENT_BIN, "--listen-unix", path, "--serial", pts, NULL };
        assert_int_equal(start_agent(argv, &extra_agent, path), 0);

        /* Garbage whose "length" is absurd: the agent resynchronises at once. */
        assert_int_equal(loop_write(m, "garbage!garbage!", 16), 0);
        AgentClient *c = NULL;
        assert_int_equal(agent_client_new(dup(m), &c), 0);
        assert_int_equal(agent_client_hello(c, T_SEC, NULL), 0);
        char *a[] = { "echo", "over the stream", NULL };
        ExecOut x = run(c, a, NULL, NULL, -1, T_SEC);
        assert_int_equal(x.r, 0);
        assert_string_equal(x.out, "over the stream\n");
        exec_out_done(&x);

        /* A frame cut off by a host that went away: the next host's hello is
         * swallowed until the agent gives up on the frame, then a repeated
         * hello gets through. */
        raw_send(m, AGENT_MSG_DATA, 4000, "partial", 7);
        agent_client_free(c);
        assert_int_equal(agent_client_new(dup(m), &c), 0);
        assert_int_equal(agent_client_hello(c, 3 * T_SEC, NULL), 0);
        AgentHealth h;
        assert_int_equal(agent_client_health(c, T_SEC, &h), 0);
        agent_health_done(&h);
        agent_client_free(c);
        close(m);
        process_kill_and_reap(&extra_agent);
}

/* --- guest network setup, in a network and UTS namespace of our own --- */

static int check_cmd(char *const argv[], const char *want) {
        _cleanup_free_ char *out = NULL;
        int r = spawn_run_capture(argv, T_SEC, 65536, true, &out);
        if (r != 0 || !strstr(out, want)) {
                fprintf(stderr, "%s: exit %d, wanted \"%s\" in:\n%s\n", argv[0], r, want, out ? out : "");
                return 1;
        }
        return 0;
}

static int make_root(const char *name, const char *conf, char *ret, size_t len) {
        snprintf(ret, len, "%s/%s", tmpdir, name);
        char etc[256];
        snprintf(etc, sizeof(etc), "%s/etc/banger", ret);
        if (mkdir_p(etc, 0755) < 0)
                return -1;
        if (!conf)
                return 0;
        _cleanup_close_ int d = open_dir_nofollow(AT_FDCWD, etc);
        return d < 0 ? -1 : write_file_atomic_at(d, "network.conf", conf, strlen(conf), 0644);
}

static int network_child(void) {
        if (unshare(CLONE_NEWNET | CLONE_NEWUTS) < 0) {
                fprintf(stderr, "cannot create network/UTS namespaces: %m\n");
                return 77;
        }
        /* A veth pair (this kernel has no dummy driver); the peer is up so
         * eth7 gets a carrier like a virtio NIC would. */
        char *add[] = { "ip",   "link", "add",  "eth7", "address", "02:fc:00:00:00:07",
                        "type", "veth", "peer", "name", "peer7",   NULL };
        char *up[] = { "ip", "link", "set", "peer7", "up", NULL };
        if (spawn_run_capture(add, T_SEC, 0, false, NULL) != 0 || spawn_run_capture(up, T_SEC, 0, false, NULL) != 0) {
                fprintf(stderr, "cannot create a veth pair\n");
                return 77;
        }
        char root[200], empty[200], bad[200];
        const char *conf = "# test\nHOSTNAME=guest-test\nADDRESS=172.16.0.2/24\nGATEWAY=172.16.0.1\n"
                           "MAC=02:FC:00:00:00:07\nDNS=172.16.0.1 10.0.0.53\nMTU=1400\nFUTURE_KEY=x\n";
        if (make_root("netroot", conf, root, sizeof(root)) < 0 || make_root("noconf", NULL, empty, sizeof(empty)) < 0 ||
            make_root("badconf", "ADDRESS=300.1.2.3/24\n", bad, sizeof(bad)) < 0)
                return 2;
        int fails = 0;
        char *setup[] = { AGENT_BIN, "--setup-network", "--root", root, NULL };
        fails += check_cmd(setup, "network: eth7 172.16.0.2/24 via 172.16.0.1");
        fails += check_cmd((char *[]){ "ip", "-o", "-4", "addr", "show", "dev", "eth7", NULL }, "inet 172.16.0.2/24");
        fails += check_cmd((char *[]){ "ip", "route", "show", "default", NULL }, "default via 172.16.0.1 dev eth7");
        fails += check_cmd((char *[]){ "ip", "-o", "link", "show", "eth7", NULL }, "mtu 1400");
        fails += check_cmd((char *[]){ "ip", "-o", "link", "show", "lo", NULL }, ",UP");
        _cleanup_close_ int rfd = open_dir_nofollow(AT_FDCWD, root);
        _cleanup_free_ char *resolv = NULL;
        if (read_file_at(rfd, "etc/resolv.conf", 4096, &resolv, NULL) < 0 ||
            !strstr(resolv, "\nnameserver 172.16.0.1\nnameserver 10.0.0.53\n"))
                fails++, fprintf(stderr, "resolv.conf: %s\n", resolv ? resolv : "(missing)");
        struct utsname u;
        if (uname(&u) < 0 || !streq(u.nodename, "guest-test"))
                fails++, fprintf(stderr, "hostname is %s\n", u.nodename);
        char *none[] = { AGENT_BIN, "--setup-network", "--root", empty, NULL };
        fails += check_cmd(none, "skipping network setup");
        char *inval[] = { AGENT_BIN, "--setup-network", "--root", bad, NULL };
        if (spawn_run_capture(inval, T_SEC, 0, false, NULL) != 1)
                fails++, fprintf(stderr, "an invalid network.conf did not fail\n");
        return fails ? 1 : 0;
}

static void test_network_setup(void **state) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(network_child());
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) == 77)
                skip();
        assert_int_equal(WEXITSTATUS(st), 0);
}

/* --- vsock handshake against a fake Firecracker vsock socket --- */

static pid_t fake_vsock(int fd, const char *reply) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid > 0)
                return pid;
        char line[64] = "";
        size_t n = 0;
        while (n < sizeof(line) - 1 && read(fd, &line[n], 1) == 1 && line[n] != '\n')
                n++;
        line[n] = 0;
        /* Only answer the exact request Firecracker expects. */
        if (!streq(line, "CONNECT 10789"))
                _exit(1);
        if (reply)
                (void) !write(fd, reply, strlen(reply));
        _exit(0);
}

static void test_vsock_handshake(void **state) {
        int sp[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        pid_t pid = fake_vsock(sp[1], "OK 1073741824\nAFTER");
        close(sp[1]);
        assert_int_equal(agent_vsock_handshake(sp[0], AGENT_VSOCK_PORT, T_SEC), 0);
        char rest[8] = "";
        assert_int_equal(loop_read(sp[0], rest, 5), 5);
        assert_string_equal(rest, "AFTER"); /* nothing past the line was consumed */
        close(sp[0]);
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

        /* Nobody listening: Firecracker just closes the connection. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        pid = fake_vsock(sp[1], NULL);
        close(sp[1]);
        assert_int_equal(agent_vsock_handshake(sp[0], AGENT_VSOCK_PORT, T_SEC), -ECONNREFUSED);
        close(sp[0]);
        waitpid(pid, &st, 0);

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        pid = fake_vsock(sp[1], "NOPE\n");
        close(sp[1]);
        assert_int_equal(agent_vsock_handshake(sp[0], AGENT_VSOCK_PORT, T_SEC), -EPROTO);
        close(sp[0]);
        waitpid(pid, &st, 0);

        /* Silence: the deadline holds. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        assert_int_equal(agent_vsock_handshake(sp[0], AGENT_VSOCK_PORT, 200 * USEC_PER_MSEC), -ETIMEDOUT);
        close(sp[0]);
        close(sp[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_static_binary),
                cmocka_unit_test(test_work_disk_parse),
                cmocka_unit_test(test_health),
                cmocka_unit_test(test_exec_uname),
                cmocka_unit_test(test_exec_stdin),
                cmocka_unit_test(test_exec_streams_and_codes),
                cmocka_unit_test(test_ports),
                cmocka_unit_test(test_stats),
                cmocka_unit_test(test_bad_frames),
                cmocka_unit_test(test_concurrent_sessions),
                cmocka_unit_test(test_poweroff_refused),
                cmocka_unit_test(test_poweroff_pidns),
                cmocka_unit_test(test_stream_resync),
                cmocka_unit_test(test_vsock_handshake),
                cmocka_unit_test(test_network_setup),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
