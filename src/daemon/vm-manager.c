/* SPDX-License-Identifier: MIT */
/* The VM service as a whole: set up and shut down, its SSH key, the default
 * VMM, paths, progress, VM references and the VM object of the protocol.
 * The operations are in vm-*.c, named for what they do. */
#include "vm-manager.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "rpc-call.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "host.h"
#include "log.h"
#include "operation.h"
#include "path-beneath.h"
#include "qemu.h"
#include "spawn.h"
#include "string-util.h"
#include "vm-internal.h"

void vm_progress(VmProgress *p, const char *vm_id, const char *stage, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_info("vm %s: %s: %s", vm_id ? vm_id : "-", stage, msg);
        if (!p || !p->call) { /* nobody listens (vm.start, vm.suspend): the operations list still shows it */
                operation_set_progress(operation_current(), stage, msg, 0, 0);
                return;
        }
        json_int_t ms = (json_int_t) ((now_monotonic() - p->started) / USEC_PER_MSEC);
        rpc_call_notify(
                p->call, "progress",
                json_pack("{s:s?, s:s, s:s, s:I}", "vm", vm_id, "stage", stage, "message", msg, "elapsed_ms", ms));
}

/* ---- paths ---- */

char *vm_state_dir(VmManager *m, const char *id) {
        char *p = NULL;
        return asprintf(&p, "%s/vms/%s", m->d->paths.state_dir, id) < 0 ? NULL : p;
}

char *vm_console_log(VmManager *m, const char *id) {
        char *p = NULL;
        return asprintf(&p, "%s/vms/%s/console.log", m->d->paths.state_dir, id) < 0 ? NULL : p;
}

static int vm_dir_parent(VmManager *m, VmDir where) {
        return open_dir_nofollow(where == VM_DIR_RUNTIME ? m->d->runtime_dir_fd : m->d->state_dir_fd, "vms");
}

int vm_dir_open(VmManager *m, VmDir where, const char *id, bool create) {
        _cleanup_close_ int vfd = vm_dir_parent(m, where);
        int r = vfd < 0 || !create ? vfd : mkdirat_private(vfd, id, 0700);
        return r < 0 ? r : open_dir_nofollow(vfd, id);
}

