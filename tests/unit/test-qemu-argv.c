/* SPDX-License-Identifier: MIT */
/* Golden-file tests of the QEMU command line (tests/data/qemu/<case>.argv,
 * one argument per line). Set BANGER_UPDATE_GOLDEN=1 to rewrite the files
 * after an intended change, then review the diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fs-util.h"
#include "qemu.h"
#include "string-util.h"

static char *join_lines(char **argv) {
        size_t len = 1;
        for (char **a = argv; *a; a++)
                len += strlen(*a) + 1;
        char *s = malloc(len), *p = s;
        assert_non_null(s);
        for (char **a = argv; *a; a++)
                p = stpcpy(stpcpy(p, *a), "\n");
        *p = '\0';
        return s;
}

static void check_golden(const char *name, const VmmConfig *c, const QemuHostPlan *plan) {
        char **argv = NULL;
        int r = qemu_build_argv(c, plan, &argv);
        if (r < 0)
                fail_msg("qemu_build_argv(%s): %d %s", name, r, error_last_message());
        _cleanup_free_ char *got = join_lines(argv);
        strv_free(argv);

        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, TEST_DATA_DIR "/qemu");
        assert_true(dfd >= 0);
        char file[64];
        snprintf(file, sizeof(file), "%s.argv", name);
        if (getenv("BANGER_UPDATE_GOLDEN"))
                assert_int_equal(write_file_atomic_at(dfd, file, got, strlen(got), 0644), 0);
        _cleanup_free_ char *want = NULL;
        assert_int_equal(read_file_at(dfd, file, 64 * 1024, &want, NULL), 0);
        if (!streq(got, want))
                fail_msg("argv for %s differs from tests/data/qemu/%s:\n--- got ---\n%s--- want ---\n%s", name, file,
                         got, want);
}

/* A typical VM: root and work disks (listed work first: the root disk must
 * still come first), one TAP NIC, an initrd, and a log path with a comma
 * that QEMU's option parser must see doubled. */
static VmmConfig typical_config(void) {
        return (VmmConfig){
                .vm_id = "a1b2c3",
                .run_dir = "/run/banger/vms/a1b2c3",
                .log_path = "/var/log/banger/a1b2c3,console.log",
                .binary = "/usr/bin/qemu-system-x86_64",
                .kernel = "/var/lib/banger/kernels/6.1/vmlinuz",
                .initrd = "/var/lib/banger/kernels/6.1/initrd.img",
                .cmdline = "console=ttyS0 root=/dev/vda rw ip=172.16.0.2::172.16.0.1:255.255.255.0:web:eth0:off",
                .vcpus = 2,
                .mem_mib = 1024,
                .drives = { { .id = "work", .path = "/var/lib/banger/vms/a1b2c3/work.ext4" },
                            { .id = "rootfs", .path = "/var/lib/banger/vms/a1b2c3/root.ext4", .is_root = true },
                            { .id = "seed", .path = "/var/lib/banger/seed.img", .read_only = true } },
                .n_drives = 3,
                .nics = { { .id = "eth0", .tap = "tap-a1b2c3", .mac = "02:fc:00:00:00:02" } },
                .n_nics = 1,
                .vsock_cid = 7,
        };
}

static QemuHostPlan tcg_plan(void) {
        return (QemuHostPlan){ .accel = QEMU_ACCEL_TCG,
                               .vsock = false,
                               .qmp_socket = "/run/banger/vms/a1b2c3/qmp.sock",
                               .agent_socket = "/run/banger/vms/a1b2c3/agent.sock",
                               .pidfile = "/run/banger/vms/a1b2c3/qemu.pid",
                               .tsc_khz = 2596126 };
}

static void test_tcg_virtio_serial(void **state) {
        VmmConfig c = typical_config();
        QemuHostPlan plan = tcg_plan();
        check_golden("tcg-virtio-serial", &c, &plan);
}

/* A restore: the same machine, devices in the same order, and the state to
 * come over QMP ("-incoming defer"), never a path or command in argv. */
