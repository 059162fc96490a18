/* SPDX-License-Identifier: MIT */
/* What the host offers QEMU: KVM, vhost-vsock and the TSC rate. Apart from
 * the driver (qemu.c) so that a program asking only this (banger doctor)
 * does not link the drivers and what they need (libcurl for Firecracker). */
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fs-util.h"

#define CPUINFO_MAX (256U * 1024U)

static bool cpu_has_virt_flags(void) {
        _cleanup_free_ char *buf = NULL;
        if (read_virtual_file_at(AT_FDCWD, "/proc/cpuinfo", CPUINFO_MAX, &buf, NULL) < 0)
                return false;
        /* The first "flags" line speaks for all CPUs. */
        char *line = strstr(buf, "\nflags");
        if (!line)
                return false;
        line[strcspn(line + 1, "\n") + 1] = '\0';
        return strstr(line, " vmx") || strstr(line, " svm");
}

bool qemu_kvm_usable(const char **ret_reason) {
        const char *reason = NULL;
        _cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                reason = errno == ENOENT ? "/dev/kvm does not exist"
                                         : "/dev/kvm cannot be opened for reading and writing";
        else if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
                reason = "/dev/kvm speaks an unexpected KVM API version";
        else if (!cpu_has_virt_flags())
                /* A paravirtual /dev/kvm (e.g. kvm-pvm in a nested guest) opens
                 * fine but hangs or aborts ordinary guests. */
                reason = "the CPU offers no hardware virtualisation (vmx/svm), so /dev/kvm cannot run ordinary guests";
        if (ret_reason)
                *ret_reason = reason;
        return !reason;
}

bool qemu_vhost_vsock_usable(void) {
        return access("/dev/vhost-vsock", R_OK | W_OK) == 0;
}

unsigned long qemu_host_tsc_khz(void) {
        /* The first CPU's lines are enough. */
        _cleanup_free_ char *buf = NULL;
        if (read_virtual_file_at(AT_FDCWD, "/proc/cpuinfo", 8191, &buf, NULL) < 0)
                return 0;
        const char *p = strstr(buf, "\ncpu MHz");
        const char *colon = p ? strchr(p, ':') : NULL;
        double mhz = 0;
        if (!colon || sscanf(colon + 1, "%lf", &mhz) != 1 || mhz < 100 || mhz > 10000)
                return 0;
        return (unsigned long) (mhz * 1000);
}

void qemu_host_plan_detect(QemuHostPlan *plan) {
        plan->accel = qemu_kvm_usable(NULL) ? QEMU_ACCEL_KVM : QEMU_ACCEL_TCG;
        plan->vsock = qemu_vhost_vsock_usable();
        plan->tsc_khz = plan->accel == QEMU_ACCEL_TCG ? qemu_host_tsc_khz() : 0;
}
