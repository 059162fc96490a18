/* SPDX-License-Identifier: MIT */
/* The QMP client against a fake QEMU: the far end of a socketpair holding
 * canned replies in QEMU's wire format (one JSON object per line, "\r\n"),
 * as captured from qemu-system-x86_64 7.2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "qemu-qmp.h"

#define GREETING                                                                                        \
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": " \
        "\"Debian 1:7.2+dfsg-7+deb12u18\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define CAPS_OK "{\"return\": {}, \"id\": \"banger-0\"}\r\n"

typedef struct Pair {
        int client, server;
} Pair;

static Pair pair_with(const char *canned) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(loop_write(sv[1], canned, strlen(canned)), 0);
        return (Pair){ .client = sv[0], .server = sv[1] };
}

/* What the client sent, as text. */
static char *sent(int server) {
        static char buf[4096];
        ssize_t n = recv(server, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static void test_execute_skips_events(void **state) {
        Pair p = pair_with(GREETING CAPS_OK
                           "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"RESUME\"}\r\n"
                           "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
                           "\"id\": \"banger-1\"}\r\n");
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        assert_int_equal(qmp_client_new_from_fd(p.client, 5 * USEC_PER_SEC, &c), 0);
        _cleanup_(qmp_json_decrefp) json_t *ret = NULL;
        assert_int_equal(qmp_client_execute(c, "query-status", NULL, 5 * USEC_PER_SEC, &ret), 0);
        assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
        assert_string_equal(sent(p.server), "{\"execute\":\"qmp_capabilities\",\"id\":\"banger-0\"}\n"
                                            "{\"execute\":\"query-status\",\"id\":\"banger-1\"}\n");
        close(p.server);
}

static void test_arguments_are_sent(void **state) {
        Pair p = pair_with(GREETING CAPS_OK "{\"return\": {}, \"id\": \"banger-1\"}\r\n");
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        assert_int_equal(qmp_client_new_from_fd(p.client, 5 * USEC_PER_SEC, &c), 0);
        _cleanup_(qmp_json_decrefp) json_t *args = json_pack("{s:s}", "device", "rootfs");
        assert_int_equal(qmp_client_execute(c, "eject", args, 5 * USEC_PER_SEC, NULL), 0);
        assert_non_null(strstr(sent(p.server),
                               "{\"execute\":\"eject\",\"id\":\"banger-1\",\"arguments\":{\"device\":\"rootfs\"}}\n"));
        close(p.server);
}

static void test_errors_carry_desc(void **state) {
        Pair p = pair_with(GREETING CAPS_OK "{\"id\": \"banger-1\", \"error\": {\"class\": \"GenericError\", "
                                            "\"desc\": \"Device 'nope' not found\"}}\r\n"
                                            "{\"id\": \"banger-2\", \"error\": {\"class\": \"CommandNotFound\", "
                                            "\"desc\": \"The command frobnicate has not been found\"}}\r\n");
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        assert_int_equal(qmp_client_new_from_fd(p.client, 5 * USEC_PER_SEC, &c), 0);
        error_clear();
        assert_int_equal(qmp_client_execute(c, "eject", NULL, 5 * USEC_PER_SEC, NULL), -EIO);
        assert_string_equal(error_last_message(), "QEMU refused eject: Device 'nope' not found");
        assert_int_equal(qmp_client_execute(c, "frobnicate", NULL, 5 * USEC_PER_SEC, NULL), -EOPNOTSUPP);
        assert_non_null(strstr(error_last_message(), "has not been found"));
        close(p.server);
}

static void test_bad_peers(void **state) {
        QmpClient *c = NULL;
        /* Not QEMU: a JSON greeting without "QMP". */
        Pair p = pair_with("{\"hello\": 1}\r\n");
        assert_int_equal(qmp_client_new_from_fd(p.client, 5 * USEC_PER_SEC, &c), -EPROTO);
        close(p.server);
        /* Garbage. */
        p = pair_with("HTTP/1.1 400 Bad Request\r\n");
        assert_int_equal(qmp_client_new_from_fd(p.client, 5 * USEC_PER_SEC, &c), -EBADMSG);
        close(p.server);
        /* A JSON array is not a QMP message. */
        p = pair_with("[1,2]\r\n");
        assert_int_equal(qmp_client_new_from_fd(p.client, 5 * USEC_PER_SEC, &c), -EBADMSG);
        close(p.server);
        /* QEMU went away mid-conversation (e.g. after "quit"). */
        p = pair_with(GREETING);
        close(p.server);
        assert_int_equal(qmp_client_new_from_fd(p.client, 5 * USEC_PER_SEC, &c), -ECONNRESET);
        /* A QEMU that never answers. */
        p = pair_with(GREETING);
        usec_t t0 = now_monotonic();
        assert_int_equal(qmp_client_new_from_fd(p.client, 200 * USEC_PER_MSEC, &c), -ETIMEDOUT);
        assert_true(now_monotonic() - t0 < 3 * USEC_PER_SEC);
        close(p.server);
        assert_null(c);
}

static void test_message_size_is_capped(void **state) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* More than the cap with no newline: the client must stop reading. */
                static char junk[64 * 1024];
                memset(junk, ' ', sizeof(junk));
                close(sv[0]);
                for (size_t sent_bytes = 0; sent_bytes <= QMP_MESSAGE_MAX; sent_bytes += sizeof(junk))
                        if (loop_write(sv[1], junk, sizeof(junk)) < 0)
                                break;
                pause();
                _exit(0);
        }
        close(sv[1]);
        QmpClient *c = NULL;
        assert_int_equal(qmp_client_new_from_fd(sv[0], 10 * USEC_PER_SEC, &c), -EMSGSIZE);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

/* getfd: the descriptor travels as SCM_RIGHTS with the command's bytes. */
static void test_add_fd_passes_descriptor(void **state) {
        Pair p = pair_with(GREETING CAPS_OK "{\"return\": {}, \"id\": \"banger-1\"}\r\n");
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        assert_int_equal(qmp_client_new_from_fd(p.client, 5 * USEC_PER_SEC, &c), 0);
        (void) sent(p.server); /* qmp_capabilities */
        int pfd[2];
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        assert_int_equal(qmp_client_add_fd(c, "banger-state", pfd[1], 5 * USEC_PER_SEC), 0);

        char buf[256] = "";
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control)
        };
        assert_true(recvmsg(p.server, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) > 0);
        assert_string_equal(buf, "{\"execute\":\"getfd\",\"id\":\"banger-1\",\"arguments\":{\"fdname\":"
                                 "\"banger-state\"}}\n");
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        assert_non_null(cm);
        assert_int_equal(cm->cmsg_type, SCM_RIGHTS);
        int got;
        memcpy(&got, CMSG_DATA(cm), sizeof(int));
        /* The received descriptor is the pipe's write end: bytes come out the other. */
        assert_int_equal(loop_write(got, "x", 1), 0);
        char x = 0;
        assert_int_equal(read(pfd[0], &x, 1), 1);
        assert_int_equal(x, 'x');
        close(got), close(pfd[0]), close(pfd[1]), close(p.server);
}

