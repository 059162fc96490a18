/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "path-beneath.h"
#include "spawn.h"

typedef int (*OpenFn)(int dirfd, const char *relpath, int flags, mode_t mode);
typedef int (*OpenExFn)(int dirfd, const char *relpath, int flags, mode_t mode, unsigned how);

/* root/ (the dir fd) holds a/b/file, a/up -> .., a/abs -> /etc, a/lnk ->
 * b/file, a/dirlnk -> b; outside/ (a sibling) holds secret. */
typedef struct Tree {
        char top[64];
        int rootfd;
} Tree;

static int tree_setup(void **state) {
        Tree *t = calloc(1, sizeof(Tree));
        snprintf(t->top, sizeof(t->top), "/tmp/banger-pb-XXXXXX");
        assert_non_null(mkdtemp(t->top));
        _cleanup_close_ int top = open_dir_nofollow(AT_FDCWD, t->top);
        assert_true(top >= 0);
        assert_int_equal(mkdirat(top, "root", 0700), 0);
        assert_int_equal(mkdirat(top, "outside", 0700), 0);
        _cleanup_close_ int out = open_dir_nofollow(top, "outside");
        assert_int_equal(write_file_atomic_at(out, "secret", "s", 1, 0600), 0);
        t->rootfd = open_dir_nofollow(top, "root");
        assert_int_equal(mkdirat(t->rootfd, "a", 0700), 0);
        assert_int_equal(mkdirat(t->rootfd, "a/b", 0700), 0);
        _cleanup_close_ int b = open_dir_nofollow(t->rootfd, "a/b");
        assert_int_equal(write_file_atomic_at(b, "file", "data", 4, 0600), 0);
        assert_int_equal(symlinkat("..", t->rootfd, "a/up"), 0);
        assert_int_equal(symlinkat("/etc", t->rootfd, "a/abs"), 0);
        assert_int_equal(symlinkat("b/file", t->rootfd, "a/lnk"), 0);
        assert_int_equal(symlinkat("b", t->rootfd, "a/dirlnk"), 0);
        assert_int_equal(symlinkat("../../outside/secret", t->rootfd, "a/escape"), 0);
        *state = t;
        return 0;
}

static int tree_teardown(void **state) {
        Tree *t = *state;
        safe_close(t->rootfd);
        char *argv[] = { "rm", "-rf", "--", t->top, NULL };
        assert_int_equal(spawn_run_capture(argv, 30 * USEC_PER_SEC, 0, false, NULL), 0);
        free(t);
        return 0;
}

static void check_refusals(Tree *t, OpenFn fn) {
        /* Allowed. */
        _cleanup_close_ int ok = fn(t->rootfd, "a/b/file", O_RDONLY, 0);
        assert_true(ok >= 0);
        char buf[8] = {};
        assert_int_equal(read(ok, buf, sizeof(buf)), 4);
        assert_string_equal(buf, "data");
        /* ".." escapes, in front, in the middle, alone. */
        assert_int_equal(fn(t->rootfd, "../outside/secret", O_RDONLY, 0), -EXDEV);
        assert_int_equal(fn(t->rootfd, "a/../../outside/secret", O_RDONLY, 0), -EXDEV);
        assert_int_equal(fn(t->rootfd, "..", O_RDONLY, 0), -EXDEV);
        /* Absolute paths. */
        assert_int_equal(fn(t->rootfd, "/etc/passwd", O_RDONLY, 0), -EXDEV);
        /* A symlink in the middle (pointing inside, up, or out). */
        assert_int_equal(fn(t->rootfd, "a/dirlnk/file", O_RDONLY, 0), -ELOOP);
        assert_int_equal(fn(t->rootfd, "a/up/a/b/file", O_RDONLY, 0), -ELOOP);
        assert_int_equal(fn(t->rootfd, "a/abs/passwd", O_RDONLY, 0), -ELOOP);
        /* A symlink at the end, also with O_PATH and O_CREAT. */
        assert_int_equal(fn(t->rootfd, "a/lnk", O_RDONLY, 0), -ELOOP);
        assert_int_equal(fn(t->rootfd, "a/escape", O_RDONLY, 0), -ELOOP);
        assert_int_equal(fn(t->rootfd, "a/escape", O_PATH, 0), -ELOOP);
        assert_int_equal(fn(t->rootfd, "a/escape", O_WRONLY | O_CREAT, 0600), -ELOOP);
        /* Malformed. */
        assert_int_equal(fn(t->rootfd, "", O_RDONLY, 0), -EINVAL);
        assert_int_equal(fn(t->rootfd, "a//b/file", O_RDONLY, 0), -EINVAL);
        assert_int_equal(fn(t->rootfd, "a/./b/file", O_RDONLY, 0), -EINVAL);
        assert_int_equal(fn(t->rootfd, "a/b/", O_RDONLY, 0), -EINVAL);
        /* The secret is untouched. */
        struct stat st;
        char p[128];
        snprintf(p, sizeof(p), "%s/outside/secret", t->top);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_size, 1);
}

static void test_openat2(void **state) {
        check_refusals(*state, open_beneath);
}

static void test_walk_fallback(void **state) {
        check_refusals(*state, open_beneath_walk);
}

