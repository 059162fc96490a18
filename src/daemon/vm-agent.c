/* SPDX-License-Identifier: MIT */
/* Reaching a VM's guest agent: waiting for it while the guest boots, asking
 * it to power off, and handing its endpoint to clients. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "vm-internal.h"

static int agent_hello_on(int fd, usec_t timeout, AgentClient **ret) {
        AgentClient *c = NULL;
        int r = agent_client_new(fd, &c);
        if (r < 0)
                return r;
        r = agent_client_hello(c, timeout, NULL);
        if (r < 0) {
                agent_client_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

/* Connect to the agent and say hello, retrying until the deadline. */
int vm_agent_wait(VmManager *m, const char *id, const VmmDriver *drv, VmmInstance *inst, usec_t deadline,
                  AgentClient **ret) {
        int last = -ETIMEDOUT;
        while (now_monotonic() < deadline) {
                if (vm_preempt_requested(m, id))
                        return error_setf(-ECANCELED, "the boot was interrupted by a stop, kill or delete");
                if (drv->wait_exit(inst, 0) == 0)
                        return error_setf(-ECHILD, "the VMM exited while the guest was booting");
                usec_t left = deadline - now_monotonic();
                int fd = drv->connect_agent(inst, AGENT_VSOCK_PORT, MIN(left, 2 * USEC_PER_SEC));
                if (fd >= 0) {
                        /* Short hellos, so a stop or kill is noticed within a second or two. */
                        last = agent_hello_on(fd, MIN(left, 2 * USEC_PER_SEC), ret);
                        if (last >= 0)
                                return 0;
                } else
                        last = fd;
                usleep(200 * 1000);
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
        AgentClient *c = NULL;
        int r = agent_hello_on(fd, left_until(deadline, 5 * USEC_PER_SEC), &c);
        if (r < 0)
                return r;
        r = agent_client_poweroff(c, left_until(deadline, 10 * USEC_PER_SEC));
        agent_client_free(c);
        return r;
}

int vm_agent_endpoint(VmManager *m, Store *s, const char *id, char **ret_socket, unsigned *ret_port) {
        _cleanup_(vm_record_done) VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r < 0)
                return r;
        if (vm.state != VM_STATE_RUNNING || !vm.agent_socket)
                return error_setf(-ESRCH, "VM %s is not running", vm.name);
        *ret_socket = strdup(vm.agent_socket);
        *ret_port = vm.vmm == VMM_FIRECRACKER ? AGENT_VSOCK_PORT : 0;
        return *ret_socket ? 0 : -ENOMEM;
}

static int connect_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        const usec_t *timeout = userdata;
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        if (!rt || vm->state != VM_STATE_RUNNING)
                return error_setf(-ESRCH, "VM %s is not running", vm->name);
        return vmm_driver_get(vm->vmm)->connect_agent(&rt->inst, AGENT_VSOCK_PORT, *timeout);
}

int vm_agent_connect(VmManager *m, Store *s, const char *id, usec_t timeout, int *ret_fd) {
        int r = vm_with_lock(m, s, id, 0, connect_locked, &timeout);
        if (r < 0)
                return r;
        *ret_fd = r;
        return 0;
}
