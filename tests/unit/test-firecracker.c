/* SPDX-License-Identifier: MIT */
/* Firecracker driver pieces that need no Firecracker: version parsing,
 * reading API replies, argv (golden files), socket-path limits, PID verification against live
 * and reused pids, and the jailer chroot preparation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "firecracker-api.h"
#include "firecracker.h"
#include "fs-util.h"
#include "spawn.h"
#include "string-util.h"

static void test_parse_version(void **state) {
        FcVersion v;
        assert_int_equal(
                fc_parse_version("Firecracker v1.7.0\n\nSupported snapshot data format versions: v1.0.0\n", &v), 0);
        assert_true(v.major == 1 && v.minor == 7 && v.patch == 0);
        assert_int_equal(fc_version_check(&v), 0);

        assert_int_equal(fc_parse_version("Firecracker v1.10.2-dev\n", &v), 0);
        assert_true(v.major == 1 && v.minor == 10 && v.patch == 2);
        assert_int_equal(fc_version_check(&v), 0);

        assert_int_equal(fc_parse_version("Firecracker v1.5.0", &v), 0);
        assert_int_equal(fc_version_check(&v), 0);
        assert_int_equal(fc_parse_version("Firecracker v2.0.0\n", &v), 0);
        assert_int_equal(fc_version_check(&v), 0);

        error_clear();
        assert_int_equal(fc_parse_version("Firecracker v1.4.1\n", &v), 0);
        assert_int_equal(fc_version_check(&v), -EPROTONOSUPPORT);
        assert_non_null(strstr(error_last_message(), "1.4.1 is too old"));
        assert_non_null(strstr(error_last_message(), "1.5.0"));
        assert_int_equal(fc_parse_version("Firecracker v0.25.2\n", &v), 0);
        assert_int_equal(fc_version_check(&v), -EPROTONOSUPPORT);

        assert_int_equal(fc_parse_version("v1.7.0", &v), -EINVAL);
        assert_int_equal(fc_parse_version("Firecracker v1.7", &v), -EINVAL);
        assert_int_equal(fc_parse_version("Firecracker v1.x.0", &v), -EINVAL);
        assert_int_equal(fc_parse_version("Firecracker v1.7.0x", &v), -EINVAL);
        assert_int_equal(fc_parse_version("Firecracker v99999999.1.1", &v), -EINVAL);
        assert_int_equal(fc_parse_version("", &v), -EINVAL);
        assert_int_equal(fc_parse_version(NULL, &v), -EINVAL);
}

static char *argv_join(char **argv) {
        size_t len = 1;
        for (char **a = argv; *a; a++)
                len += strlen(*a) + 1;
        char *s = calloc(1, len);
        assert_non_null(s);
        for (char **a = argv; *a; a++) {
                strcat(s, *a);
                strcat(s, "\n");
        }
        return s;
}

static void assert_golden(const char *name, const char *actual) {
        _cleanup_free_ char *path = path_join(TEST_DATA_DIR "/firecracker", name), *want = NULL;
        assert_int_equal(read_file_at(AT_FDCWD, path, 65536, &want, NULL), 0);
        if (!streq(want, actual))
                fail_msg("%s differs:\n--- want\n%s--- got\n%s", name, want, actual);
}

static VmmConfig base_config(void) {
        return (VmmConfig){
                .vm_id = "abc123",
                .run_dir = "/run/user/1000/banger/vms/abc123",
                .log_path = "/run/user/1000/banger/vms/abc123/vm.log",
                .binary = "/usr/local/bin/firecracker",
                .kernel = "/var/lib/banger/kernels/vmlinux",
                .vcpus = 2,
                .mem_mib = 512,
        };
}

/* Firecracker's fault_message reaches the user as it came; an empty or
 * missing one (fuzz-fc-api corpus fault-empty) is replaced by the status. */
static void test_api_reply_error(void **state) {
        error_clear();
        assert_int_equal(fc_api_reply_error(400, "PUT", "/drives/rootfs",
                                            "{\"fault_message\":\"The requested operation is not supported\"}"),
                         -EREMOTEIO);
        assert_string_equal(error_last_message(), "The requested operation is not supported");
        static const char *const none[] = { "{\"fault_message\":\"\"}", "{\"fault_message\":3}", "<html>", "", NULL };
        for (size_t i = 0; i < 5; i++) {
                error_clear();
                assert_int_equal(fc_api_reply_error(500, "PUT", "/actions", none[i]), -EREMOTEIO);
                assert_string_equal(error_last_message(), "Firecracker answered HTTP 500 to PUT /actions");
        }
}

static void test_api_reply_state(void **state) {
        char *s = NULL;
        assert_int_equal(fc_api_reply_state("{\"id\":\"a\",\"state\":\"Paused\"}", &s), 0);
        assert_string_equal(s, "Paused");
        free(s);
        assert_int_equal(fc_api_reply_state("{\"state\":null}", &s), -EBADMSG);
        assert_int_equal(fc_api_reply_state(NULL, &s), -EBADMSG);
}

