/* SPDX-License-Identifier: MIT */
/* VM operations: create, start, stop, kill, delete, set, and what happens
 * when a VMM exits by itself. Each runs in a worker thread under the VM's
 * lock; every failure releases what the step had taken. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "daemon.h"
#include "rpc-call.h"
#include "error.h"
#include "fs-util.h"
#include "guest-patch.h"
#include "host.h"
#include "log.h"
#include "rootdisk.h"
#include "string-util.h"
#include "tap.h"
#include "tcp-port.h"
#include "vm-internal.h"
#include "workdisk.h"

#define LAUNCH_TIMEOUT (30 * USEC_PER_SEC)
#define SSH_WAIT (5 * USEC_PER_SEC)

/* ---- launch spec ---- */

void vm_launch_spec_done(VmLaunchSpec *s) {
        free(s->run_dir);
        free(s->log_path);
        free(s->kernel);
        free(s->initrd);
        free(s->cmdline);
        free(s->root_img);
        free(s->work_img);
        *s = (VmLaunchSpec){};
}

static int vm_kernel_for(Store *s, const VmRecord *vm, KernelRecord *ret) {
        ImageRecord img = {};
        int r = store_image_get_by_id(s, vm->image_id, &img);
        if (r < 0)
                return error_setf(r, "image of VM %s is gone", vm->name);
        const char *kid = vm->kernel_id ? vm->kernel_id : img.kernel_id;
        if (!kid) {
                image_record_done(&img);
                return error_setf(-ENOENT, "image %s has no kernel; register it with --kernel-ref", img.name);
        }
        r = store_kernel_get_by_id(s, kid, ret);
        image_record_done(&img);
        return r < 0 ? error_setf(r, "kernel of VM %s is gone", vm->name) : 0;
}

int vm_launch_spec_build(VmManager *m, Store *s, const VmRecord *vm, VmLaunchSpec *ret) {
        const BangerConfig *c = &m->d->config;
        VmLaunchSpec sp = {};
        KernelRecord k = {};
        int r = vm_kernel_for(s, vm, &k);
        if (r < 0)
                return r;
        _cleanup_free_ char *dir = vm_state_dir(m, vm->id);
        sp.run_dir = vm_run_dir(m, vm->id);
        sp.log_path = vm_console_log(m, vm->id);
        sp.root_img = dir ? path_join(dir, "root.img") : NULL;
        sp.work_img = dir ? path_join(dir, "work.img") : NULL;
        /* Firecracker boots only an uncompressed ELF. */
        const char *kpath = vm->vmm == VMM_FIRECRACKER ? k.elf_path : k.kernel_path;
        sp.kernel = kpath ? strdup(kpath) : NULL;
        sp.initrd = k.initrd_path ? strdup(k.initrd_path) : NULL;
        if (vm->vmm == VMM_FIRECRACKER && !k.elf_path)
                r = error_setf(-ENOEXEC, "kernel %s has no ELF vmlinux for Firecracker", k.name);
        kernel_record_done(&k);
        if (r < 0 || !sp.run_dir || !sp.log_path || !sp.root_img || !sp.work_img || !sp.kernel) {
                vm_launch_spec_done(&sp);
                return r < 0 ? r : -ENOMEM;
        }
        /* ip= lets guests whose NIC driver is built in configure themselves;
         * the agent reads /etc/banger/network.conf either way. */
        /* The QEMU driver adds its TCG clock hints itself. */
        int n = asprintf(&sp.cmdline, "console=ttyS0 root=/dev/vda rw panic=1%s ip=%s::%s:%s:%s:eth0:off",
                         vm->vmm == VMM_FIRECRACKER ? " reboot=k pci=off" : "", vm->ip ? vm->ip : "0.0.0.0",
                         host_bridge_ip(m->host), host_netmask(m->host), vm->name);
        if (n < 0) {
                vm_launch_spec_done(&sp);
                return -ENOMEM;
        }
        VmmConfig *cfg = &sp.cfg;
        *cfg = (VmmConfig){
                .vm_id = vm->id,
                .run_dir = sp.run_dir,
                .log_path = sp.log_path,
                .binary = vm->vmm == VMM_FIRECRACKER ? c->firecracker_bin : c->qemu_bin,
                .kernel = sp.kernel,
                .initrd = sp.initrd,
                .cmdline = sp.cmdline,
                .vcpus = vm->vcpus,
                .mem_mib = vm->mem_mib,
                .n_drives = 2,
                .vsock_cid = vm->vsock_cid,
                .owner_uid = getuid(),
                .owner_gid = getgid(),
                .jailer = vm->vmm == VMM_FIRECRACKER && c->jailer_enabled,
                .jailer_binary = c->jailer_bin,
                .jailer_chroot_base = c->jailer_chroot_base,
                .jailer_uid = c->jailer_uid,
                .jailer_gid = c->jailer_gid,
        };
        cfg->drives[0] = (VmmDrive){ .id = "rootfs", .path = sp.root_img, .is_root = true };
        cfg->drives[1] = (VmmDrive){ .id = "work", .path = sp.work_img };
        if (vm->tap && vm->mac) {
                cfg->nics[0] = (VmmNic){ .id = "eth0", .tap = vm->tap, .mac = vm->mac };
                cfg->n_nics = 1;
        }
        *ret = sp;
        return 0;
}

