/* SPDX-License-Identifier: MIT */
/* Starting a VM: TAP, NAT, launch, boot, wait for the agent; a failure
 * leaves the VM in state error with the reason and nothing held. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "tcp-port.h"
#include "vm-internal.h"

#define LAUNCH_TIMEOUT (30 * USEC_PER_SEC)
#define SSH_WAIT (5 * USEC_PER_SEC)

int vm_save(Store *s, VmRecord *vm) {
        int r = store_vm_update(s, vm);
        if (r < 0)
                log_warning("cannot record VM %s: %s", vm->name,
                            error_last_message() ? error_last_message() : strerror(-r));
        return r;
}

/* Record a failed start: state error with the reason; host resources freed. */
static int vm_fail(VmManager *m, Store *s, VmRecord *vm, int r, const char *stage) {
        char why[1024];
        snprintf(why, sizeof(why), "%s: %s", stage, error_last_message() ? error_last_message() : strerror(-r));
        free(vm->last_error);
        vm->last_error = strdup(why);
        vm->state = VM_STATE_ERROR;
        vm->pid = 0;
        vm_set_runtime(vm, false, false);
        /* Recorded first: the NAT table is regenerated from the database. */
        (void) vm_save(s, vm);
        vm_release_host(m, s, vm);
        log_warning("vm %s: %s", vm->name, why);
        return error_setf(r, "%s", why);
}

void vm_set_runtime(VmRecord *vm, bool agent, bool ssh) {
        json_t *j = json_pack("{s:{s:b, s:b}}", "ready", "agent", agent, "ssh", ssh);
        free(vm->runtime_json);
        vm->runtime_json = json_dumps(j, JSON_COMPACT);
        json_decref(j);
}

int vm_start_locked(VmManager *m, Store *s, VmRecord *vm, VmProgress *p) {
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        if (!drv)
                return error_setf(-EINVAL, "unknown VMM for VM %s", vm->name);
        if (vm->state == VM_STATE_RUNNING)
                return 0;
        if (vm->state == VM_STATE_STARTING || vm->state == VM_STATE_STOPPING)
                return error_setf(-EBUSY, "VM %s is %s", vm->name, vm_state_to_string(vm->state));

        vm->state = VM_STATE_STARTING;
        free(vm->last_error);
        vm->last_error = NULL;
        int r = vm_save(s, vm);
        if (r < 0)
                return r;

        vm_progress(p, vm->id, "network", "TAP %s on the bridge, %s", vm->tap, vm->ip);
        r = vm_take_tap(m, s, vm);
        if (r < 0)
                return vm_fail(m, s, vm, r, "network");
        if (vm->nat) {
                r = host_nat_sync(m->host, s);
                if (r < 0)
                        return vm_fail(m, s, vm, r, "nat");
        }

        VmLaunchSpec spec = {};
        r = vm_launch_spec_build(m, s, vm, &spec);
        if (r < 0)
                return vm_fail(m, s, vm, r, "prepare");
        VmRuntime *rt = vm_runtime_get(m, vm->id, true);
        if (!rt) {
                vm_launch_spec_done(&spec);
                return vm_fail(m, s, vm, -ENOMEM, "prepare");
        }
        vmm_instance_done(&rt->inst);
        vm_progress(p, vm->id, "launch", "%s: %u vCPU, %llu MiB", drv->name, vm->vcpus,
                    (unsigned long long) vm->mem_mib);
        r = drv->launch(&spec.cfg, LAUNCH_TIMEOUT, &rt->inst);
        vm_launch_spec_done(&spec);
        if (r < 0) {
                vm_runtime_drop(m, vm->id);
                return vm_fail(m, s, vm, r, "launch");
        }
        rt->generation = ++m->next_generation;
        vm->pid = rt->inst.proc.pid;
        free(vm->api_socket);
        vm->api_socket = rt->inst.api_socket ? strdup(rt->inst.api_socket) : NULL;
        free(vm->agent_socket);
        vm->agent_socket = rt->inst.agent_socket ? strdup(rt->inst.agent_socket) : NULL;
        free(vm->run_dir);
        vm->run_dir = vm_run_dir(m, vm->id);
        (void) vm_save(s, vm);

        r = drv->start(&rt->inst);
        if (r < 0)
                goto kill;
        vm_watch(m, vm->id, rt);

        vm_progress(p, vm->id, "boot", "waiting for the guest agent");
        AgentClient *agent = NULL;
        r = vm_agent_wait(m, vm->id, drv, &rt->inst, now_monotonic() + m->d->config.boot_timeout_sec * USEC_PER_SEC,
                          &agent);
        if (r < 0)
                goto kill;
        AgentHealth h = {};
        r = agent_client_health(agent, 10 * USEC_PER_SEC, &h);
        /* Whether sshd listens yet: asked of the guest, not waited for. */
        bool ssh_listening = false;
        AgentPort *ports = NULL;
        size_t n_ports = 0;
        if (r >= 0 && agent_client_ports(agent, 10 * USEC_PER_SEC, &ports, &n_ports) >= 0)
                for (size_t i = 0; i < n_ports; i++)
                        ssh_listening = ssh_listening || ports[i].port == 22;
        agent_ports_free(ports, n_ports);
        agent_client_free(agent);
        if (r < 0)
                goto kill;
        free(vm->boot_id);
        vm->boot_id = h.boot_id ? strdup(h.boot_id) : NULL;
        vm_progress(p, vm->id, "agent", "agent %s ready, boot id %s, guest uptime %.1f s",
                    h.agent_version ? h.agent_version : "?", vm->boot_id ? vm->boot_id : "?", h.uptime_sec);
        agent_health_done(&h);

        vm->state = VM_STATE_RUNNING;
        vm_set_runtime(vm, true, false);
        (void) vm_save(s, vm);
        bool ssh = ssh_listening && tcp_port_open(vm->ip, 22, now_monotonic() + SSH_WAIT, rt->inst.proc.pidfd) > 0;
        vm_set_runtime(vm, true, ssh);
        (void) vm_save(s, vm);
        vm_progress(p, vm->id, "ready", "%s.vm (%s)%s", vm->name, vm->ip,
                    ssh ? ", ssh open" : ", sshd not listening yet");
        return 0;

kill:;
        char why[1024];
        snprintf(why, sizeof(why), "%s", error_last_message() ? error_last_message() : strerror(-r));
        rt->generation = 0; /* the watcher must not treat this exit as news */
        (void) drv->kill(&rt->inst);
        if (r == -ECANCELED) {
                /* Stopped on request while booting: stopped, not an error. */
                vm_mark_stopped(m, s, vm);
                return error_setf(r, "%s", why);
        }
        vm_runtime_drop(m, vm->id);
        error_setf(r, "%s", why);
        return vm_fail(m, s, vm, r, "boot");
}

int vm_op_start(VmManager *m, Store *s, const char *id, VmProgress *p) {
        VmLock *l = vm_lock(m, id);
        if (!l)
                return -ENOMEM;
        VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r >= 0)
                r = vm_start_locked(m, s, &vm, p);
        vm_record_done(&vm);
        vm_unlock(m, l);
        return r;
}