static void test_argv_plain(void **state) {
        VmmConfig c = base_config();
        _cleanup_(fc_paths_done) FcPaths p = {};
        _cleanup_strv_free_ char **argv = NULL;
        assert_int_equal(fc_paths_build(&c, c.binary, &p), 0);
        assert_string_equal(p.api_socket, "/run/user/1000/banger/vms/abc123/fc.sock");
        assert_string_equal(p.vsock, "/run/user/1000/banger/vms/abc123/v.sock");
        assert_string_equal(p.pidfile, "/run/user/1000/banger/vms/abc123/fc.pid");
        assert_null(p.chroot_dir);
        assert_int_equal(fc_build_argv(&c, c.binary, NULL, &p, &argv), 0);
        _cleanup_free_ char *s = argv_join(argv);
        assert_golden("argv-plain.txt", s);
}

static void test_argv_jailer(void **state) {
        VmmConfig c = base_config();
        c.jailer = true;
        c.jailer_binary = "/usr/local/bin/jailer";
        c.jailer_chroot_base = "/srv/jail";
        c.jailer_uid = 990;
        c.jailer_gid = 991;
        _cleanup_(fc_paths_done) FcPaths p = {};
        _cleanup_strv_free_ char **argv = NULL;
        assert_int_equal(fc_paths_build(&c, c.binary, &p), 0);
        /* The jailer's layout: <base>/<exec name>/<id>/root, pidfile <exec name>.pid. */
        assert_string_equal(p.chroot_dir, "/srv/jail/firecracker/abc123/root");
        assert_string_equal(p.api_socket, "/srv/jail/firecracker/abc123/root/fc.sock");
        assert_string_equal(p.api_socket_arg, "/fc.sock");
        assert_string_equal(p.vsock, "/srv/jail/firecracker/abc123/root/v.sock");
        assert_string_equal(p.vsock_arg, "/v.sock");
        assert_string_equal(p.pidfile, "/srv/jail/firecracker/abc123/root/firecracker.pid");
        assert_int_equal(fc_build_argv(&c, c.binary, c.jailer_binary, &p, &argv), 0);
        _cleanup_free_ char *s = argv_join(argv);
        assert_golden("argv-jailer.txt", s);

        /* The jailer refuses exec files not named *firecracker*. */
        FcPaths bad = {};
        error_clear();
        assert_int_equal(fc_paths_build(&c, "/usr/bin/qemu-system-x86_64", &bad), -EINVAL);
        assert_non_null(strstr(error_last_message(), "firecracker"));
}

static void test_socket_path_length(void **state) {
        /* A run dir that leaves no room for "/fc.sock" fails with a clear error. */
        char run_dir[120];
        memset(run_dir, 'r', sizeof(run_dir));
        run_dir[0] = '/';
        run_dir[100] = '\0';
        VmmConfig c = base_config();
        c.run_dir = run_dir;
        FcPaths p = {};
        error_clear();
        assert_int_equal(fc_paths_build(&c, c.binary, &p), -ENAMETOOLONG);
        assert_non_null(strstr(error_last_message(), "fc.sock"));
        assert_non_null(strstr(error_last_message(), "longer than the 107"));
        run_dir[98] = '\0'; /* 98 + strlen("/fc.sock") = 106: fits, and so does v.sock */
        assert_int_equal(fc_paths_build(&c, c.binary, &p), 0);
        fc_paths_done(&p);
}

static void test_verify_live_and_dead(void **state) {
        char *argv[] = { "sleep", "300", NULL };
        Process p = PROCESS_NULL;
        assert_int_equal(spawn_process(argv, NULL, &p), 0);
        assert_int_equal(vmm_process_verify(p.pid, "sleep", "300"), 0);
        /* Right pid, wrong program or wrong VM: never adopted. */
        assert_int_equal(vmm_process_verify(p.pid, "firecracker", "300"), -ESRCH);
        assert_int_equal(vmm_process_verify(p.pid, "sleep", "/run/other/fc.sock"), -ESRCH);

        pid_t dead = p.pid;
        process_kill_and_reap(&p);
        assert_int_equal(vmm_process_verify(dead, "sleep", "300"), -ESRCH);
}

