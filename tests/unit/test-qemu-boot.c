/* SPDX-License-Identifier: MIT */
/* A real boot through vmm_driver_qemu (KVM when usable, else TCG): the test
 * image from tests/images/build-test-image.sh boots paused, runs, pauses,
 * resumes, answers re-attach, powers off on system_powerdown within its
 * deadline, and a second boot ends by kill(). No QEMU may be left behind.
 *
 * Slow (a TCG boot takes ~10 s), so it runs only when BANGER_TEST_IMAGE
 * names a built image directory: tests/integration/test_qemu_boot.py builds
 * the image and runs this binary. Otherwise it exits 77 saying so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "qemu.h"
#include "string-util.h"

#define READY_LINE "banger-guest: ready"
#define BOOT_TIMEOUT (120 * USEC_PER_SEC)
#define POWERDOWN_DEADLINE (60 * USEC_PER_SEC)

typedef struct Fixture {
        char dir[64];
        char run_dir[80];
        char log_path[80];
        char rootfs[80];
        char kernel[PATH_MAX];
        char initrd[PATH_MAX];
        VmmConfig config;
        VmmInstance vm;
} Fixture;

static const char *image_dir;

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

static void sh(char *const argv[]) {
        _cleanup_free_ char *out = NULL;
        int r = spawn_run_capture(argv, 120 * USEC_PER_SEC, 4096, true, &out);
        if (r != 0)
                fail_msg("%s failed (%d): %s", argv[0], r, out ? out : "");
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        /* Short: the sockets inside must fit sun_path. The caller may name a
         * parent of its own to find anything we leave behind. */
        const char *parent = getenv("BANGER_TEST_TMPDIR");
        if (!parent || strlen(parent) > 24)
                parent = "/tmp";
        snprintf(f->dir, sizeof(f->dir), "%s/bq-XXXXXX", parent);
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->run_dir, sizeof(f->run_dir), "%s/run", f->dir);
        snprintf(f->log_path, sizeof(f->log_path), "%s/vm.log", f->dir);
        snprintf(f->rootfs, sizeof(f->rootfs), "%s/root.ext4", f->dir);
        snprintf(f->kernel, sizeof(f->kernel), "%s/vmlinuz", image_dir);
        snprintf(f->initrd, sizeof(f->initrd), "%s/initrd.img", image_dir);
        _cleanup_free_ char *src = path_join(image_dir, "rootfs.ext4");
        char *cp[] = { "cp", "--sparse=always", src, f->rootfs, NULL };
        sh(cp);
        f->config = (VmmConfig){
                .vm_id = "qbt1",
                .run_dir = f->run_dir,
                .log_path = f->log_path,
                .kernel = f->kernel,
                .initrd = f->initrd,
                .cmdline = "console=ttyS0 root=/dev/vda rw panic=-1",
                .vcpus = 1,
                .mem_mib = 256,
                .drives = { { .id = "rootfs", .path = f->rootfs, .is_root = true } },
                .n_drives = 1,
                .vsock_cid = 3,
        };
        f->vm = (VmmInstance){ .kind = VMM_QEMU, .proc = PROCESS_NULL };
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        if (f->vm.proc.pidfd >= 0)
                (void) vmm_driver_qemu.kill(&f->vm);
        vmm_instance_done(&f->vm);
        char *rm[] = { "rm", "-rf", f->dir, NULL };
        sh(rm);
        free(f);
        return 0;
}

/* Is any process still running with our run dir on its command line? */
static bool qemu_left_behind(const char *run_dir) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));) {
                char path[300], buf[8192];
                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
                if (n > 0 && memmem(buf, (size_t) n, run_dir, strlen(run_dir)))
                        return true;
        }
        return false;
}

static bool log_contains(const char *log_path, const char *needle) {
        _cleanup_free_ char *s = NULL;
        size_t len = 0;
        if (read_file_at(AT_FDCWD, log_path, 64 * 1024 * 1024, &s, &len) < 0)
                return false;
        return memmem(s, len, needle, strlen(needle)) != NULL;
}

static void wait_for_log(const char *log_path, const char *needle, usec_t timeout) {
        usec_t deadline = now_monotonic() + timeout;
        while (!log_contains(log_path, needle)) {
                if (now_monotonic() >= deadline) {
                        _cleanup_free_ char *s = NULL;
                        size_t len = 0;
                        (void) read_file_at(AT_FDCWD, log_path, 64 * 1024 * 1024, &s, &len);
                        fail_msg("\"%s\" did not appear in %s in time; its end:\n%s", needle, log_path,
                                 s ? s + (len > 3000 ? len - 3000 : 0) : "(unreadable)");
                }
                (void) poll(NULL, 0, 200);
        }
}

