/* SPDX-License-Identifier: MIT */
/* Starting a VM, in named steps: mark it starting, take its TAP and NAT
 * entry, launch its VMM, boot and wait for the agent, mark it running. Each
 * step that takes something records its undo: a failure kills the VMM,
 * records the VM as in error with the reason (stopped when a stop, kill or
 * delete interrupted the boot, or the operation was cancelled: between
 * steps and in the boot wait), and releases what it held. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "operation.h"
#include "string-util.h"
#include "tcp-port.h"
#include "undo.h"
#include "vm-internal.h"

#define LAUNCH_TIMEOUT (30 * USEC_PER_SEC)
#define AGENT_QUERY_TIMEOUT (10 * USEC_PER_SEC)
#define SSH_WAIT (5 * USEC_PER_SEC)
#define RESTORE_AGENT_ATTEMPTS 3
#define WORK_DISK_POLL (500 * USEC_PER_MSEC)

typedef struct Start {
        VmManager *m;
        Store *s;
        VmRecord *vm;
        VmProgress *p;
        const VmRestore *restore; /* NULL: a cold boot */
        const VmmDriver *drv;
        VmRuntime *rt;
        const char *stage; /* the failure's reason names it */
        int failure;
        char why[1024];
        bool ssh_listening;
        bool agent_outdated;  /* a protocol-1 agent answered: the VM runs, exec and cp are refused */
        VmForwards *forwards; /* bound before the launch, served once the mux runs */
        UndoStack undo;
} Start;

static void start_done(Start *t) {
        vm_forwards_free(t->forwards);
        undo_stack_done(&t->undo);
}

int vm_save(Store *s, VmRecord *vm) {
        int r = store_vm_update(s, vm);
        if (r < 0)
                log_warning("cannot record VM %s: %s", vm->name,
                            error_last_message() ? error_last_message() : strerror(-r));
        return r;
}

void vm_set_runtime(VmRecord *vm, bool agent, bool ssh) {
        json_t *j = json_pack("{s:{s:b, s:b}}", "ready", "agent", agent, "ssh", ssh);
        free(vm->runtime_json);
        vm->runtime_json = json_dumps(j, JSON_COMPACT);
        json_decref(j);
}

/* Undo of the whole start: record how it ended (recorded first: the NAT
 * table is regenerated from the database), then free the host resources. */
static int undo_started(const char *id, void *data) {
        Start *t = data;
        VmRecord *vm = t->vm;
        if (t->failure == -ECANCELED) {
                /* Stopped on request while booting: stopped, not an error. */
                vm_mark_stopped(t->m, t->s, vm);
                return 0;
        }
        free(vm->last_error);
        vm->last_error = strdup(t->why);
        vm->state = VM_STATE_ERROR;
        vm->pid = 0;
        vm_set_runtime(vm, false, false);
        (void) vm_save(t->s, vm);
        vm_release_host(t->m, t->s, vm);
        log_warning("vm %s: %s", vm->name, t->why);
        return 0;
}

static int step_begin(Start *t) {
        VmRecord *vm = t->vm;
        vm->state = VM_STATE_STARTING;
        free(vm->last_error);
        vm->last_error = NULL;
        int r = vm_save(t->s, vm);
        return r < 0 ? r : undo_push(&t->undo, "start", vm->id, undo_started, t, NULL);
}

static int step_network(Start *t) {
        VmRecord *vm = t->vm;
        t->stage = "network";
        vm_progress(t->p, vm->id, "network", "TAP %s on the bridge, %s", vm->tap, vm->ip);
        int r = vm_take_tap(t->m, t->s, vm);
        if (r < 0 || !vm->nat)
                return r;
        t->stage = "nat";
        return host_nat_sync(t->m->host, t->s);
}

/* Undo of a launch: kill the VMM; the exit is not news to its watcher. */
static int undo_launched(const char *id, void *data) {
        Start *t = data;
        t->rt->generation = 0;
        (void) t->drv->kill(&t->rt->inst);
        /* A stop, kill or delete that interrupted the boot takes the
         * runtime over; after a failure or a cancel nobody else will. */
        if (t->failure != -ECANCELED || !vm_preempt_requested(t->m, id))
                vm_runtime_drop(t->m, id);
        return 0;
}

static void record_launch(Start *t) {
        VmRecord *vm = t->vm;
        VmmInstance *inst = &t->rt->inst;
        t->rt->generation = ++t->m->next_generation;
        vm->pid = inst->proc.pid;
        free(vm->api_socket);
        vm->api_socket = inst->api_socket ? strdup(inst->api_socket) : NULL;
        free(vm->agent_socket);
        vm->agent_socket = inst->agent_socket ? strdup(inst->agent_socket) : NULL;
        free(vm->run_dir);
        vm->run_dir = vm_run_dir(t->m, vm->id);
        (void) vm_save(t->s, vm);
}