static void test_tcg_restore(void **state) {
        VmmConfig c = typical_config();
        QemuHostPlan plan = tcg_plan();
        plan.incoming = true;
        check_golden("tcg-restore", &c, &plan);
}

static void test_kvm_vsock(void **state) {
        /* Minimal: no initrd, no NIC, default binary, vhost-vsock agent. */
        VmmConfig c = {
                .vm_id = "ff00",
                .run_dir = "/run/user/1000/banger/ff00",
                .log_path = "/home/dev/.local/state/banger/ff00.log",
                .kernel = "/boot/vmlinuz",
                .cmdline = "console=ttyS0",
                .vcpus = 1,
                .mem_mib = 256,
                .drives = { { .id = "rootfs", .path = "/images/root.ext4", .is_root = true } },
                .n_drives = 1,
                .vsock_cid = 42,
        };
        QemuHostPlan plan = { .accel = QEMU_ACCEL_KVM,
                              .vsock = true,
                              .qmp_socket = "/run/user/1000/banger/ff00/qmp.sock",
                              .agent_socket = "/run/user/1000/banger/ff00/agent.sock",
                              .pidfile = "/run/user/1000/banger/ff00/qemu.pid" };
        check_golden("kvm-vsock", &c, &plan);
}

static void test_kvm_virtio_serial(void **state) {
        VmmConfig c = typical_config();
        QemuHostPlan plan = { .accel = QEMU_ACCEL_KVM,
                              .vsock = false,
                              .qmp_socket = "/r/q.sock",
                              .agent_socket = "/r/a.sock",
                              .pidfile = "/r/q.pid" };
        check_golden("kvm-virtio-serial", &c, &plan);
}

static void expect_invalid(const VmmConfig *c, const QemuHostPlan *plan) {
        char **argv = NULL;
        error_clear();
        assert_int_equal(qemu_build_argv(c, plan, &argv), -EINVAL);
        assert_null(argv);
        assert_non_null(error_last_message());
}

static void test_rejects_bad_config(void **state) {
        QemuHostPlan plan = {
                .accel = QEMU_ACCEL_TCG, .qmp_socket = "/r/q", .agent_socket = "/r/a", .pidfile = "/r/p"
        };
        VmmConfig c = typical_config();
        c.nics[0].tap = "tap0,script=/tmp/evil"; /* would smuggle a netdev option in */
        expect_invalid(&c, &plan);
        c = typical_config();
        c.nics[0].mac = "02:fc:00:00:00";
        expect_invalid(&c, &plan);
        c = typical_config();
        c.drives[0].id = "Work,file=/etc/shadow";
        expect_invalid(&c, &plan);
        c = typical_config();
        c.kernel = NULL;
        expect_invalid(&c, &plan);
        c = typical_config();
        c.vm_id = "UPPER";
        expect_invalid(&c, &plan);
        c = typical_config();
        c.mem_mib = 16;
        expect_invalid(&c, &plan);
        c = typical_config();
        c.vsock_cid = 2; /* the host's CID */
        plan.vsock = true;
        expect_invalid(&c, &plan);
}

static void test_state_mapping(void **state) {
        assert_string_equal(qemu_state_from_qmp_status("running"), "running");
        assert_string_equal(qemu_state_from_qmp_status("prelaunch"), "not started");
        assert_string_equal(qemu_state_from_qmp_status("paused"), "paused");
        assert_string_equal(qemu_state_from_qmp_status("guest-panicked"), "crashed");
        assert_string_equal(qemu_state_from_qmp_status("shutdown"), "shutdown");
        assert_string_equal(qemu_state_from_qmp_status("something-new"), "unknown");
        assert_string_equal(qemu_state_from_qmp_status(NULL), "unknown");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tcg_virtio_serial),  cmocka_unit_test(test_tcg_restore),
                cmocka_unit_test(test_kvm_vsock),          cmocka_unit_test(test_kvm_virtio_serial),
                cmocka_unit_test(test_rejects_bad_config), cmocka_unit_test(test_state_mapping),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
