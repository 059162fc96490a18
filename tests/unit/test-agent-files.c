/* SPDX-License-Identifier: MIT */
/* File transfers through the real banger-agent: a tree with a symlink, a
 * hard link, a setuid file, an empty directory and a large file goes in as
 * a tar stream (GNU tar writes it) and comes back out (GNU tar reads it)
 * identical; the destination rules of cp -r; hostile archives (made with
 * the agent's own tar writer) are refused with nothing written outside the
 * destination. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include "agent-client.h"
#include "agent-tar.h"
#include "agent-test-util.h"
#include "error.h"
#include "macro.h"

#define T_SEC (30 * USEC_PER_SEC)

static char tmpdir[64];
static char sock_path[128];
static Process agent = { .pid = 0, .pidfd = -EBADF };

static int group_setup(void **state) {
        return test_agent_group_start("bg-files", tmpdir, sock_path, &agent) < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
        test_agent_group_stop(tmpdir, &agent);
        return 0;
}

static AgentClient *client(void) {
        AgentClient *c = NULL;
        assert_int_equal(agent_client_new(test_connect_unix(sock_path), &c), 0);
        assert_int_equal(agent_client_hello(c, T_SEC, NULL), 0);
        return c;
}

static char *path_in(const char *fmt, ...) _printf_(1, 2);
static char *path_in(const char *fmt, ...) {
        char rel[256], *p = NULL;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rel, sizeof(rel), fmt, ap);
        va_end(ap);
        assert_true(asprintf(&p, "%s/%s", tmpdir, rel) > 0);
        return p;
}

static void sh(const char *script) {
        char *argv[] = { "sh", "-ec", (char *) script, NULL };
        _cleanup_free_ char *out = NULL;
        int r = spawn_run_capture(argv, T_SEC, 65536, true, &out);
        if (r != 0)
                fail_msg("%s: exit %d: %s", script, r, out ? out : "");
}

/* Put: tar (run by us) writes into a pipe the agent client reads. */
static int put_with_tar(char *const tar_argv[], const char *dest, uint32_t flags) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        SpawnOptions o;
        spawn_options_init(&o);
        o.stdout_fd = p[1];
        Process tar;
        assert_int_equal(spawn_process(tar_argv, &o, &tar), 0);
        close(p[1]);
        _cleanup_(agent_client_freep) AgentClient *c = client();
        AgentFilesOptions f = { .kind = AGENT_STREAM_FILES_PUT, .flags = flags, .path = dest, .data_fd = p[0] };
        int r = agent_client_files(c, &f, T_SEC);
        close(p[0]);
        int status;
        assert_int_equal(process_wait(&tar, T_SEC, &status), 0);
        process_release(&tar);
        return r;
}

/* Get: the agent client writes into a pipe tar (run by us) extracts from. */
static int get_with_tar(const char *src, uint32_t flags, const char *into) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        char *argv[] = { "tar", "-xpf", "-", "--numeric-owner", "-C", (char *) into, NULL };
        SpawnOptions o;
        spawn_options_init(&o);
        o.stdin_fd = p[0];
        Process tar;
        assert_int_equal(spawn_process(argv, &o, &tar), 0);
        close(p[0]);
        _cleanup_(agent_client_freep) AgentClient *c = client();
        AgentFilesOptions f = { .kind = AGENT_STREAM_FILES_GET, .flags = flags, .path = src, .data_fd = p[1] };
        int r = agent_client_files(c, &f, T_SEC);
        close(p[1]);
        int status;
        assert_int_equal(process_wait(&tar, T_SEC, &status), 0);
        process_release(&tar);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return r;
}

/* find -printf of a tree, sorted, plus checksums of its files. */
static char *describe(const char *dir) {
        char script[512];
        snprintf(script, sizeof(script),
                 "cd '%s' && find . -printf '%%m %%U %%G %%s %%y %%p %%l %%n\\n' | sort && "
                 "find . -type f -exec sha256sum {} + | sort && find . -printf '%%p %%TY%%Tm%%Td%%TH%%TM%%TS\\n' "
                 "| grep -v '^\\. ' | sort",
                 dir);
        char *argv[] = { "sh", "-ec", script, NULL }, *out = NULL;
        assert_int_equal(spawn_run_capture(argv, T_SEC, 1 << 20, true, &out), 0);
        return out;
}

