/* SPDX-License-Identifier: MIT */
#pragma once

/* The QEMU microvm driver (vmm_driver_qemu, see vmm-driver.h): the whole VM
 * is described on the command line and started paused (-S); QMP on a Unix
 * socket in the run dir does the rest (cont, stop, system_powerdown,
 * query-status). KVM when /dev/kvm can run a guest, else TCG software
 * emulation (much slower; launch logs a warning and doctor shows it).
 *
 * Guest agent channel: a vhost-vsock-device when /dev/vhost-vsock exists,
 * else a virtio-serial port named org.banger.agent bound to a Unix socket in
 * the run dir. VmmInstance.agent_socket holds that socket's path, or
 * "vsock:<cid>" for vsock; connect_agent() hides the difference. */

#include <stdbool.h>

#include "vmm-driver.h"

#define QEMU_DEFAULT_BINARY "qemu-system-x86_64"
#define QEMU_AGENT_PORT_NAME "org.banger.agent"
#define QEMU_QMP_SOCKET "qmp.sock"
#define QEMU_AGENT_SOCKET "agent.sock"
#define QEMU_PIDFILE "qemu.pid"
#define QEMU_VSOCK_PREFIX "vsock:"

typedef enum QemuAccel {
        QEMU_ACCEL_KVM,
        QEMU_ACCEL_TCG,
} QemuAccel;

/* What the host offers, decided once per launch and fed to the pure argv
 * builder so its output depends on nothing else. */
typedef struct QemuHostPlan {
        QemuAccel accel;
        bool vsock;               /* vhost-vsock-device instead of virtio-serial */
        const char *qmp_socket;   /* absolute paths */
        const char *agent_socket; /* used only when !vsock */
        const char *pidfile;
        unsigned long tsc_khz; /* TCG: the host's TSC rate, handed to the guest; 0: unknown */
        bool incoming;         /* restore: "-incoming defer", the state comes over QMP */
} QemuHostPlan;

/* Can /dev/kvm run an ordinary guest? Opening it is not enough: a host may
 * expose a paravirtual /dev/kvm (kvm-pvm) that only runs specially built
 * guests, so the CPU must also offer vmx or svm. On false, *ret_reason
 * (optional) says why in words for doctor and the log. */
bool qemu_kvm_usable(const char **ret_reason);

/* Does this host have vhost-vsock (a readable and writable /dev/vhost-vsock)? */
bool qemu_vhost_vsock_usable(void);

/* The host CPU's rate in kHz from /proc/cpuinfo ("cpu MHz"), 0 if unknown.
 * Under TCG the guest's TSC ticks at this rate. */
unsigned long qemu_host_tsc_khz(void);

/* Fill plan's accel, vsock and tsc_khz from the host (paths are left alone). */
void qemu_host_plan_detect(QemuHostPlan *plan);

/* Build the QEMU command line for c under plan: a NULL-terminated strv
 * (free with strv_free). Pure: touches nothing on the system. -EINVAL with
 * error_setf() for a config QEMU could misparse (commas where they cannot
 * be escaped, bad ids, no kernel, too many devices). */
int qemu_build_argv(const VmmConfig *c, const QemuHostPlan *plan, char ***ret);

/* Map a QMP query-status "status" to the driver's short state words:
 * "running", "paused", "not started", "shutdown", "crashed" or "unknown". */
const char *qemu_state_from_qmp_status(const char *status);

/* qemu-snapshot.c: the driver's save_state() and version(). */
int qemu_save_state(VmmInstance *vm, const char *dir, usec_t timeout, VmmSavedState *ret);
int qemu_version(const char *binary, char **ret);
int qemu_cancel_save(VmmInstance *vm, usec_t timeout);

/* Feed VMM_STATE_FILE in dir to the QEMU (started with plan.incoming) that
 * serves QMP on qmp_socket, and wait until it has loaded it (monotonic
 * deadline). A state QEMU cannot load makes it exit: the caller looks at the
 * process and its log. */
int qemu_load_state(const char *qmp_socket, const char *dir, usec_t deadline);