int vm_dir_remove(VmManager *m, VmDir where, const char *id) {
        _cleanup_close_ int vfd = vm_dir_parent(m, where);
        if (vfd < 0)
                return vfd;
        if (where == VM_DIR_RUNTIME)
                return rm_rf_at(vfd, id);
        return unlinkat(vfd, id, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0;
}

char *vm_run_dir(VmManager *m, const char *id) {
        char *p = NULL;
        return asprintf(&p, "%s/vms/%s", m->d->paths.runtime_dir, id) < 0 ? NULL : p;
}

const char *vm_manager_ssh_key(VmManager *m) {
        return m->ssh_key;
}

const char *vm_manager_known_hosts(VmManager *m) {
        return m->known_hosts;
}

bool vm_manager_names_resolve(VmManager *m) {
        return m->host && host_vm_names_resolve(m->host);
}

/* ---- resolution and JSON ---- */

static int ambiguous(const char *ref, const VmRecord *list, size_t n) {
        char buf[768] = "";
        for (size_t i = 0; i < n && strlen(buf) < 600; i++) {
                strcat(buf, i ? ", " : "");
                strncat(buf, list[i].id, 40);
                strcat(buf, " (");
                strncat(buf, list[i].name, 64);
                strcat(buf, ")");
        }
        return error_setf(-ENOTUNIQ, "vm id prefix '%s' is ambiguous: %s", ref, buf);
}

/* The one VM whose id starts with ref. */
static int resolve_prefix(Store *s, const char *ref, VmRecord *ret) {
        VmRecord *list = NULL;
        size_t n = 0;
        int r = store_vm_find_by_prefix(s, ref, &list, &n);
        if (r >= 0 && n == 0)
                r = error_setf(-ENOENT, "no VM named or with id prefix '%s'", ref);
        else if (r >= 0 && n > 1)
                r = ambiguous(ref, list, n);
        else if (r >= 0) {
                *ret = list[0];
                list[0] = (VmRecord){};
        }
        vm_record_array_free(list, n);
        return r;
}

int vm_resolve(Store *s, const char *ref, VmRecord *ret) {
        if (!ref || !*ref || strlen(ref) > 64)
                return error_setf(-EINVAL, "invalid VM reference");
        int r = store_vm_get_by_name(s, ref, ret);
        if (r == -ENOENT)
                r = store_vm_get_by_id(s, ref, ret);
        return r == -ENOENT || r == -EINVAL ? resolve_prefix(s, ref, ret) : r;
}

/* Record text may hold what a guest said: a string that is not valid UTF-8
 * is shown escaped rather than failing the whole record. */
static json_t *json_str_or_null(const char *s) {
        if (!s || !*s)
                return json_null();
        if (utf8_is_valid_n(s, strlen(s)))
                return json_string(s);
        _cleanup_free_ char *p = printable_strndup(s, strlen(s));
        return p ? json_string(p) : NULL;
}

static json_t *timestamp_json(usec_t t) {
        char buf[40];
        return t ? json_string(format_timestamp(buf, sizeof(buf), t)) : json_null();
}

json_t *vm_to_json(VmManager *m, Store *s, const VmRecord *vm) {
        _cleanup_(image_record_done) ImageRecord img = {};
        const char *image_name = vm->image_id;
        if (store_image_get_by_id(s, vm->image_id, &img) >= 0)
                image_name = img.name;
        return vm_to_json_image(m, vm, image_name);
}

/* The VM's idle settings as given (null: the config's) and in effect, and
 * when it was last used. */
static void vm_idle_json(VmManager *m, const VmRecord *vm, json_t *j) {
        const BangerConfig *c = &m->d->config;
        int64_t own = vm->idle_timeout_sec == VM_IDLE_TIMEOUT_OFF ? 0 : vm->idle_timeout_sec;
        int64_t eff = vm->idle_timeout_sec == 0 ? (int64_t) c->idle_timeout_sec : own;
        const char *action = vm_idle_action_to_string(vm->idle_action);
        const char *eff_action = action ? action : c->idle_action == CONFIG_IDLE_SUSPEND ? "suspend" : "stop";
        json_t *idle = json_object();
        if (idle) {
                json_object_set_new_nocheck(idle, "timeout_sec", json_integer((json_int_t) eff));
                json_object_set_new_nocheck(idle, "action", json_string(eff_action));
        }
        json_object_set_new_nocheck(j, "idle_timeout_sec", vm->idle_timeout_sec ? json_integer(own) : json_null());
        json_object_set_new_nocheck(j, "idle_action", action ? json_string(action) : json_null());
        json_object_set_new_nocheck(j, "idle", idle);
        json_object_set_new_nocheck(j, "last_used_at", timestamp_json(vm_last_used(m, vm)));
}

static json_t *vm_ready_json(const VmRecord *vm) {
        bool running = vm->state == VM_STATE_RUNNING;
        /* Only a running VM's readiness is shown: no parse for the others. */
        json_t *runtime = running && vm->runtime_json ? json_loads(vm->runtime_json, 0, NULL) : NULL;
        json_t *ready = json_object_get(runtime, "ready"), *j = json_object();
        json_object_set_new_nocheck(j, "vmm", json_boolean(running));
        json_object_set_new_nocheck(j, "agent", json_boolean(json_is_true(json_object_get(ready, "agent"))));
        json_object_set_new_nocheck(j, "ssh", json_boolean(json_is_true(json_object_get(ready, "ssh"))));
        json_decref(runtime);
        return j;
}

/* Field by field rather than json_pack: vm.list builds hundreds of these,
 * and parsing the format string was a good part of it. A field that cannot
 * be made (no memory) fails the whole record. */
static json_t *vm_record_json(const VmRecord *vm, const char *image_name, const char *log) {
        bool live = vm->state == VM_STATE_RUNNING || vm->state == VM_STATE_PAUSED;
        char dns[80];
        snprintf(dns, sizeof(dns), "%s.vm", vm->name);
        json_auto_t *j = json_object();
        const struct {
                const char *key;
                json_t *value;
        } f[] = {
                { "id", json_string(vm->id) },
                { "name", json_string(vm->name) },
                { "state", json_string(vm_state_to_string(vm->state)) },
                { "last_error", json_str_or_null(vm->last_error) },
                { "image", json_string(image_name ? image_name : "") },
                { "vmm", json_string(vmm_kind_to_string(vm->vmm)) },
                { "vcpu", json_integer(vm->vcpus) },
                { "memory_mib", json_integer((json_int_t) vm->mem_mib) },
                { "disk_bytes", json_integer((json_int_t) vm->disk_bytes) },
                { "nat", json_boolean(vm->nat) },
                { "ip", json_str_or_null(vm->ip) },
                { "mac", json_str_or_null(vm->mac) },
                { "tap", json_str_or_null(vm->tap) },
                { "dns_name", json_string(dns) },
                { "pid", live && vm->pid > 0 ? json_integer(vm->pid) : json_null() },
                { "boot_id", json_str_or_null(vm->boot_id) },
                { "ready", vm_ready_json(vm) },
                { "created_at", timestamp_json(vm->created_at) },
                { "updated_at", timestamp_json(vm->updated_at) },
        };
        bool ok = j != NULL;
        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                if (!f[i].value)
                        ok = false;
                else if (!ok)
                        json_decref(f[i].value);
                else if (json_object_set_new_nocheck(j, f[i].key, f[i].value) < 0) /* it took the value */
                        ok = false;
        if (ok && log) /* left out when it cannot be named */
                ok = json_object_set_new_nocheck(j, "log_path", json_string(log)) >= 0;
        return ok ? TAKE_PTR(j) : NULL;
}

json_t *vm_to_json_image(VmManager *m, const VmRecord *vm, const char *image_name) {
        _cleanup_free_ char *log = vm_console_log(m, vm->id);
        json_t *j = vm_record_json(vm, image_name, log);
        if (j)
                vm_idle_json(m, vm, j);
        if (!j) {
                /* Never let a VM vanish from a listing: its disks would leak out of sight. */
                log_warning("VM %s: cannot serialise its record", vm->id);
                j = json_pack("{s:s, s:s, s:s, s:s}", "id", vm->id, "name", vm->name, "state",
                              vm_state_to_string(vm->state), "last_error", "record could not be serialised");
        }
        return j;
}

/* ---- defaults ---- */

VmmKind vm_manager_default_vmm(VmManager *m) {
        const BangerConfig *c = &m->d->config;
        if (c->default_vmm == CONFIG_VMM_FIRECRACKER)
                return VMM_FIRECRACKER;
        if (c->default_vmm == CONFIG_VMM_QEMU)
                return VMM_QEMU;
        /* /dev/kvm can exist without hardware virtualisation behind it (a
         * paravirtual one that runs no ordinary guest): ask the same check
         * the QEMU driver and doctor use. */
        if (qemu_kvm_usable(NULL) && vmm_driver_firecracker.probe(c->firecracker_bin) >= 0)
                return VMM_FIRECRACKER;
        return VMM_QEMU;
}

/* ---- SSH key ---- */

static int ensure_ssh_key(VmManager *m) {
        int r = mkdirat_private(m->d->state_dir_fd, "ssh", 0700);
        if (r < 0)
                return log_error_errno(r, "cannot create %s/ssh: %m", m->d->paths.state_dir);
        /* Paths for ssh and ssh-keygen; the daemon itself goes through the fd. */
        if (asprintf(&m->ssh_key, "%s/ssh/id_ed25519", m->d->paths.state_dir) < 0 ||
            asprintf(&m->known_hosts, "%s/ssh/known_hosts", m->d->paths.state_dir) < 0)
                return -ENOMEM;
        if (faccessat(m->d->state_dir_fd, "ssh/id_ed25519", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return 0;
        char *argv[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "banger", "-f", m->ssh_key, NULL };
        _cleanup_free_ char *out = NULL;
        r = spawn_run_capture(argv, 30 * USEC_PER_SEC, 4096, true, &out);
        if (r != 0) {
                log_warning("ssh-keygen failed (%d): %s; VMs get no SSH key", r, out ? out : "");
                return 0;
        }
        log_info("generated SSH key %s", m->ssh_key);
        return 0;
}

int vm_manager_read_pubkey(VmManager *m, char **ret) {
        _cleanup_close_ int dfd = open_dir_nofollow(m->d->state_dir_fd, "ssh");
        return dfd < 0 ? dfd : read_file_at(dfd, "id_ed25519.pub", 64 * 1024, ret, NULL);
}

int vm_manager_new(Daemon *d, VmManager **ret) {
        VmManager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->d = d;
        pthread_mutex_init(&m->lock, NULL);
        pthread_mutex_init(&m->default_image_lock, NULL);
        if (mkdirat_private(d->state_dir_fd, "vms", 0700) < 0 || mkdirat_private(d->runtime_dir_fd, "vms", 0700) < 0) {
                vm_manager_free(m);
                return log_error_errno(-EIO, "cannot create the VM directories under %s and %s", d->paths.state_dir,
                                       d->paths.runtime_dir);
        }
        (void) ensure_ssh_key(m);
        int r = host_new(d, &m->host);
        if (r < 0) {
                vm_manager_free(m);
                return r;
        }
        if (vm_idle_start(m) < 0)
                log_warning("cannot start the idle check: VMs are not stopped or suspended when idle");
        *ret = m;
        return 0;
}

void vm_manager_shutdown(VmManager *m) {
        host_stop_helper(m->host);
}

VmManager *vm_manager_free(VmManager *m) {
        if (!m)
                return NULL;
        vm_idle_free(m);
        vm_wake_free_all(m);
        while (m->runtimes) {
                VmRuntime *rt = m->runtimes;
                m->runtimes = rt->next;
                vm_forwards_free(rt->forwards);
                vm_agent_stop(rt->agent);
                vmm_instance_done(&rt->inst);
                free(rt->id);
                free(rt);
        }
        m->host = host_free(m->host);
        free(m->ssh_key);
        free(m->known_hosts);
        pthread_mutex_destroy(&m->default_image_lock);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return NULL;
}