/* ---- host resources of one VM ---- */

static int vm_take_tap(VmManager *m, Store *s, const VmRecord *vm) {
        int r = host_bridge_ensure(m->host);
        if (r < 0)
                return r;
        /* Persist the handle before acting: a crash in between is cleaned up
         * by the next start's reconcile. */
        r = store_handle_add(s, vm->id, STORE_HANDLE_TAP, vm->tap, NULL);
        if (r < 0)
                return r;
        r = host_tap_create(m->host, vm->tap);
        if (r < 0) {
                (void) store_handle_remove(s, STORE_HANDLE_TAP, vm->tap);
                return r;
        }
        return 0;
}

/* Release everything a stopped VM does not keep: TAP, NAT entry, sockets. */
void vm_release_host(VmManager *m, Store *s, const VmRecord *vm) {
        if (vm->tap) {
                int r = host_tap_delete(m->host, vm->tap);
                if (r < 0 && r != -ENOENT && r != -ENODEV)
                        log_warning("vm %s: cannot delete TAP %s: %s", vm->name, vm->tap,
                                    error_last_message() ? error_last_message() : strerror(-r));
                else
                        (void) store_handle_remove(s, STORE_HANDLE_TAP, vm->tap);
        }
        if (vm->nat)
                (void) host_nat_sync(m->host, s);
        _cleanup_free_ char *run = vm_run_dir(m, vm->id);
        if (run) {
                static const char *const names[] = {
                        "fc.sock", "v.sock", "fc.pid", "qmp.sock", "agent.sock", "qemu.pid"
                };
                _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, run);
                if (dfd >= 0) {
                        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                                (void) unlinkat(dfd, names[i], 0);
                        char vsock_port[32];
                        snprintf(vsock_port, sizeof(vsock_port), "v.sock_%u", AGENT_VSOCK_PORT);
                        (void) unlinkat(dfd, vsock_port, 0);
                }
                (void) rmdir(run);
        }
}

static void vm_set_runtime(VmRecord *vm, bool agent, bool ssh) {
        json_t *j = json_pack("{s:{s:b, s:b}}", "ready", "agent", agent, "ssh", ssh);
        free(vm->runtime_json);
        vm->runtime_json = json_dumps(j, JSON_COMPACT);
        json_decref(j);
}

