/* SPDX-License-Identifier: MIT */
/* Reaching a VM's guest agent: waiting for it while the guest boots, asking
 * it to power off, and handing its endpoint to clients. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "vm-internal.h"

#define AGENT_CONNECT_TIMEOUT (2 * USEC_PER_SEC)
#define AGENT_RETRY (100 * USEC_PER_MSEC)

/* A session on fd (taken over): the hello, within timeout. During a boot
 * (booting), a stop, kill or delete shuts the socket down and ends the wait
 * at once; a VMM that exits closes it. */
static int agent_session(VmManager *m, const char *id, bool booting, int fd, usec_t timeout, AgentClient **ret) {
        _cleanup_(agent_client_freep) AgentClient *c = NULL;
        int r = agent_client_new(fd, &c);
        if (r >= 0 && booting)
                r = vm_preempt_set_waiting_fd(m, id, fd);
        if (r < 0)
                return r;
        r = agent_client_hello(c, timeout, NULL);
        if (booting)
                (void) vm_preempt_set_waiting_fd(m, id, -EBADF);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* Before the next attempt: wait for the VMM to exit or a stop, kill or
 * delete, at most until `until`. 0 to try again, or why not. */
static int wait_retry(VmManager *m, const char *id, const VmmDriver *drv, VmmInstance *inst, usec_t until) {
        struct pollfd p[2] = { { .fd = inst->proc.pidfd, .events = POLLIN },
                               { .fd = vm_preempt_fd(m, id), .events = POLLIN } };
        int n;
        while ((n = poll(p, 2, deadline_poll_ms(until))) < 0 && errno == EINTR)
                ;
        if (vm_preempt_requested(m, id))
                return error_setf(-ECANCELED, "the boot was interrupted by a stop, kill or delete");
        if (p[0].revents || drv->wait_exit(inst, 0) == 0)
                return error_setf(-ECHILD, "the VMM exited while the guest was booting");
        return n < 0 ? -errno : 0;
}

int vm_agent_wait(VmManager *m, const char *id, const VmmDriver *drv, VmmInstance *inst, usec_t deadline,
                  AgentClient **ret) {
        int last = -ETIMEDOUT;
        for (;;) {
                usec_t now = now_monotonic();
                if (now >= deadline)
                        break;
                int fd = drv->connect_agent(inst, AGENT_VSOCK_PORT, MIN(deadline - now, AGENT_CONNECT_TIMEOUT));
                /* The hello may wait until the deadline: the agent answers as
                 * soon as the guest has it running (over virtio-serial the
                 * hello waits in the channel until then). */
                last = fd < 0 ? fd : agent_session(m, id, true, fd, deadline - MIN(deadline, now_monotonic()), ret);
                if (last >= 0)
                        return 0;
                /* Nothing tells when a guest starts listening on vsock: a
                 * refused connection is tried again after a short wait. */
                int r = wait_retry(m, id, drv, inst, MIN(deadline, now_monotonic() + AGENT_RETRY));
                if (r < 0)
                        return r;
        }
        return error_setf(-ETIMEDOUT, "the guest agent did not answer in time (last: %s)", strerror(-last));
}

/* The agent syncs and powers the guest off: the primary graceful path. */
static usec_t left_until(usec_t deadline, usec_t cap) {
        usec_t now = now_monotonic();
        return now >= deadline ? 0 : MIN(deadline - now, cap);
}

int vm_agent_poweroff(const VmmDriver *drv, VmmInstance *inst, usec_t deadline) {
        int fd = drv->connect_agent(inst, AGENT_VSOCK_PORT, left_until(deadline, 3 * USEC_PER_SEC));
        if (fd < 0)
                return fd;
        _cleanup_(agent_client_freep) AgentClient *c = NULL;
        int r = agent_session(NULL, NULL, false, fd, left_until(deadline, 5 * USEC_PER_SEC), &c);
        return r < 0 ? r : agent_client_poweroff(c, left_until(deadline, 10 * USEC_PER_SEC));
}

int vm_agent_endpoint(VmManager *m, Store *s, const char *id, char **ret_socket, unsigned *ret_port) {
        _cleanup_(vm_record_done) VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r < 0)
                return r;
        if (vm.state != VM_STATE_RUNNING || !vm.agent_socket)
                return error_setf(-ESRCH, "vm %s is not running", vm.name);
        *ret_socket = strdup(vm.agent_socket);
        *ret_port = vm.vmm == VMM_FIRECRACKER ? AGENT_VSOCK_PORT : 0;
        return *ret_socket ? 0 : -ENOMEM;
}

static int connect_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        const usec_t *timeout = userdata;
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        if (!rt || vm->state != VM_STATE_RUNNING)
                return error_setf(-ESRCH, "vm %s is not running", vm->name);
        return vmm_driver_get(vm->vmm)->connect_agent(&rt->inst, AGENT_VSOCK_PORT, *timeout);
}

int vm_agent_open(VmManager *m, Store *s, const char *id, usec_t timeout, AgentClient **ret) {
        /* Connected under the VM's lock; the hello needs no lock. */
        int fd = vm_with_lock(m, s, id, 0, connect_locked, &timeout);
        if (fd < 0)
                return fd;
        int r = agent_session(m, id, false, fd, timeout, ret);
        return r < 0 ? error_setf(r, "the guest agent does not answer: %s", strerror(-r)) : 0;
}
