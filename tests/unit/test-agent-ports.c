/* SPDX-License-Identifier: MIT */
/* The agent's listening-port listing (agent_ports_json) against a made-up
 * /proc: rows parsed and matched to their processes, and a port that starts
 * listening while the listing runs named with its process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "agent-info.h"
#include "agent-test-util.h"
#include "fs-util.h"
#include "macro.h"

#define TCP_HEADER "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
/* 127.0.0.1:8080 LISTEN, inode 4242; 0.0.0.0:22 ESTABLISHED (not listed). */
#define TCP_ROWS                                                                                              \
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n" \
        "   1: 00000000:0016 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n"

static char root[64];

static void put(const char *rel, const char *text) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, text, strlen(text)), 0);
        close(fd);
}

static void mkdirs(const char *rel) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        assert_int_equal(mkdir(path, 0755), 0);
}

/* A process 77 named srv holding socket inode 4242 as its fd 3. */
static void make_owner(void) {
        mkdirs("77");
        mkdirs("77/fd");
        put("77/comm", "srv\n");
        char link[256];
        snprintf(link, sizeof(link), "%s/77/fd/3", root);
        assert_int_equal(symlink("socket:[4242]", link), 0);
}

static int setup(void **state) {
        snprintf(root, sizeof(root), "/tmp/banger-ports-XXXXXX");
        if (!mkdtemp(root))
                return -1;
        mkdirs("net");
        return 0;
}

static int teardown(void **state) {
        char *argv[] = { "rm", "-rf", "--", root, NULL };
        return spawn_run_capture(argv, 10 * USEC_PER_SEC, 0, false, NULL) == 0 ? 0 : -1;
}

/* The one listening row, as JSON: proto, address, port, pid, process. */
static void assert_one_port(const char *text, int pid, const char *process) {
        json_t *j = json_loads(text, 0, NULL);
        assert_non_null(j);
        json_t *ports = json_object_get(j, "ports");
        assert_int_equal(json_array_size(ports), 1);
        json_t *p = json_array_get(ports, 0);
        assert_string_equal(json_string_value(json_object_get(p, "proto")), "tcp");
        assert_string_equal(json_string_value(json_object_get(p, "address")), "127.0.0.1");
        assert_int_equal(json_integer_value(json_object_get(p, "port")), 8080);
        assert_int_equal(json_integer_value(json_object_get(p, "pid")), pid);
        assert_string_equal(json_string_value(json_object_get(p, "process")), process);
        json_decref(j);
}

static void test_listening_rows_with_owner(void **state) {
        put("net/tcp", TCP_HEADER TCP_ROWS);
        make_owner();
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        assert_int_equal(agent_ports_json(root, &text, &len), 0);
        assert_one_port(text, 77, "srv");
}

/* The socket table is a FIFO this thread writes: the process holding the
 * socket appears only while the table is being read, as a server that
 * starts listening during a listing does. */
static void *write_table_then_owner(void *arg) {
        const char *fifo = arg;
        int fd = open(fifo, O_WRONLY | O_CLOEXEC); /* waits for the listing to open it */
        if (fd < 0)
                return (void *) (intptr_t) -errno;
        int r = loop_write(fd, TCP_HEADER TCP_ROWS, strlen(TCP_HEADER TCP_ROWS));
        make_owner();
        close(fd);
        return (void *) (intptr_t) r;
}

static void test_port_listed_with_the_owner_that_appeared_meanwhile(void **state) {
        char fifo[256];
        snprintf(fifo, sizeof(fifo), "%s/net/tcp", root);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, write_table_then_owner, fifo), 0);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = agent_ports_json(root, &text, &len);
        void *tr = NULL;
        assert_int_equal(pthread_join(t, &tr), 0);
        assert_int_equal((intptr_t) tr, 0);
        assert_int_equal(r, 0);
        assert_one_port(text, 77, "srv");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_listening_rows_with_owner, setup, teardown),
                cmocka_unit_test_setup_teardown(test_port_listed_with_the_owner_that_appeared_meanwhile, setup,
                                                teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
