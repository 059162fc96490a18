/* SPDX-License-Identifier: MIT */
/* Reaching a VM's guest agent. The agent transport of a running VM belongs
 * to one multiplexer (src/shared/rpc/agent-mux.h, on a thread and loop of its
 * own), started with the VM or when the daemon re-attaches to it and stopped
 * when its runtime goes: it holds the transport for the VM's life and serves
 * it on <run dir>/agent-mux.sock (0600), where every client connection gets
 * its own streams. The boot wait, poweroff, ports and stats here are clients
 * like the CLI's exec and cp (vm.agent hands out the socket). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-mux.h"
#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "socket-util.h"
#include "vm-internal.h"

#define AGENT_RETRY (100 * USEC_PER_MSEC)
#define AGENT_MUX_SOCKET "agent-mux.sock"

struct VmAgent {
        AgentMuxThread *mux;
        VmmInstance target; /* a copy: only what connect_agent() reads */
};

char *vm_agent_mux_path(VmManager *m, const char *id) {
        _cleanup_free_ char *run = vm_run_dir(m, id);
        return run ? path_join(run, AGENT_MUX_SOCKET) : NULL;
}

/* Runs in the mux's helper thread. */
static int connect_target(void *userdata, usec_t timeout) {
        VmAgent *a = userdata;
        const VmmDriver *drv = vmm_driver_get(a->target.kind);
        return drv ? drv->connect_agent(&a->target, AGENT_VSOCK_PORT, timeout) : -EINVAL;
}

void vm_agent_stop(VmAgent *a) {
        if (!a)
                return;
        agent_mux_thread_stop(a->mux);
        vmm_instance_done(&a->target);
        free(a);
}

/* rt->agent changes under m->lock: vm_runtime_usage() reads it there. */
static void set_agent(VmManager *m, VmRuntime *rt, VmAgent *a) {
        pthread_mutex_lock(&m->lock);
        VmAgent *old = rt->agent;
        rt->agent = a;
        pthread_mutex_unlock(&m->lock);
        vm_agent_stop(old);
}

void vm_agent_usage(VmAgent *a, unsigned *ret_clients, usec_t *ret_last) {
        agent_mux_thread_usage(a->mux, ret_clients, ret_last);
}

int vm_agent_start(VmManager *m, const VmRecord *vm, VmRuntime *rt) {
        set_agent(m, rt, NULL);
        _cleanup_free_ char *path = vm_agent_mux_path(m, vm->id);
        VmAgent *a = calloc(1, sizeof(*a));
        if (!path || !a) {
                free(a);
                return -ENOMEM;
        }
        a->target = (VmmInstance){ .kind = rt->inst.kind,
                                   .proc = PROCESS_NULL,
                                   .agent_socket = rt->inst.agent_socket ? strdup(rt->inst.agent_socket) : NULL,
                                   .agent_needs_handshake = rt->inst.agent_needs_handshake };
        int r = a->target.agent_socket ? unix_socket_path_check(path) : -EINVAL;
        AgentMuxOptions o = { .socket_path = path, .name = vm->name, .connect = connect_target, .userdata = a };
        if (r >= 0)
                r = agent_mux_thread_start(&o, &a->mux);
        if (r < 0) {
                vm_agent_stop(a);
                return error_setf(r, "cannot serve the guest agent of vm %s on %s: %s", vm->name, path,
                                  error_last_message() ? error_last_message() : strerror(-r));
        }
        set_agent(m, rt, a);
        return 0;
}

/* A connection to the VM's multiplexer. */
static int connect_mux(VmManager *m, const char *id) {
        _cleanup_free_ char *path = vm_agent_mux_path(m, id);
        return path ? unix_connect(path, 0) : -ENOMEM;
}

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

/* Before the next attempt: wait for the VMM to exit, a stop, kill or
 * delete, or the operation's cancel, at most until `until`. 0 to try
 * again, or why not. */
int vm_boot_wait_retry(VmManager *m, const char *id, const VmmDriver *drv, VmmInstance *inst, usec_t until) {
        struct pollfd p[2] = { { .fd = inst->proc.pidfd, .events = POLLIN },
                               { .fd = vm_preempt_fd(m, id), .events = POLLIN } };
        int n;
        while ((n = poll(p, 2, deadline_poll_ms(until))) < 0 && errno == EINTR)
                ;
        if (vm_preempt_requested(m, id))
                return error_setf(-ECANCELED, "the boot was interrupted by a stop, kill or delete");
        if (vm_cancel_requested(m, id))
                return error_setf(-ECANCELED, "cancelled");
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
                /* The multiplexer keeps trying to reach the agent; the hello
                 * is answered as soon as the guest has it running. */
                int fd = connect_mux(m, id);
                last = fd < 0 ? fd : agent_session(m, id, true, fd, deadline - now, ret);
                if (last >= 0 || last == -EPROTONOSUPPORT)
                        return last;
                int r = vm_boot_wait_retry(m, id, drv, inst, MIN(deadline, now_monotonic() + AGENT_RETRY));
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

int vm_agent_poweroff(VmManager *m, const char *id, usec_t deadline) {
        int fd = connect_mux(m, id);
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
        if (vm.state != VM_STATE_RUNNING)
                return error_setf(-ESRCH, "vm %s is not running", vm.name);
        /* The multiplexer's socket: the agent transport itself stays ours. */
        *ret_socket = vm_agent_mux_path(m, vm.id);
        *ret_port = 0;
        return *ret_socket ? 0 : -ENOMEM;
}

int vm_agent_open(VmManager *m, Store *s, const char *id, usec_t timeout, AgentClient **ret) {
        _cleanup_(vm_record_done) VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r >= 0 && vm.state != VM_STATE_RUNNING)
                r = error_setf(-ESRCH, "vm %s is not running", vm.name);
        int fd = r < 0 ? r : connect_mux(m, id);
        if (fd < 0)
                return fd;
        r = agent_session(m, id, false, fd, timeout, ret);
        if (r == -EPROTONOSUPPORT)
                return r; /* a protocol-1 agent: the message says what to do */
        return r < 0 ? error_setf(r, "the guest agent does not answer: %s", strerror(-r)) : 0;
}