/* ---- waiting for the guest ---- */

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
static int vm_agent_wait(VmManager *m, const char *id, const VmmDriver *drv, VmmInstance *inst, usec_t deadline,
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

/* Last lines of the console log, for error replies. */
char *vm_log_tail(VmManager *m, const char *id, size_t max) {
        _cleanup_close_ int fd = vm_console_log_open(m, id);
        if (fd < 0)
                return NULL;
        off_t size = lseek(fd, 0, SEEK_END);
        off_t from = size > (off_t) max ? size - (off_t) max : 0;
        char *buf = calloc(1, max + 1);
        if (!buf)
                return NULL;
        ssize_t n = pread(fd, buf, max, from);
        if (n < 0)
                n = 0;
        buf[n] = '\0';
        /* Start at a line boundary; keep it valid UTF-8-ish for JSON. */
        char *nl = from > 0 ? strchr(buf, '\n') : NULL;
        if (nl)
                memmove(buf, nl + 1, strlen(nl + 1) + 1);
        for (char *p = buf; *p; p++)
                if ((unsigned char) *p >= 0x80 || (*p < 0x20 && *p != '\n' && *p != '\t'))
                        *p = '?';
        return buf;
}

/* ---- start ---- */

static int vm_save(Store *s, VmRecord *vm) {
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

static void vm_mark_stopped(VmManager *m, Store *s, VmRecord *vm);

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

/* ---- stop, kill ---- */

/* The agent syncs and powers the guest off: the primary graceful path. */
static usec_t left_until(usec_t deadline, usec_t cap) {
        usec_t now = now_monotonic();
        return now >= deadline ? 0 : MIN(deadline - now, cap);
}

static int vm_agent_poweroff(const VmmDriver *drv, VmmInstance *inst, usec_t deadline) {
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

static void vm_mark_stopped(VmManager *m, Store *s, VmRecord *vm) {
        vm_runtime_drop(m, vm->id);
        vm->state = VM_STATE_STOPPED;
        vm->pid = 0;
        vm_set_runtime(vm, false, false);
        /* Recorded first: the NAT table is regenerated from the database. */
        (void) vm_save(s, vm);
        vm_release_host(m, s, vm);
}

static int vm_stop_locked(VmManager *m, Store *s, VmRecord *vm, usec_t timeout, bool force) {
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        VmRuntime *rt = vm_runtime_get(m, vm->id, false);
        if (!rt || rt->inst.proc.pidfd < 0) {
                if (vm->state == VM_STATE_RUNNING || vm->state == VM_STATE_STARTING || vm->state == VM_STATE_STOPPING)
                        vm_mark_stopped(m, s, vm);
                return 0;
        }
        vm->state = VM_STATE_STOPPING;
        (void) vm_save(s, vm);
        rt->generation = 0;
        int r = 0;
        if (!force) {
                /* One deadline for the whole stop, the agent's part included. */
                usec_t deadline = now_monotonic() + timeout;
                r = vm_agent_poweroff(drv, &rt->inst, deadline);
                if (r < 0) {
                        log_info("vm %s: agent poweroff failed (%s); asking the VMM", vm->name, strerror(-r));
                        (void) drv->request_shutdown(&rt->inst);
                }
                usec_t now = now_monotonic();
                r = drv->wait_exit(&rt->inst, now < deadline ? deadline - now : 0);
                if (r == -ETIMEDOUT)
                        log_warning("vm %s: did not stop within %llu s; killing it", vm->name,
                                    (unsigned long long) (timeout / USEC_PER_SEC));
        }
        if (force || r < 0)
                (void) drv->kill(&rt->inst);
        vm_mark_stopped(m, s, vm);
        return 0;
}

int vm_op_stop(VmManager *m, Store *s, const char *id, usec_t timeout) {
        VmLock *l = vm_lock_preempt(m, id);
        if (!l)
                return -ENOMEM;
        VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r >= 0)
                r = vm_stop_locked(m, s, &vm, timeout, false);
        vm_record_done(&vm);
        vm_unlock(m, l);
        return r;
}

int vm_op_kill(VmManager *m, Store *s, const char *id, int sig) {
        VmLock *l = sig == SIGKILL ? vm_lock_preempt(m, id) : vm_lock(m, id);
        if (!l)
                return -ENOMEM;
        VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r < 0)
                goto out;
        VmRuntime *rt = vm_runtime_get(m, id, false);
        if (!rt || rt->inst.proc.pidfd < 0) {
                r = error_setf(-ESRCH, "VM %s is not running", vm.name);
                goto out;
        }
        if (sig == SIGKILL) {
                r = vm_stop_locked(m, s, &vm, 0, true);
                goto out;
        }
        const VmmDriver *drv = vmm_driver_get(vm.vmm);
        r = process_signal(&rt->inst.proc, sig);
        if (r < 0)
                goto out;
        /* A fatal signal ends the VMM; a harmless one leaves it running. */
        if (drv->wait_exit(&rt->inst, 5 * USEC_PER_SEC) == 0) {
                rt->generation = 0;
                vm_mark_stopped(m, s, &vm);
        }
out:
        vm_record_done(&vm);
        vm_unlock(m, l);
        return r;
}

/* A watcher saw the VMM exit: the guest powered off, crashed, or someone
 * killed it. Unless an operation already handled it, the VM is stopped. */
void vm_handle_exit(VmManager *m, const char *id, unsigned generation) {
        VmLock *l = vm_lock(m, id);
        if (!l)
                return;
        VmRuntime *rt = vm_runtime_get(m, id, false);
        if (rt && generation != 0 && rt->generation == generation) {
                Store *s = NULL;
                if (vm_manager_open_store(m, &s) >= 0) {
                        VmRecord vm = {};
                        if (store_vm_get_by_id(s, id, &vm) >= 0 && vm.state != VM_STATE_STARTING) {
                                log_info("vm %s: VMM exited; the VM is stopped", vm.name);
                                (void) vmm_driver_get(vm.vmm)->wait_exit(&rt->inst, USEC_PER_SEC);
                                vm_mark_stopped(m, s, &vm);
                        }
                        vm_record_done(&vm);
                        store_close(s);
                }
        }
        vm_unlock(m, l);
}