static void test_create_and_unlink(void **state) {
        Tree *t = *state;
        umask(022);
        _cleanup_close_ int fd = open_beneath(t->rootfd, "a/b/new", O_WRONLY | O_CREAT | O_EXCL, 0640);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0640);
        assert_int_equal(open_beneath(t->rootfd, "a/b/new", O_WRONLY | O_CREAT | O_EXCL, 0600), -EEXIST);
        /* unlink through a symlinked directory is refused, the file stays. */
        assert_int_equal(unlink_beneath(t->rootfd, "a/dirlnk/new", 0), -ELOOP);
        assert_int_equal(fstatat(t->rootfd, "a/b/new", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(unlink_beneath(t->rootfd, "a/b/new", 0), 0);
        assert_int_equal(fstatat(t->rootfd, "a/b/new", &st, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(unlink_beneath(t->rootfd, "../outside/secret", 0), -EXDEV);
        /* unlinking a symlink itself (last component) is fine and does not touch its target */
        assert_int_equal(unlink_beneath(t->rootfd, "a/escape", 0), 0);
        char p[128];
        snprintf(p, sizeof(p), "%s/outside/secret", t->top);
        assert_int_equal(stat(p, &st), 0);
}

/* BENEATH_NO_XDEV: a mount inside the tree (where an owner could put a FUSE
 * filesystem) is never crossed, on the way or at the end, by either path. */
static void test_no_xdev(void **state) {
        Tree *t = *state;
        /* A private mount namespace: nothing mounted here is seen outside. */
        if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
                skip();
                return;
        }
        char m[128], file[128], bound[128], top[128];
        snprintf(top, sizeof(top), "%s/root", t->top);
        /* t->rootfd is on the mount as the old namespace has it. */
        _cleanup_close_ int root = open_dir_nofollow(AT_FDCWD, top);
        assert_true(root >= 0);
        snprintf(m, sizeof(m), "%s/root/m", t->top);
        snprintf(file, sizeof(file), "%s/root/a/b/file", t->top);
        snprintf(bound, sizeof(bound), "%s/root/a/b/bound", t->top);
        assert_int_equal(mkdir(m, 0700), 0);
        assert_int_equal(mount("bgtest", m, "tmpfs", 0, "mode=0700"), 0);
        _cleanup_close_ int mfd = open_dir_nofollow(root, "m");
        assert_int_equal(write_file_atomic_at(mfd, "inner", "in", 2, 0600), 0);
        _cleanup_close_ int b = open_dir_nofollow(root, "a/b");
        assert_int_equal(write_file_atomic_at(b, "bound", "", 0, 0600), 0);
        assert_int_equal(mount(file, bound, NULL, MS_BIND, NULL), 0);

        OpenExFn fns[] = { open_beneath_ex, open_beneath_walk_ex };
        for (size_t i = 0; i < ELEMENTSOF(fns); i++) {
                assert_int_equal(fns[i](root, "m/inner", O_RDONLY, 0, BENEATH_NO_XDEV), -EXDEV);
                assert_int_equal(fns[i](root, "m/inner", O_PATH, 0, BENEATH_NO_XDEV), -EXDEV);
                assert_int_equal(fns[i](root, "m", O_PATH | O_DIRECTORY, 0, BENEATH_NO_XDEV), -EXDEV);
                assert_int_equal(fns[i](root, "a/b/bound", O_RDONLY, 0, BENEATH_NO_XDEV), -EXDEV);
                assert_int_equal(fns[i](root, "m/new", O_WRONLY | O_CREAT, 0600, BENEATH_NO_XDEV), -EXDEV);
                /* Without the flag the same paths open: the flag is what refuses. */
                _cleanup_close_ int in = fns[i](root, "m/inner", O_RDONLY, 0, 0);
                assert_true(in >= 0);
                /* On the tree's own mount everything works as before. */
                _cleanup_close_ int ok = fns[i](root, "a/b/file", O_RDONLY, 0, BENEATH_NO_XDEV);
                assert_true(ok >= 0);
                char buf[8] = {};
                assert_int_equal(read(ok, buf, sizeof(buf)), 4);
                assert_int_equal(fns[i](root, "a/lnk", O_RDONLY, 0, BENEATH_NO_XDEV), -ELOOP);
                _cleanup_close_ int made = fns[i](root, "a/b/made", O_WRONLY | O_CREAT, 0600, BENEATH_NO_XDEV);
                assert_true(made >= 0);
                _cleanup_close_ int again = fns[i](root, "a/b/made", O_WRONLY | O_CREAT, 0600, BENEATH_NO_XDEV);
                assert_true(again >= 0);
                assert_int_equal(fns[i](root, "a/b/made", O_WRONLY | O_CREAT | O_EXCL, 0600, BENEATH_NO_XDEV), -EEXIST);
                assert_int_equal(unlinkat(b, "made", 0), 0);
        }
        mfd = safe_close(mfd);
        assert_int_equal(umount(bound), 0);
        assert_int_equal(umount(m), 0);
}

static void test_is_valid(void **state) {
        assert_true(path_beneath_is_valid("a"));
        assert_true(path_beneath_is_valid("a/b.img"));
        assert_true(path_beneath_is_valid("..a/b.."));
        assert_false(path_beneath_is_valid("/a"));
        assert_false(path_beneath_is_valid("a/"));
        assert_false(path_beneath_is_valid("a/../b"));
        assert_false(path_beneath_is_valid("."));
        assert_false(path_beneath_is_valid(NULL));
        char longc[300];
        memset(longc, 'x', 256);
        longc[256] = 0;
        assert_false(path_beneath_is_valid(longc));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_openat2, tree_setup, tree_teardown),
                cmocka_unit_test_setup_teardown(test_walk_fallback, tree_setup, tree_teardown),
                cmocka_unit_test_setup_teardown(test_create_and_unlink, tree_setup, tree_teardown),
                cmocka_unit_test_setup_teardown(test_no_xdev, tree_setup, tree_teardown),
                cmocka_unit_test(test_is_valid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