static void test_roundtrip(void **state) {
        _cleanup_free_ char *src = path_in("src"), *in = path_in("in"), *back = path_in("back");
        char script[1024];
        snprintf(script, sizeof(script),
                 "mkdir -p %1$s/tree/sub/deeper %1$s/tree/empty %2$s %3$s && cd %1$s/tree && "
                 "echo hello > sub/file && ln sub/file hardlink && ln -s sub/file symlink && "
                 "ln -s ../file sub/deeper/up && printf x > suid && chmod 4755 suid && chown 1234:5678 suid && "
                 "head -c 3000000 /dev/urandom > big && chmod 0640 big && mkfifo fifo && "
                 "mkdir -p a/$(printf 'long%%.0s' $(seq 40))/b && touch a/$(printf 'long%%.0s' $(seq 40))/b/f && "
                 "touch -d '2001-02-03 04:05:06.123456789' sub/file && chmod 0700 empty && "
                 "touch -d '1999-01-01' empty sub",
                 src, in, back);
        sh(script);
        char *tar_argv[] = { "tar", "--format=pax", "-C", src, "-cf", "-", "tree", NULL };
        assert_int_equal(put_with_tar(tar_argv, in, 0), 0);
        _cleanup_free_ char *want = NULL, *got_in = NULL, *got_back = NULL, *tree = path_in("src/tree"),
                            *in_tree = path_in("in/tree"), *back_tree = path_in("back/tree");
        want = describe(tree);
        got_in = describe(in_tree);
        assert_string_equal(got_in, want);
        /* And out again through the agent's own tar writer. */
        assert_int_equal(get_with_tar(in_tree, 0, back), 0);
        got_back = describe(back_tree);
        assert_string_equal(got_back, want);
}

static void test_destinations(void **state) {
        /* Into an existing directory; as a new name; a file replacing a file;
         * a directory's contents (flag); a directory never onto a file. */
        _cleanup_free_ char *d = path_in("dst"), *f = path_in("dst/file.txt"), *c = path_in("contents");
        char script[512];
        snprintf(script, sizeof(script), "mkdir -p %1$s/x && echo one > %1$s/x/one && echo old > %2$s", d, f);
        sh(script);
        _cleanup_free_ char *x = path_in("dst/x");
        char *t1[] = { "tar", "-C", d, "-cf", "-", "x", NULL };
        _cleanup_free_ char *renamed = path_in("dst/renamed");
        assert_int_equal(put_with_tar(t1, renamed, 0), 0);
        assert_int_equal(access(renamed, F_OK), 0);
        _cleanup_free_ char *one = path_in("dst/renamed/one");
        assert_int_equal(access(one, F_OK), 0);
        char *t2[] = { "tar", "-C", x, "-cf", "-", "one", NULL };
        assert_int_equal(put_with_tar(t2, f, 0), 0);
        _cleanup_free_ char *text = NULL;
        assert_int_equal(read_file_at(AT_FDCWD, f, 100, &text, NULL), 0);
        assert_string_equal(text, "one\n");
        char *t3[] = { "tar", "-C", x, "-cf", "-", ".", NULL };
        assert_int_equal(put_with_tar(t3, c, 0), 0);
        _cleanup_free_ char *cone = path_in("contents/one");
        assert_int_equal(access(cone, F_OK), 0);
        error_clear();
        assert_int_equal(put_with_tar(t1, f, 0), -EIO);
        assert_non_null(strstr(error_last_message(), "cannot copy a directory onto the file"));
}

/* A tar stream of the given entries written with the agent's own codec. */
static int hostile_archive(const TarEntry *e, size_t n) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        for (size_t i = 0; i < n; i++) {
                uint8_t *h = NULL;
                size_t len;
                assert_int_equal(tar_header_encode(&e[i], &h, &len), 0);
                assert_int_equal(loop_write(p[1], h, len), 0);
                free(h);
                static const uint8_t data[TAR_BLOCK] = "evil\n";
                if (e[i].size)
                        assert_int_equal(loop_write(p[1], data, TAR_BLOCK), 0);
        }
        static const uint8_t end[2 * TAR_BLOCK];
        assert_int_equal(loop_write(p[1], end, sizeof(end)), 0);
        close(p[1]);
        return p[0];
}

