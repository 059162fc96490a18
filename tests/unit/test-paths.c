/* SPDX-License-Identifier: MIT */
/* Runtime-directory hardening. The /tmp fallback is a fixed path, so these
 * tests run in a private mount namespace with a fresh tmpfs on /tmp: they
 * exercise the real path without touching the host's /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "macro.h"
#include "paths.h"

static char fallback[64];

static int setup_ns(void **state) {
        if (geteuid() != 0) {
                printf("SKIP: needs root for a private mount namespace\n");
                exit(77);
        }
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777") < 0) {
                printf("SKIP: cannot make a private /tmp: %m\n");
                exit(77);
        }
        snprintf(fallback, sizeof(fallback), "/tmp/banger-runtime-%u", (unsigned) getuid());
        return 0;
}

static void fresh(BangerPaths *p) {
        unsetenv("XDG_RUNTIME_DIR");
        setenv("HOME", "/tmp/home", 1);
        assert_int_equal(paths_resolve(false, p), 0);
        assert_true(p->runtime_is_fallback);
        assert_string_equal(p->runtime_dir, fallback);
}

static void cleanup_fallback(void) {
        (void) unlink(fallback);
        (void) rmdir(fallback);
}

static void test_resolve(void **state) {
        setenv("HOME", "/home/u", 1);
        setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
        unsetenv("XDG_CONFIG_HOME");
        setenv("XDG_STATE_HOME", "relative/ignored", 1);
        setenv("XDG_CACHE_HOME", "/c", 1);
        BangerPaths p;
        assert_int_equal(paths_resolve(false, &p), 0);
        assert_string_equal(p.config_dir, "/home/u/.config/banger");
        assert_string_equal(p.state_dir, "/home/u/.local/state/banger");
        assert_string_equal(p.cache_dir, "/c/banger");
        assert_string_equal(p.runtime_dir, "/run/user/1000/banger");
        assert_string_equal(p.socket_path, "/run/user/1000/banger/bangerd.sock");
        assert_false(p.runtime_is_fallback);
        paths_done(&p);
        assert_int_equal(paths_resolve(true, &p), 0);
        assert_string_equal(p.config_dir, "/etc/banger");
        assert_string_equal(p.state_dir, "/var/lib/banger");
        assert_string_equal(p.cache_dir, "/var/cache/banger");
        assert_string_equal(p.runtime_dir, "/run/banger");
        paths_done(&p);
        unsetenv("XDG_STATE_HOME");
        unsetenv("XDG_CACHE_HOME");
        unsetenv("HOME");
        unsetenv("XDG_CONFIG_HOME");
        assert_int_equal(paths_resolve(false, &p), -EINVAL);
}

static void test_xdg_runtime_dir_created_and_tightened(void **state) {
        assert_int_equal(mkdir("/tmp/xdg", 0700), 0);
        setenv("XDG_RUNTIME_DIR", "/tmp/xdg", 1);
        setenv("HOME", "/tmp/home", 1);
        BangerPaths p;
        assert_int_equal(paths_resolve(false, &p), 0);
        int fd = -EBADF;
        mode_t old = umask(0); /* even with a permissive umask it is born 0700 */
        assert_int_equal(paths_ensure_runtime_dir(&p, &fd), 0);
        umask(old);
        struct stat st;
        assert_int_equal(stat("/tmp/xdg/banger", &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        close(fd);

        /* An existing 0755 runtime dir is re-tightened to 0700. */
        assert_int_equal(chmod("/tmp/xdg/banger", 0755), 0);
        assert_int_equal(paths_ensure_runtime_dir(&p, &fd), 0);
        assert_int_equal(stat("/tmp/xdg/banger", &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        close(fd);

        /* A symlink in place of the runtime dir is refused. */
        assert_int_equal(rmdir("/tmp/xdg/banger"), 0);
        assert_int_equal(mkdir("/tmp/elsewhere", 0700), 0);
        assert_int_equal(symlink("/tmp/elsewhere", "/tmp/xdg/banger"), 0);
        error_clear();
        assert_int_equal(paths_ensure_runtime_dir(&p, &fd), -EPERM);
        assert_non_null(strstr(error_last_message(), "symlink"));
        unlink("/tmp/xdg/banger");
        rmdir("/tmp/elsewhere");
        rmdir("/tmp/xdg");
        paths_done(&p);
}

static void test_fallback_created_0700(void **state) {
        BangerPaths p;
        fresh(&p);
        int fd = -EBADF;
        mode_t old = umask(0);
        assert_int_equal(paths_ensure_runtime_dir(&p, &fd), 0);
        umask(old);
        struct stat st;
        assert_int_equal(lstat(fallback, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(st.st_uid, getuid());
        close(fd);
        /* Using it again is fine. */
        assert_int_equal(paths_ensure_runtime_dir(&p, &fd), 0);
        close(fd);
        cleanup_fallback();
        paths_done(&p);
}

static void test_fallback_symlink_refused(void **state) {
        BangerPaths p;
        fresh(&p);
        assert_int_equal(mkdir("/tmp/attacker", 0700), 0);
        assert_int_equal(symlink("/tmp/attacker", fallback), 0);
        int fd = -EBADF;
        error_clear();
        assert_int_equal(paths_ensure_runtime_dir(&p, &fd), -EPERM);
        assert_non_null(strstr(error_last_message(), fallback));
        assert_non_null(strstr(error_last_message(), "symlink"));
        /* Nothing was placed in the target. */
        assert_int_equal(rmdir("/tmp/attacker"), 0);
        cleanup_fallback();
        paths_done(&p);
}

static void test_fallback_foreign_owner_refused(void **state) {
        BangerPaths p;
        fresh(&p);
        assert_int_equal(mkdir(fallback, 0700), 0);
        assert_int_equal(chown(fallback, 65534, 65534), 0);
        int fd = -EBADF;
        error_clear();
        assert_int_equal(paths_ensure_runtime_dir(&p, &fd), -EPERM);
        assert_non_null(strstr(error_last_message(), "owned by uid 65534"));
        /* Never adopted: still the attacker's. */
        struct stat st;
        assert_int_equal(stat(fallback, &st), 0);
        assert_int_equal(st.st_uid, 65534);
        cleanup_fallback();
        paths_done(&p);
}

static void test_fallback_loose_mode_refused(void **state) {
        BangerPaths p;
        fresh(&p);
        assert_int_equal(mkdir(fallback, 0700), 0);
        assert_int_equal(chmod(fallback, 0755), 0);
        int fd = -EBADF;
        error_clear();
        assert_int_equal(paths_ensure_runtime_dir(&p, &fd), -EPERM);
        assert_non_null(strstr(error_last_message(), "0755"));
        cleanup_fallback();
        paths_done(&p);
}

static void test_fallback_file_refused(void **state) {
        BangerPaths p;
        fresh(&p);
        int f = open(fallback, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(f >= 0);
        close(f);
        int fd = -EBADF;
        error_clear();
        assert_int_equal(paths_ensure_runtime_dir(&p, &fd), -EPERM);
        assert_non_null(strstr(error_last_message(), "not a directory"));
        cleanup_fallback();
        paths_done(&p);
}

static void test_private_dir(void **state) {
        int fd = -EBADF;
        assert_int_equal(paths_ensure_private_dir("/tmp/a/b/state/banger", &fd), 0);
        close(fd);
        struct stat st;
        assert_int_equal(stat("/tmp/a/b/state/banger", &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(chmod("/tmp/a/b/state/banger", 0777), 0);
        assert_int_equal(paths_ensure_private_dir("/tmp/a/b/state/banger", &fd), 0);
        close(fd);
        assert_int_equal(stat("/tmp/a/b/state/banger", &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_resolve),
                cmocka_unit_test(test_xdg_runtime_dir_created_and_tightened),
                cmocka_unit_test(test_fallback_created_0700),
                cmocka_unit_test(test_fallback_symlink_refused),
                cmocka_unit_test(test_fallback_foreign_owner_refused),
                cmocka_unit_test(test_fallback_loose_mode_refused),
                cmocka_unit_test(test_fallback_file_refused),
                cmocka_unit_test(test_private_dir),
        };
        return cmocka_run_group_tests(tests, setup_ns, NULL);
}