static void write_pid(const char *dir, const char *name, pid_t pid) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d\n", (int) pid);
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, name, buf, (size_t) n, 0600), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *path) {
        (void) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_attach_pidfile(void **state) {
        char tmp[] = "/tmp/bfc-unit-XXXXXX";
        assert_non_null(mkdtemp(tmp));
        _cleanup_free_ char *pidfile = path_join(tmp, "fc.pid");
        char *argv[] = { "sleep", "301", NULL };
        Process p = PROCESS_NULL, got = PROCESS_NULL;
        assert_int_equal(spawn_process(argv, NULL, &p), 0);

        write_pid(tmp, "fc.pid", p.pid);
        assert_int_equal(vmm_process_attach_pidfile(pidfile, "sleep", "301", &got), 0);
        assert_int_equal(got.pid, p.pid);
        assert_true(got.pidfd >= 0);
        process_release(&got);

        /* A stale number now owned by another program (this test process). */
        write_pid(tmp, "fc.pid", getpid());
        assert_int_equal(vmm_process_attach_pidfile(pidfile, "sleep", "301", &got), -ESRCH);
        assert_int_equal(got.pidfd, -EBADF);

        /* The VMM is gone and its pid is dead. */
        pid_t dead = p.pid;
        process_kill_and_reap(&p);
        write_pid(tmp, "fc.pid", dead);
        assert_int_equal(vmm_process_attach_pidfile(pidfile, "sleep", "301", &got), -ESRCH);

        /* Garbage and symlinks are refused, a missing file means "not running". */
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, tmp);
        assert_int_equal(write_file_atomic_at(dfd, "fc.pid", "12ab\n", 5, 0600), 0);
        assert_int_equal(vmm_process_attach_pidfile(pidfile, "sleep", "301", &got), -EBADMSG);
        assert_int_equal(unlinkat(dfd, "fc.pid", 0), 0);
        assert_int_equal(vmm_process_attach_pidfile(pidfile, "sleep", "301", &got), -ESRCH);
        assert_int_equal(symlinkat("/proc/self/stat", dfd, "fc.pid"), 0);
        assert_int_equal(vmm_process_attach_pidfile(pidfile, "sleep", "301", &got), -ELOOP);
        rm_rf(tmp);
}

static void test_prepare_run_dir(void **state) {
        char tmp[] = "/tmp/bfc-unit-XXXXXX";
        assert_non_null(mkdtemp(tmp));
        _cleanup_free_ char *run = path_join(tmp, "vm"), *link = path_join(tmp, "link");
        mode_t old = umask(0);
        assert_int_equal(vmm_prepare_run_dir(run), 0);
        umask(old);
        struct stat st;
        assert_int_equal(lstat(run, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        /* A loosened directory is tightened again. */
        assert_int_equal(chmod(run, 0755), 0);
        assert_int_equal(vmm_prepare_run_dir(run), 0);
        assert_int_equal(lstat(run, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        /* A symlink in its place is refused. */
        assert_int_equal(symlink(run, link), 0);
        int r = vmm_prepare_run_dir(link);
        assert_true(r == -ENOTDIR || r == -ELOOP); /* O_DIRECTORY|O_NOFOLLOW on a link: ENOTDIR */
        rm_rf(tmp);
}

static void make_file(const char *dir, const char *name, const char *content) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, name, content, strlen(content), 0644), 0);
}

static void test_jail_prepare(void **state) {
        if (geteuid() != 0) {
                print_message("jailer chroot preparation needs root to chown; skipping\n");
                skip();
        }
        char tmp[] = "/tmp/bfc-jail-XXXXXX";
        assert_non_null(mkdtemp(tmp));
        make_file(tmp, "vmlinux", "kernel");
        make_file(tmp, "rootfs.ext4", "rootfs");
        _cleanup_free_ char *kernel = path_join(tmp, "vmlinux"), *rootfs = path_join(tmp, "rootfs.ext4"),
                            *base = path_join(tmp, "jail");
        VmmConfig c = base_config();
        c.kernel = kernel;
        c.jailer = true;
        c.jailer_chroot_base = base;
        c.jailer_uid = 12345;
        c.jailer_gid = 12346;
        c.drives[0] = (VmmDrive){ .id = "rootfs", .path = rootfs, .is_root = true };
        c.n_drives = 1;
        _cleanup_(fc_paths_done) FcPaths p = {};
        _cleanup_strv_free_ char **names = NULL;
        assert_int_equal(fc_paths_build(&c, "/usr/bin/firecracker", &p), 0);
        assert_int_equal(fc_jail_prepare(&c, &p, &names), 0);
        assert_string_equal(names[0], "/vmlinux");
        assert_string_equal(names[1], "");
        assert_string_equal(names[2], "/drive-rootfs");
        assert_null(names[3]);

        struct stat root, orig, jailed;
        assert_int_equal(lstat(p.chroot_dir, &root), 0);
        assert_true(S_ISDIR(root.st_mode));
        assert_int_equal(root.st_uid, 12345);
        assert_int_equal(root.st_gid, 12346);
        /* Same filesystem: a hard link, not a copy, owned by the jailer uid. */
        _cleanup_free_ char *jk = path_join(p.chroot_dir, "drive-rootfs");
        assert_int_equal(stat(rootfs, &orig), 0);
        assert_int_equal(lstat(jk, &jailed), 0);
        assert_true(orig.st_ino == jailed.st_ino);
        assert_int_equal(jailed.st_uid, 12345);
        /* Preparing again (a restarted VM) replaces the old links. */
        strv_free(TAKE_PTR(names));
        assert_int_equal(fc_jail_prepare(&c, &p, &names), 0);
        rm_rf(tmp);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_version),        cmocka_unit_test(test_api_reply_error),
                cmocka_unit_test(test_api_reply_state),      cmocka_unit_test(test_argv_plain),
                cmocka_unit_test(test_argv_jailer),          cmocka_unit_test(test_socket_path_length),
                cmocka_unit_test(test_verify_live_and_dead), cmocka_unit_test(test_attach_pidfile),
                cmocka_unit_test(test_prepare_run_dir),      cmocka_unit_test(test_jail_prepare),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