static void expect_refused(const TarEntry *e, size_t n, const char *dest) {
        int fd = hostile_archive(e, n);
        _cleanup_(agent_client_freep) AgentClient *c = client();
        AgentFilesOptions f = { .kind = AGENT_STREAM_FILES_PUT, .path = dest, .data_fd = fd };
        error_clear();
        assert_int_equal(agent_client_files(c, &f, T_SEC), -EIO);
        close(fd);
        assert_non_null(strstr(error_last_message(), "refused"));
}

static void test_hostile(void **state) {
        _cleanup_free_ char *dest = path_in("h/dest"), *outside = path_in("h/evil");
        char script[256];
        snprintf(script, sizeof(script), "mkdir -p %s", dest);
        sh(script);
        TarEntry dir = { .path = (char *) "t", .type = TAR_DIR, .mode = 0755 };
        TarEntry dotdot = { .path = (char *) "t/../../evil", .type = TAR_REG, .mode = 0644, .size = 5 };
        expect_refused((TarEntry[]){ dir, dotdot }, 2, dest);
        TarEntry abs = { .path = outside, .type = TAR_REG, .mode = 0644, .size = 5 };
        expect_refused(&abs, 1, dest);
        /* A symlink out of the tree, then a file "through" it. */
        TarEntry link = { .path = (char *) "t/l", .type = TAR_SYMLINK, .mode = 0777, .linkpath = (char *) "../.." };
        TarEntry through = { .path = (char *) "t/l/evil", .type = TAR_REG, .mode = 0644, .size = 5 };
        expect_refused((TarEntry[]){ dir, link, through }, 3, dest);
        TarEntry abslink = { .path = (char *) "t/a", .type = TAR_SYMLINK, .mode = 0777, .linkpath = outside };
        expect_refused((TarEntry[]){ dir, abslink }, 2, dest);
        TarEntry hard = { .path = (char *) "t/h", .type = TAR_LINK, .mode = 0644, .linkpath = (char *) "../evil" };
        expect_refused((TarEntry[]){ dir, hard }, 2, dest);
        TarEntry second = { .path = (char *) "other", .type = TAR_REG, .mode = 0644, .size = 5 };
        expect_refused((TarEntry[]){ dir, second }, 2, dest);
        /* Nothing reached the outside. */
        assert_int_equal(access(outside, F_OK), -1);
        _cleanup_free_ char *outside2 = path_in("evil");
        assert_int_equal(access(outside2, F_OK), -1);
        /* A symlink already in the destination is never written through. */
        snprintf(script, sizeof(script), "mkdir -p %1$s/t && ln -s %2$s %1$s/t/l", dest, tmpdir);
        sh(script);
        TarEntry file = { .path = (char *) "t/l/evil", .type = TAR_REG, .mode = 0644, .size = 5 };
        int fd = hostile_archive((TarEntry[]){ dir, file }, 2);
        _cleanup_(agent_client_freep) AgentClient *c = client();
        AgentFilesOptions f = { .kind = AGENT_STREAM_FILES_PUT, .path = dest, .data_fd = fd };
        assert_int_equal(agent_client_files(c, &f, T_SEC), -EIO);
        close(fd);
        assert_int_equal(access(outside2, F_OK), -1);
}

static void test_get_missing(void **state) {
        _cleanup_(agent_client_freep) AgentClient *c = client();
        AgentFilesOptions f = { .kind = AGENT_STREAM_FILES_GET, .path = "/nonexistent/banger", .data_fd = -1 };
        error_clear();
        assert_int_equal(agent_client_files(c, &f, T_SEC), -EIO);
        assert_non_null(strstr(error_last_message(), "/nonexistent"));
}

int main(void) {
        if (geteuid() != 0) {
                fprintf(stderr, "needs root: ownership is part of what a copy keeps\n");
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_destinations),
                cmocka_unit_test(test_hostile),
                cmocka_unit_test(test_get_missing),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
