/* SPDX-License-Identifier: MIT */
/* The helper client against the real bangerd-root, started through
 * helper_spawn() inside a private network namespace (unshare(CLONE_NEWNET)
 * in this process; the helper inherits it). Needs root: skips with 77. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "helper-client.h"
#include "netlink.h"
#include "spawn.h"
#include "string-util.h"

#define OWNER 65534

static char tmpdir[] = "/tmp/bg-hc-XXXXXX";
static char state[128], sockdir[128], sock[160];
static Process helper_proc = { .pid = 0, .pidfd = -EBADF };

static HelperSpawnOptions options(void) {
        return (HelperSpawnOptions){
                .binary = TEST_BUILD_DIR "/src/helper/bangerd-root",
                .socket_path = sock,
                .state_dir = state,
                .owner_uid = OWNER,
                .owner_gid = OWNER,
                .log_fd = STDERR_FILENO,
        };
}

static int setup(void **s) {
        assert_non_null(mkdtemp(tmpdir));
        assert_int_equal(chmod(tmpdir, 0711), 0);
        snprintf(state, sizeof(state), "%s/state", tmpdir);
        snprintf(sockdir, sizeof(sockdir), "%s/sock", tmpdir);
        snprintf(sock, sizeof(sock), "%s/h.sock", sockdir);
        assert_int_equal(mkdir(state, 0755), 0);
        HelperSpawnOptions o = options();
        assert_int_equal(helper_spawn(&o, &helper_proc), 1);
        assert_true(helper_proc.pid > 0);
        return 0;
}

static int teardown(void **s) {
        if (helper_proc.pid > 0)
                process_kill_and_reap(&helper_proc);
        char *argv[] = { "rm", "-rf", tmpdir, NULL };
        (void) spawn_run_capture(argv, 10 * USEC_PER_SEC, 0, false, NULL);
        return 0;
}

static void test_spawn_reuses_running_helper(void **s) {
        HelperSpawnOptions o = options();
        Process p = PROCESS_NULL;
        assert_int_equal(helper_spawn(&o, &p), 0);
        assert_int_equal(p.pid, 0);
        o.owner_uid = 4242; /* a helper for someone else is not reused */
        assert_int_equal(helper_spawn(&o, &p), -EADDRINUSE);
        json_t *info = NULL;
        assert_int_equal(helper_ping(sock, 5 * USEC_PER_SEC, &info), 0);
        assert_int_equal(json_integer_value(json_object_get(info, "owner_uid")), OWNER);
        assert_int_equal(json_integer_value(json_object_get(info, "pid")), helper_proc.pid);
        json_decref(info);
        struct stat st;
        assert_int_equal(lstat(sock, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_uid, OWNER);
}

static void test_bridge_and_tap(void **s) {
        bool created = false;
        assert_int_equal(helper_bridge_ensure(sock, &created), 0);
        assert_true(created);
        assert_int_equal(helper_bridge_ensure(sock, &created), 0);
        assert_false(created);
        assert_int_equal(helper_tap_create(sock, "bgt1"), 0);

        _cleanup_netlink_ Netlink *nl = NULL;
        assert_int_equal(netlink_open(&nl), 0);
        NlLink br, tap;
        assert_int_equal(nl_link_get(nl, "br-fc", &br), 0);
        assert_int_equal(nl_link_get(nl, "bgt1", &tap), 0);
        assert_int_equal(tap.master, br.ifindex);
        assert_string_equal(tap.kind, "tun");

        char **taps = NULL;
        assert_int_equal(helper_tap_list(sock, &taps), 0);
        assert_non_null(taps[0]);
        assert_string_equal(taps[0], "bgt1");
        assert_null(taps[1]);
        strv_free(taps);
}

static void test_refusals_carry_the_reason(void **s) {
        error_clear();
        assert_int_equal(helper_tap_create(sock, "eth0"), -EINVAL);
        assert_non_null(strstr(error_last_message(), "invalid TAP name 'eth0'"));
        char *dev = NULL;
        assert_int_equal(helper_loop_attach(sock, "../etc/shadow", true, &dev), -EPERM);
        assert_non_null(strstr(error_last_message(), "not a clean relative path"));
        assert_null(dev);
        HelperNatEntry e = { .tap = "bgt1" };
        assert_int_equal(inet_pton(AF_INET, "10.1.2.3", &e.guest), 1);
        assert_int_equal(helper_nat_apply(sock, &e, 1), -EPERM);
        assert_non_null(strstr(error_last_message(), "not a host address inside the VM network"));
        assert_int_equal(helper_call(sock, "no.such", NULL, 5 * USEC_PER_SEC, NULL), -EOPNOTSUPP);
        assert_int_equal(helper_loop_detach(sock, "/dev/loop0"), -EPERM);
        assert_int_equal(helper_dm_snapshot_remove(sock, "root"), -EINVAL);
}

static void test_reconcile_removes_unkept(void **s) {
        assert_int_equal(helper_tap_create(sock, "bgt2"), 0);
        char *keep[] = { "bgt1", NULL };
        json_t *removed = NULL;
        assert_int_equal(helper_reconcile(sock, keep, NULL, NULL, &removed), 0);
        json_t *taps = json_object_get(removed, "taps");
        assert_int_equal(json_array_size(taps), 1);
        assert_string_equal(json_string_value(json_array_get(taps, 0)), "bgt2");
        json_decref(removed);
        _cleanup_netlink_ Netlink *nl = NULL;
        NlLink l;
        assert_int_equal(netlink_open(&nl), 0);
        assert_int_equal(nl_link_get(nl, "bgt2", &l), -ENODEV);
        assert_int_equal(helper_tap_delete(sock, "bgt1"), 0);
        assert_int_equal(nl_link_get(nl, "bgt1", &l), -ENODEV);
}

static void test_missing_helper(void **s) {
        char path[200];
        snprintf(path, sizeof(path), "%s/none.sock", sockdir);
        assert_int_equal(helper_ping(path, USEC_PER_SEC, NULL), -ENOENT);
        /* A helper that refuses its options dies; spawn says so at once. */
        HelperSpawnOptions o = options();
        o.socket_path = path;
        o.bridge = "eth0";
        o.log_fd = -1;
        Process p = PROCESS_NULL;
        usec_t t0 = now_monotonic();
        assert_int_equal(helper_spawn(&o, &p), -ECHILD);
        assert_true(now_monotonic() - t0 < 5 * USEC_PER_SEC);
}

/* Last: SIGTERM is a clean exit that removes the socket. */
static void test_sigterm_removes_socket(void **s) {
        int status = -1;
        assert_int_equal(process_signal(&helper_proc, SIGTERM), 0);
        assert_int_equal(process_wait(&helper_proc, 10 * USEC_PER_SEC, &status), 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        helper_proc = PROCESS_NULL;
        assert_int_equal(access(sock, F_OK), -1);
        assert_int_equal(errno, ENOENT);
}

int main(void) {
        if (geteuid() != 0) {
                printf("test-helper-client: needs root (bangerd-root refuses to run otherwise); skipping\n");
                return 77;
        }
        if (unshare(CLONE_NEWNET) < 0) {
                printf("test-helper-client: cannot create a network namespace: %s; skipping\n", strerror(errno));
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spawn_reuses_running_helper),
                cmocka_unit_test(test_bridge_and_tap),
                cmocka_unit_test(test_refusals_carry_the_reason),
                cmocka_unit_test(test_reconcile_removes_unkept),
                cmocka_unit_test(test_missing_helper),
                cmocka_unit_test(test_sigterm_removes_socket),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
