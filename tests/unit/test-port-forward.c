/* SPDX-License-Identifier: MIT */
/* Port forwards: the -p parser (vm create -p, vm port add/rm) and the
 * forwards' rows in a real SQLite store. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "agent-forward.h"
#include "error.h"
#include "port-spec.h"
#include "store-test-util.h"

static void expect_spec(const char *text, const char *ip, unsigned host, unsigned guest) {
        PortSpec p;
        int r = port_spec_parse(text, &p);
        if (r < 0)
                fail_msg("%s: %s", text, error_last_message());
        assert_string_equal(p.host_ip, ip);
        assert_int_equal(p.host_port, host);
        assert_int_equal(p.guest_port, guest);
        assert_string_equal(p.proto, "tcp");
}

static void expect_bad(const char *text, int err, const char *says) {
        PortSpec p;
        error_clear();
        assert_int_equal(port_spec_parse(text, &p), err);
        if (!strstr(error_last_message(), says))
                fail_msg("%s: \"%s\" does not say \"%s\"", text, error_last_message(), says);
}

static void test_parse(void **state) {
        expect_spec("8080:80", "127.0.0.1", 8080, 80); /* loopback unless asked */
        expect_spec("8080:80/tcp", "127.0.0.1", 8080, 80);
        expect_spec("0.0.0.0:8080:80", "0.0.0.0", 8080, 80);
        expect_spec("10.1.2.3:1:65535", "10.1.2.3", 1, 65535);
        expect_spec("[::1]:8443:443/tcp", "::1", 8443, 443);
        expect_spec("[0:0::1]:8443:443", "::1", 8443, 443); /* canonical text */

        expect_bad("53:53/udp", -EPROTONOSUPPORT, "only tcp");
        expect_bad("53:53/sctp", -EINVAL, "unknown protocol");
        expect_bad("8080", -EINVAL, "HOST_PORT:GUEST_PORT");
        expect_bad("8080:", -EINVAL, "1 to 65535");
        expect_bad(":80", -EINVAL, "1 to 65535");
        expect_bad("0:80", -EINVAL, "1 to 65535");
        expect_bad("8080:65536", -EINVAL, "1 to 65535");
        expect_bad("8080:+80", -EINVAL, "1 to 65535");
        expect_bad("8080:80x", -EINVAL, "1 to 65535");
        expect_bad("localhost:8080:80", -EINVAL, "not an IP address");
        expect_bad("1.2.3:8080:80", -EINVAL, "not an IP address");
        expect_bad("::1:8080:80", -EINVAL, "not an IP address");
        expect_bad("[::1]8080:80", -EINVAL, "HOST_PORT:GUEST_PORT");
        expect_bad("[::1:8080:80", -EINVAL, "HOST_PORT:GUEST_PORT");
        expect_bad("1.2.3.4:5:6:7", -EINVAL, "1 to 65535");
        expect_bad("80/tcp:80", -EINVAL, "HOST_PORT:GUEST_PORT");
}

static void test_parse_host(void **state) {
        PortSpec p;
        assert_int_equal(port_spec_parse_host("8080", &p), 0);
        assert_string_equal(p.host_ip, "127.0.0.1");
        assert_int_equal(p.host_port, 8080);
        assert_int_equal(port_spec_parse_host("0.0.0.0:9000/tcp", &p), 0);
        assert_string_equal(p.host_ip, "0.0.0.0");
        assert_int_equal(p.host_port, 9000);
        assert_int_equal(port_spec_parse_host("[::1]:22", &p), 0);
        assert_string_equal(p.host_ip, "::1");
        assert_int_equal(port_spec_parse_host("9000/udp", &p), -EPROTONOSUPPORT);
        assert_int_equal(port_spec_parse_host("9000:80", &p), -EINVAL);
        assert_int_equal(port_spec_parse_host("x:80", &p), -EINVAL);
        assert_int_equal(port_spec_parse_host("", &p), -EINVAL);
        assert_int_equal(port_spec_parse_host("[::1]", &p), -EINVAL);

        char buf[64];
        assert_int_equal(port_spec_from_fields("::1", 8443, 443, NULL, &p), 0);
        port_spec_host_format(&p, buf, sizeof(buf));
        assert_string_equal(buf, "[::1]:8443");
        assert_int_equal(port_spec_from_fields(NULL, 80, 8080, "tcp", &p), 0);
        port_spec_host_format(&p, buf, sizeof(buf));
        assert_string_equal(buf, "127.0.0.1:80");
        assert_int_equal(port_spec_from_fields("127.0.0.1", 0, 80, NULL, &p), -EINVAL);
        assert_int_equal(port_spec_from_fields("127.0.0.1", 80, 80, "udp", &p), -EPROTONOSUPPORT);
}