static int step_launch(Start *t) {
        VmRecord *vm = t->vm;
        t->stage = "prepare";
        VmLaunchSpec spec = {};
        int r = vm_launch_spec_build(t->m, t->s, vm, &spec);
        if (r < 0)
                return r;
        t->rt = vm_runtime_get(t->m, vm->id, true);
        if (!t->rt) {
                vm_launch_spec_done(&spec);
                return -ENOMEM;
        }
        vmm_instance_done(&t->rt->inst);
        t->stage = "launch";
        vm_progress(t->p, vm->id, "launch", "%s: %u vCPU, %llu MiB", t->drv->name, vm->vcpus,
                    (unsigned long long) vm->mem_mib);
        if (t->restore) {
                t->stage = "restore";
                vm_restore_configure(t->restore, &spec.cfg, t->p, vm->id);
        }
        r = t->drv->launch(&spec.cfg, LAUNCH_TIMEOUT, &t->rt->inst);
        vm_launch_spec_done(&spec);
        if (r < 0) {
                vm_runtime_drop(t->m, vm->id);
                return r;
        }
        record_launch(t);
        return undo_push(&t->undo, "vmm", vm->id, undo_launched, t, NULL);
}

/* The work disk the guest's fstab names is mounted before the VM is ready:
 * under emulation its device may appear late, so ask again (the guest gives
 * no event for it) until the boot deadline, then fail saying so. */
static int wait_work_disk(Start *t, AgentClient *agent, AgentHealth *h, usec_t deadline) {
        VmRecord *vm = t->vm;
        if (!h->work_disk_device || h->work_disk_mounted)
                return 0;
        const char *was = t->stage;
        t->stage = "work disk";
        _cleanup_free_ char *dev = printable_strndup(h->work_disk_device, MIN(strlen(h->work_disk_device), 64U));
        _cleanup_free_ char *mnt = printable_strndup(h->work_disk_mount, MIN(strlen(h->work_disk_mount), 128U));
        if (!dev || !mnt)
                return -ENOMEM;
        vm_progress(t->p, vm->id, "agent", "waiting for the work disk %s on %s", dev, mnt);
        while (!h->work_disk_mounted) {
                if (now_monotonic() >= deadline)
                        return error_setf(-ETIMEDOUT,
                                          "%s is not mounted on %s (boot_timeout_sec %u passed); 'banger vm logs %s' "
                                          "shows why",
                                          dev, mnt, t->m->d->config.boot_timeout_sec, vm->name);
                int r = vm_boot_wait_retry(t->m, vm->id, t->drv, &t->rt->inst,
                                           MIN(deadline, now_monotonic() + WORK_DISK_POLL));
                if (r < 0)
                        return r;
                agent_health_done(h);
                if ((r = agent_client_health(agent, AGENT_QUERY_TIMEOUT, h)) < 0)
                        return r;
        }
        t->stage = was;
        return 0;
}

/* Health (boot id), the work disk, and whether sshd listens yet: asked of
 * the guest; only the work disk is waited for. */
static int ask_agent(Start *t, AgentClient *agent, usec_t deadline) {
        VmRecord *vm = t->vm;
        _cleanup_(agent_health_done) AgentHealth h = {};
        int r = agent_client_health(agent, AGENT_QUERY_TIMEOUT, &h);
        if (r >= 0)
                r = wait_work_disk(t, agent, &h, deadline);
        if (r < 0)
                return r;
        AgentPort *ports = NULL;
        size_t n_ports = 0;
        if (agent_client_ports(agent, AGENT_QUERY_TIMEOUT, &ports, &n_ports) >= 0)
                for (size_t i = 0; i < n_ports; i++)
                        t->ssh_listening = t->ssh_listening || ports[i].port == 22;
        agent_ports_free(ports, n_ports);
        free(vm->boot_id);
        vm->boot_id = h.boot_id ? strdup(h.boot_id) : NULL;
        vm_progress(t->p, vm->id, "agent", "agent %s ready, boot id %s, guest uptime %.1f s",
                    h.agent_version ? h.agent_version : "?", vm->boot_id ? vm->boot_id : "?", h.uptime_sec);
        return 0;
}

/* A restored guest's agent may answer from the session it had when the
 * snapshot was taken, then notice its host went away and start anew: what
 * ran on the old session is asked again of the new one. */
static int restored_agent(Start *t, AgentClient **agent, usec_t deadline) {
        for (unsigned attempt = 1;; attempt++) {
                t->stage = "identity";
                int r = vm_restore_reidentify(t->m, t->vm, t->restore, *agent, t->p);
                if (r >= 0) {
                        t->stage = "agent";
                        r = ask_agent(t, *agent, deadline);
                }
                if ((r != -ECONNRESET && r != -ENOTCONN) || attempt >= RESTORE_AGENT_ATTEMPTS)
                        return r;
                vm_progress(t->p, t->vm->id, "agent", "the guest agent started a new session after the restore");
                *agent = agent_client_free(*agent);
                r = vm_agent_wait(t->m, t->vm->id, t->drv, &t->rt->inst, deadline, agent);
                if (r < 0)
                        return r;
        }
}

