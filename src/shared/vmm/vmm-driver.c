/* SPDX-License-Identifier: MIT */
#include "vmm-driver.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "error.h"
#include "log.h"
#include "string-util.h"

const VmmDriver *vmm_driver_get(VmmKind k) {
        switch (k) {
        case VMM_FIRECRACKER:
                return &vmm_driver_firecracker;
        case VMM_QEMU:
                return &vmm_driver_qemu;
        default:
                return NULL;
        }
}

void vmm_instance_done(VmmInstance *vm) {
        if (!vm)
                return;
        process_release(&vm->proc);
        free(vm->api_socket);
        free(vm->agent_socket);
        free(vm->pidfile);
        free(vm->chroot_dir);
        *vm = (VmmInstance){ .kind = vm->kind, .proc = PROCESS_NULL };
}

int vmm_stop(const VmmDriver *d, VmmInstance *vm, usec_t timeout) {
        int r = d->request_shutdown(vm);
        if (r >= 0) {
                r = d->wait_exit(vm, timeout);
                if (r >= 0) {
                        /* Gone by itself; kill() now only removes its sockets. */
                        r = d->kill(vm);
                        return r < 0 ? r : 0;
                }
                if (r != -ETIMEDOUT)
                        return r;
                log_debug("%s pid %d ignored the shutdown request, killing it", d->name, (int) vm->proc.pid);
        } else
                log_debug_errno(r, "%s pid %d refused the shutdown request, killing it: %m", d->name,
                                (int) vm->proc.pid);
        r = d->kill(vm);
        return r < 0 ? r : 1;
}

int vmm_attach_wait(const VmmDriver *d, const VmmConfig *c, usec_t timeout, VmmInstance *ret) {
        usec_t deadline = now_monotonic() + timeout;
        for (;;) {
                /* -EBADMSG: a pidfile caught while written (QEMU truncates its own first). */
                int r = d->attach(c, ret);
                if (r != -ESRCH && r != -EBADMSG)
                        return r;
                /* Asked after the attach failed: a lock free now means the
                 * process that could not be identified is gone. */
                int held = vmm_lock_held(c->run_dir);
                if (held < 0)
                        return held;
                if (held == 0)
                        return r;
                if (now_monotonic() >= deadline)
                        return error_setf(-EBUSY, "a process of this VM still holds its %s but is not its VMM",
                                          VMM_LOCK_FILE);
                log_debug("%s of %s: held, its VMM not identifiable yet; waiting", VMM_LOCK_FILE, c->vm_id);
                /* Nothing signals an exec (the comm and cmdline change), so poll briefly. */
                (void) poll(NULL, 0, 20);
        }
}