#define VM_ONE "ffffffffffff0001"
#define VM_TWO "ffffffffffff0002"

static void add(Store *s, const char *vm, const char *ip, unsigned host, unsigned guest, int expect) {
        StoreForward f = {
                .vm_id = (char *) vm, .proto = "tcp", .host_ip = (char *) ip, .host_port = host, .guest_port = guest
        };
        assert_int_equal(store_forward_add(s, &f), expect);
        if (expect == 0)
                assert_true(f.id > 0);
}

static void test_store(void **state) {
        _cleanup_free_ char *p = db_path("forwards.db");
        Store *s = NULL;
        StoreForward *l = NULL;
        size_t n = 0;

        assert_int_equal(store_open(p, 0, &s), 0);
        make_image(s, IMAGE1, "img", NULL);
        make_vm(s, VM_ONE, "one", IMAGE1);
        make_vm(s, VM_TWO, "two", IMAGE1);

        add(s, VM_ONE, "127.0.0.1", 8080, 80, 0);
        add(s, VM_ONE, "0.0.0.0", 9000, 9000, 0);
        /* A host address and port belong to one forward, whichever VM. */
        add(s, VM_TWO, "127.0.0.1", 8080, 81, -EEXIST);
        assert_non_null(strstr(error_last_message(), "already forwarded by vm one"));
        add(s, VM_ONE, "127.0.0.1", 8080, 82, -EEXIST);
        assert_int_equal(store_forward_check_free(s, "tcp", "127.0.0.1", 8080), -EEXIST);
        assert_non_null(strstr(error_last_message(), "by vm one"));
        assert_int_equal(store_forward_check_free(s, "tcp", "127.0.0.1", 8081), 0);
        add(s, VM_TWO, "127.0.0.2", 8080, 80, 0); /* another address is another socket */
        add(s, "ffffffffffff0009", "127.0.0.1", 7000, 80, -ENOENT);
        add(s, VM_TWO, "127.0.0.1", 70000, 80, -EINVAL); /* CHECK */

        assert_int_equal(store_forward_list_vm(s, VM_ONE, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(l[0].host_ip, "0.0.0.0");
        assert_int_equal(l[1].host_port, 8080);
        assert_int_equal(l[1].guest_port, 80);
        assert_string_equal(l[1].proto, "tcp");
        store_forward_array_free(l, n);

        assert_int_equal(store_forward_remove(s, VM_TWO, "tcp", "127.0.0.1", 8080), -ENOENT); /* not its own */
        assert_int_equal(store_forward_remove(s, VM_ONE, "tcp", "0.0.0.0", 9000), 0);
        assert_int_equal(store_forward_remove(s, VM_ONE, "tcp", "0.0.0.0", 9000), -ENOENT);

        /* A VM's forwards go with it. */
        assert_int_equal(store_vm_delete(s, VM_ONE), 0);
        add(s, VM_TWO, "127.0.0.1", 8080, 80, 0);
        assert_int_equal(store_forward_list_vm(s, VM_TWO, &l, &n), 0);
        assert_int_equal(n, 2);
        store_forward_array_free(l, n);
        store_close(s);
}

/* The listening sockets the daemon binds: the errors its sentences map. */
static void test_listen(void **state) {
        int a = agent_forward_listen("127.0.0.1", 0);
        assert_true(a >= 0);
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        assert_int_equal(getsockname(a, (struct sockaddr *) &sa, &len), 0);
        uint16_t port = ntohs(sa.sin_port);
        assert_int_equal(agent_forward_listen("127.0.0.1", port), -EADDRINUSE);
        assert_int_equal(agent_forward_listen("localhost", port), -EINVAL);
        assert_int_equal(agent_forward_listen("192.0.2.1", port), -EADDRNOTAVAIL); /* TEST-NET-1: not ours */
        int b = agent_forward_listen("::1", port);  /* another address is another socket (v6 only) */
        assert_true(b >= 0 || b == -EADDRNOTAVAIL); /* no IPv6 loopback here */
        if (b >= 0)
                close(b);
        close(a);
}

/* A daemon that is not root cannot have a port below
 * ip_unprivileged_port_start: -EACCES, which the daemon turns into its
 * sentence. Checked as nobody in a child. */
static void test_privileged_port(void **state) {
        _cleanup_free_ char *start = NULL;
        if (geteuid() != 0 ||
            read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_unprivileged_port_start", 64, &start, NULL) < 0 ||
            atoi(start) <= 80)
                skip();
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(2);
                int fd = agent_forward_listen("127.0.0.1", 80);
                _exit(fd == -EACCES ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_parse_host),
                cmocka_unit_test(test_listen),
                cmocka_unit_test(test_privileged_port),
                cmocka_unit_test_setup_teardown(test_store, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