/* An event that arrived while a command waited for its reply is not lost:
 * wait_event finds it; a later one is read from the socket; none means a
 * timeout within the deadline. */
static void test_wait_event(void **state) {
        Pair p = pair_with(GREETING CAPS_OK
                           "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"MIGRATION\", "
                           "\"data\": {\"status\": \"setup\"}}\r\n"
                           "{\"return\": {}, \"id\": \"banger-1\"}\r\n"
                           "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 3}, \"event\": \"STOP\"}\r\n"
                           "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 4}, \"event\": \"MIGRATION\", "
                           "\"data\": {\"status\": \"completed\"}}\r\n");
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        assert_int_equal(qmp_client_new_from_fd(p.client, 5 * USEC_PER_SEC, &c), 0);
        assert_int_equal(qmp_client_execute(c, "migrate", NULL, 5 * USEC_PER_SEC, NULL), 0);
        json_t *data = NULL;
        assert_int_equal(qmp_client_wait_event(c, "MIGRATION", deadline_from_timeout(5 * USEC_PER_SEC), &data), 0);
        assert_string_equal(json_string_value(json_object_get(data, "status")), "setup");
        json_decref(data);
        assert_int_equal(qmp_client_wait_event(c, "MIGRATION", deadline_from_timeout(5 * USEC_PER_SEC), &data), 0);
        assert_string_equal(json_string_value(json_object_get(data, "status")), "completed");
        json_decref(data);
        usec_t t0 = now_monotonic();
        assert_int_equal(qmp_client_wait_event(c, "MIGRATION", deadline_from_timeout(200 * USEC_PER_MSEC), NULL),
                         -ETIMEDOUT);
        assert_true(now_monotonic() - t0 < 3 * USEC_PER_SEC);
        close(p.server);
}

static void test_connect_missing_socket(void **state) {
        QmpClient *c = NULL;
        assert_int_equal(qmp_client_connect("/nonexistent/banger/qmp.sock", USEC_PER_SEC, &c), -ENOENT);
        char long_path[200];
        memset(long_path, 'a', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = '\0';
        assert_int_equal(qmp_client_connect(long_path, USEC_PER_SEC, &c), -ENAMETOOLONG);
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_execute_skips_events),     cmocka_unit_test(test_arguments_are_sent),
                cmocka_unit_test(test_errors_carry_desc),        cmocka_unit_test(test_bad_peers),
                cmocka_unit_test(test_message_size_is_capped),   cmocka_unit_test(test_connect_missing_socket),
                cmocka_unit_test(test_add_fd_passes_descriptor), cmocka_unit_test(test_wait_event),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