static void expect_state(VmmInstance *vm, const char *want) {
        const char *got = NULL;
        int r = vmm_driver_qemu.query_state(vm, &got);
        if (r < 0)
                fail_msg("query_state: %d %s", r, error_last_message());
        assert_string_equal(got, want);
}

static void launch(Fixture *f) {
        int r = vmm_driver_qemu.launch(&f->config, 30 * USEC_PER_SEC, &f->vm);
        if (r < 0)
                fail_msg("launch: %d %s", r, error_last_message());
}

static void assert_socket_private(const char *path) {
        struct stat st;
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_boot_pause_powerdown(void **state) {
        Fixture *f = *state;
        assert_int_equal(vmm_driver_qemu.probe(NULL), 0);
        launch(f);
        assert_socket_private(f->vm.api_socket);
        assert_socket_private(f->vm.agent_socket); /* no vhost-vsock here: virtio-serial */
        expect_state(&f->vm, "not started");

        /* Re-attach finds the same process through the pidfile. */
        VmmInstance again = { .proc = PROCESS_NULL };
        assert_int_equal(vmm_driver_qemu.attach(&f->config, &again), 0);
        assert_int_equal(again.proc.pid, f->vm.proc.pid);
        vmm_instance_done(&again);
        /* Without the pidfile, through whoever listens on the QMP socket. */
        char moved[128];
        snprintf(moved, sizeof(moved), "%s.moved", f->vm.pidfile);
        assert_int_equal(rename(f->vm.pidfile, moved), 0);
        assert_int_equal(vmm_driver_qemu.attach(&f->config, &again), 0);
        assert_int_equal(again.proc.pid, f->vm.proc.pid);
        vmm_instance_done(&again);
        assert_int_equal(rename(moved, f->vm.pidfile), 0);

        assert_int_equal(vmm_driver_qemu.start(&f->vm), 0);
        expect_state(&f->vm, "running");
        wait_for_log(f->log_path, READY_LINE, BOOT_TIMEOUT);

        assert_int_equal(vmm_driver_qemu.pause(&f->vm), 0);
        expect_state(&f->vm, "paused");
        assert_int_equal(vmm_driver_qemu.resume(&f->vm), 0);
        expect_state(&f->vm, "running");

        /* The agent channel answers a connect (no agent in this image). */
        int fd = vmm_driver_qemu.connect_agent(&f->vm, 10789, 5 * USEC_PER_SEC);
        assert_true(fd >= 0);
        safe_close(fd);

        usec_t t0 = now_monotonic();
        assert_int_equal(vmm_driver_qemu.request_shutdown(&f->vm), 0);
        int r = vmm_driver_qemu.wait_exit(&f->vm, POWERDOWN_DEADLINE);
        if (r < 0)
                fail_msg("guest did not power off within %llu s: %d",
                         (unsigned long long) (POWERDOWN_DEADLINE / USEC_PER_SEC), r);
        print_message("powerdown took %.1f s\n", (double) (now_monotonic() - t0) / USEC_PER_SEC);
        assert_true(log_contains(f->log_path, "reboot: Power down"));
        assert_int_equal(vmm_driver_qemu.kill(&f->vm), 0); /* only tidies up now */
        assert_int_equal(access(f->vm.api_socket, F_OK), -1);
        assert_int_equal(access(f->vm.pidfile, F_OK), -1);
        assert_false(qemu_left_behind(f->run_dir));
        assert_int_equal(vmm_driver_qemu.attach(&f->config, &again), -ESRCH);
}

static void test_boot_kill(void **state) {
        Fixture *f = *state;
        launch(f);
        assert_int_equal(vmm_driver_qemu.start(&f->vm), 0);
        expect_state(&f->vm, "running");
        pid_t pid = f->vm.proc.pid;
        assert_int_equal(vmm_driver_qemu.kill(&f->vm), 0);
        char proc[32];
        snprintf(proc, sizeof(proc), "/proc/%d", (int) pid);
        assert_int_equal(access(proc, F_OK), -1);
        assert_int_equal(access(f->vm.api_socket, F_OK), -1);
        assert_int_equal(access(f->vm.agent_socket, F_OK), -1);
        assert_int_equal(access(f->vm.pidfile, F_OK), -1);
        assert_false(qemu_left_behind(f->run_dir));
        /* QMP operations on a dead VM fail cleanly. */
        const char *st = NULL;
        assert_int_equal(vmm_driver_qemu.query_state(&f->vm, &st), -ESRCH);
}

/* A second launch of a VM whose QEMU still runs fails before it touches
 * anything: the running QEMU keeps its QMP socket and pidfile. */
static void test_second_launch_keeps_the_first(void **state) {
        Fixture *f = *state;
        launch(f);
        VmmInstance second = { .kind = VMM_QEMU, .proc = PROCESS_NULL };
        error_clear();
        assert_int_equal(vmm_driver_qemu.launch(&f->config, 30 * USEC_PER_SEC, &second), -EBUSY);
        assert_non_null(strstr(error_last_message(), "vmm.lock"));
        assert_int_equal(access(f->vm.api_socket, F_OK), 0);
        assert_int_equal(access(f->vm.pidfile, F_OK), 0);
        expect_state(&f->vm, "not started");
        assert_int_equal(vmm_driver_qemu.kill(&f->vm), 0);
        assert_false(qemu_left_behind(f->run_dir));
}

static void test_launch_failure_reports_qemu_error(void **state) {
        Fixture *f = *state;
        f->config.drives[0].path = "/nonexistent/banger-root.ext4";
        error_clear();
        assert_int_equal(vmm_driver_qemu.launch(&f->config, 30 * USEC_PER_SEC, &f->vm), -EIO);
        /* The user reads QEMU's own words, not just "failed". */
        assert_non_null(error_last_message());
        assert_non_null(strstr(error_last_message(), "/nonexistent/banger-root.ext4"));
        assert_false(qemu_left_behind(f->run_dir));
}

static void copy_file(const char *from, const char *to) {
        char *cp[] = { "cp", "--sparse=always", (char *) from, (char *) to, NULL };
        sh(cp);
}

/* A second VM from the first one's saved state: its own run dir and log, a
 * copy of the root disk taken while the first was paused. */
static VmmConfig restore_config(Fixture *f, const char *state_dir, const char *version, char *run2, char *log2,
                                char *root2) {
        snprintf(run2, 80, "%s/run2", f->dir);
        snprintf(log2, 80, "%s/vm2.log", f->dir);
        snprintf(root2, 80, "%s/root2.ext4", f->dir);
        VmmConfig c = f->config;
        c.vm_id = "qbt2";
        c.run_dir = run2;
        c.log_path = log2;
        c.drives[0].path = root2;
        c.restore_dir = state_dir;
        c.restore_version = version;
        return c;
}

static void check_restore_failures(VmmConfig *c, const char *state_file, uint64_t state_bytes, const char *version);

/* Save a booted guest (it stays paused; resumed, it runs on), restore a copy
 * into a new QEMU, and the copy is the same guest: it answers the power
 * button it was waiting for before the save. Then the failures: another
 * QEMU version is refused before QEMU runs, a truncated state file makes
 * QEMU say why, and nothing is left behind. */
static void test_save_restore(void **state) {
        Fixture *f = *state;
        launch(f);
        assert_int_equal(vmm_driver_qemu.start(&f->vm), 0);
        wait_for_log(f->log_path, READY_LINE, BOOT_TIMEOUT);
        char state_dir[80], run2[80], log2[80], root2[80];
        snprintf(state_dir, sizeof(state_dir), "%s/state", f->dir);
        assert_int_equal(mkdir(state_dir, 0700), 0);
        VmmSavedState saved = {};
        usec_t t0 = now_monotonic();
        int r = vmm_driver_qemu.save_state(&f->vm, state_dir, 120 * USEC_PER_SEC, &saved);
        if (r < 0)
                fail_msg("save_state: %d %s", r, error_last_message());
        print_message("save took %.2f s for %llu MiB\n", (double) (now_monotonic() - t0) / USEC_PER_SEC,
                      (unsigned long long) (saved.state_bytes >> 20));
        expect_state(&f->vm, "paused");
        _cleanup_free_ char *state_file = path_join(state_dir, VMM_STATE_FILE), *version = NULL;
        struct stat st;
        assert_int_equal(stat(state_file, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal((uint64_t) st.st_size, saved.state_bytes);
        assert_true(saved.state_bytes > 1024 * 1024);
        VmmConfig c = restore_config(f, state_dir, NULL, run2, log2, root2);
        copy_file(f->rootfs, root2); /* the disk as it is while the guest is paused */
        assert_int_equal(vmm_driver_qemu.resume(&f->vm), 0);
        expect_state(&f->vm, "running");
        assert_int_equal(vmm_driver_qemu.kill(&f->vm), 0);

        assert_int_equal(vmm_driver_qemu.version(NULL, &version), 0);
        assert_non_null(strstr(version, "QEMU emulator version"));
        c.restore_version = version;
        VmmInstance vm = { .proc = PROCESS_NULL };
        t0 = now_monotonic();
        r = vmm_driver_qemu.launch(&c, 60 * USEC_PER_SEC, &vm);
        if (r < 0)
                fail_msg("restore: %d %s", r, error_last_message());
        expect_state(&vm, "paused");
        assert_int_equal(vmm_driver_qemu.start(&vm), 0);
        expect_state(&vm, "running");
        print_message("restore took %.2f s\n", (double) (now_monotonic() - t0) / USEC_PER_SEC);
        assert_false(log_contains(log2, READY_LINE)); /* it did not boot */
        assert_int_equal(vmm_driver_qemu.request_shutdown(&vm), 0);
        r = vmm_driver_qemu.wait_exit(&vm, POWERDOWN_DEADLINE);
        if (r < 0)
                fail_msg("the restored guest did not power off: %d", r);
        assert_true(log_contains(log2, "reboot: Power down"));
        (void) vmm_driver_qemu.kill(&vm);
        vmm_instance_done(&vm);
        check_restore_failures(&c, state_file, saved.state_bytes, version);
        assert_false(qemu_left_behind(f->run_dir));
}

/* Another QEMU version is refused before QEMU runs; a truncated state file
 * makes QEMU say why, and it does not stay. */
static void check_restore_failures(VmmConfig *c, const char *state_file, uint64_t state_bytes, const char *version) {
        VmmInstance vm = { .proc = PROCESS_NULL };
        c->restore_version = "QEMU emulator version 6.2.0";
        error_clear();
        assert_int_equal(vmm_driver_qemu.launch(c, 60 * USEC_PER_SEC, &vm), -EPROTONOSUPPORT);
        assert_non_null(strstr(error_last_message(), "6.2.0"));
        assert_false(qemu_left_behind(c->run_dir));
        c->restore_version = version;
        assert_int_equal(truncate(state_file, (off_t) (state_bytes / 2)), 0);
        error_clear();
        assert_int_equal(vmm_driver_qemu.launch(c, 60 * USEC_PER_SEC, &vm), -EBADMSG);
        print_message("truncated state: %s\n", error_last_message());
        assert_non_null(strstr(error_last_message(), "could not load the saved state"));
        assert_false(qemu_left_behind(c->run_dir));
}

/* Runs when the caller put us in a network namespace with a TAP on a bridge
 * (tests/integration/test_qemu_boot.py does): the guest configures eth0
 * from ip= and root logs in over SSH with the image's key. */
static void test_boot_network_ssh(void **state) {
        Fixture *f = *state;
        const char *tap = getenv("BANGER_TEST_TAP"), *ip = getenv("BANGER_TEST_GUEST_IP"),
                   *gw = getenv("BANGER_TEST_GATEWAY_IP");
        if (!tap || !ip || !gw) {
                print_message("skipped: set BANGER_TEST_TAP, BANGER_TEST_GUEST_IP, BANGER_TEST_GATEWAY_IP\n");
                skip();
        }
        char cmdline[256], target[64];
        snprintf(cmdline, sizeof(cmdline),
                 "console=ttyS0 root=/dev/vda rw panic=-1 ip=%s::%s:255.255.255.0:qbt:eth0:off", ip, gw);
        snprintf(target, sizeof(target), "root@%s", ip);
        f->config.cmdline = cmdline;
        f->config.nics[0] = (VmmNic){ .id = "eth0", .tap = tap, .mac = "02:fc:00:00:00:02" };
        f->config.n_nics = 1;
        launch(f);
        assert_int_equal(vmm_driver_qemu.start(&f->vm), 0);
        wait_for_log(f->log_path, READY_LINE, BOOT_TIMEOUT);

        _cleanup_free_ char *key = path_join(image_dir, "id_ed25519");
        char *ssh[] = { "ssh",
                        "-i",
                        key,
                        "-o",
                        "BatchMode=yes",
                        "-o",
                        "StrictHostKeyChecking=no",
                        "-o",
                        "UserKnownHostsFile=/dev/null",
                        "-o",
                        "ConnectTimeout=20",
                        target,
                        "cat /proc/cmdline; hostname",
                        NULL };
        _cleanup_free_ char *out = NULL;
        int r = spawn_run_capture(ssh, 60 * USEC_PER_SEC, 64 * 1024, true, &out);
        if (r != 0)
                fail_msg("ssh %s failed (%d): %s", target, r, out ? out : "");
        assert_non_null(strstr(out, cmdline));
        assert_non_null(strstr(out, "\nqbt\n"));

        assert_int_equal(vmm_stop(&vmm_driver_qemu, &f->vm, POWERDOWN_DEADLINE), 0);
        assert_false(qemu_left_behind(f->run_dir));
}

int main(void) {
        image_dir = getenv("BANGER_TEST_IMAGE");
        if (!image_dir || !*image_dir) {
                printf("skipped: the real QEMU boot runs from tests/integration/test_qemu_boot.py (slow); "
                       "set BANGER_TEST_IMAGE to a tests/images/build-test-image.sh output to run it here\n");
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_launch_failure_reports_qemu_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_second_launch_keeps_the_first, setup, teardown),
                cmocka_unit_test_setup_teardown(test_boot_pause_powerdown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_boot_kill, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
                cmocka_unit_test_setup_teardown(test_boot_network_ssh, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