static int step_boot(Start *t) {
        VmRecord *vm = t->vm;
        t->stage = "boot";
        int r = t->drv->start(&t->rt->inst);
        if (r < 0)
                return r;
        vm_watch(t->m, vm->id, t->rt);
        r = vm_agent_start(t->m, vm, t->rt);
        if (r >= 0) {
                t->stage = "port forwards";
                r = vm_forwards_attach(t->m, vm, t->rt, TAKE_PTR(t->forwards));
                t->stage = "boot";
        }
        if (r < 0)
                return r;
        vm_progress(t->p, vm->id, "boot",
                    t->restore ? "resumed; waiting for the guest agent" : "waiting for the guest agent");
        _cleanup_(agent_client_freep) AgentClient *agent = NULL;
        usec_t deadline = now_monotonic() + t->m->d->config.boot_timeout_sec * USEC_PER_SEC;
        r = vm_agent_wait(t->m, vm->id, t->drv, &t->rt->inst, deadline, &agent);
        if (r == -EPROTONOSUPPORT) {
                /* The guest is up; what needs its agent is refused by name. */
                vm_progress(t->p, vm->id, "agent", "%s", error_last_message() ? error_last_message() : "outdated");
                t->agent_outdated = true;
                return 0;
        }
        if (r >= 0 && t->restore)
                return restored_agent(t, &agent, deadline);
        return r < 0 ? r : ask_agent(t, agent, deadline);
}

static void step_running(Start *t) {
        VmRecord *vm = t->vm;
        undo_commit(&t->undo);
        vm->state = VM_STATE_RUNNING;
        vm_set_runtime(vm, !t->agent_outdated, false);
        (void) vm_save(t->s, vm);
        bool ssh = (t->ssh_listening || t->agent_outdated) &&
                   tcp_port_open(vm->ip, 22, now_monotonic() + SSH_WAIT, t->rt->inst.proc.pidfd) > 0;
        vm_set_runtime(vm, !t->agent_outdated, ssh);
        (void) vm_save(t->s, vm);
        vm_idle_kick(t->m);
        vm_progress(t->p, vm->id, "ready", "%s.vm (%s)%s", vm->name, vm->ip,
                    ssh ? ", ssh open"
                        : ", sshd not listening yet ('banger vm exec' works now; 'banger vm ssh' waits for sshd)");
}

/* Undo what the start took, keeping the reason. */
static int start_fail(Start *t, int r) {
        const char *msg = error_last_message() ? error_last_message() : strerror(-r);
        if (r == -ECANCELED || !t->stage)
                snprintf(t->why, sizeof(t->why), "%s", msg);
        else
                snprintf(t->why, sizeof(t->why), "%s: %s", t->stage, msg);
        t->failure = r;
        (void) undo_run(&t->undo);
        return error_setf(r, "%s", t->why);
}

int vm_start_locked(VmManager *m, Store *s, VmRecord *vm, VmProgress *p) {
        if (vm->state == VM_STATE_SUSPENDED)
                return vm_resume_locked(m, s, vm, p);
        return vm_start_restore_locked(m, s, vm, NULL, p);
}

int vm_start_restore_locked(VmManager *m, Store *s, VmRecord *vm, const VmRestore *restore, VmProgress *p) {
        _cleanup_(start_done)
                Start t = { .m = m, .s = s, .vm = vm, .p = p, .restore = restore, .drv = vmm_driver_get(vm->vmm) };
        if (!t.drv)
                return error_setf(-EINVAL, "unknown VMM for VM %s", vm->name);
        if (vm->state == VM_STATE_RUNNING)
                return 1; /* nothing to do: the caller says "already running" */
        if (vm->state == VM_STATE_PAUSED)
                return error_setf(-EBUSY, "VM %s is paused; resume it with 'banger vm resume %s'", vm->name, vm->name);
        if (vm->state == VM_STATE_STARTING || vm->state == VM_STATE_STOPPING)
                return error_setf(-EBUSY, "vm %s is %s", vm->name, vm_state_to_string(vm->state));
        /* Before anything changes: a VM too big for this host stays as it was. */
        int r = vm_size_fits_host(vm);
        /* Host ports first: one that is taken leaves the VM as it was. */
        if (r >= 0 && vm->state == VM_STATE_SUSPENDED)
                r = vm_wake_take_forwards(m, vm->id, &t.forwards); /* bound while it slept */
        if (r >= 0 && !t.forwards)
                r = vm_forwards_open(m, s, vm, true, &t.forwards);
        if (r >= 0 && vm->state == VM_STATE_SUSPENDED && !(restore && restore->suspended))
                vm_suspend_remove_files(m, vm->id); /* another start than its resume: a snapshot restored */
        if (r >= 0)
                r = operation_check();
        if (r >= 0)
                r = step_begin(&t);
        if (r >= 0)
                r = step_network(&t);
        if (r >= 0)
                r = operation_check();
        if (r >= 0)
                r = step_launch(&t);
        if (r >= 0)
                r = operation_check();
        if (r >= 0)
                r = step_boot(&t);
        if (r < 0)
                return start_fail(&t, r);
        step_running(&t);
        return 0;
}

static int start_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        return vm_start_locked(m, s, vm, userdata);
}

int vm_op_start(VmManager *m, Store *s, const char *id, VmProgress *p) {
        return vm_with_lock(m, s, id, 0, start_locked, p);
}
