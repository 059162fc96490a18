/* SPDX-License-Identifier: MIT */
/* Creating and deleting VMs, changing their size, reaching their agent, and
 * recovering them when the daemon starts. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "daemon.h"
#include "rpc-call.h"
#include "error.h"
#include "fs-util.h"
#include "ext4-edit.h"
#include "guest-patch.h"
#include "host.h"
#include "log.h"
#include "rootdisk.h"
#include "spawn.h"
#include "string-util.h"
#include "tap.h"
#include "vm-internal.h"
#include "workdisk.h"

static int image_resolve(Store *s, const char *ref, ImageRecord *ret) {
        int r = store_image_get_by_name(s, ref, ret);
        if (r != -ENOENT)
                return r < 0 ? error_setf(r, "image %s: %s", ref,
                                          error_last_message() ? error_last_message() : strerror(-r))
                             : r;
        r = store_image_get_by_id(s, ref, ret);
        if (r >= 0)
                return r;
        return error_setf(-ENOENT, "no image named '%s' (banger image list shows what there is)", ref);
}

/* MAC and vsock CID derive from the guest address, which the store keeps
 * unique among VMs. */
static int vm_assign_network(VmManager *m, Store *s, VmRecord *vm) {
        char *ip = NULL;
        char cidr[64];
        snprintf(cidr, sizeof(cidr), "%s", m->d->config.cidr);
        int r = store_ip_allocate(s, vm->id, cidr, host_bridge_ip(m->host), &ip);
        if (r < 0)
                return r;
        struct in_addr a;
        if (inet_pton(AF_INET, ip, &a) != 1) {
                free(ip);
                return -EINVAL;
        }
        uint32_t h = ntohl(a.s_addr);
        free(vm->ip);
        vm->ip = ip;
        free(vm->mac);
        if (asprintf(&vm->mac, "02:fc:%02x:%02x:%02x:%02x", (h >> 24) & 0xff, (h >> 16) & 0xff, (h >> 8) & 0xff,
                     h & 0xff) < 0)
                return -ENOMEM;
        vm->vsock_cid = 3 + (h & 0xffffff);
        char tap[IFNAMSIZ];
        r = tap_name_for_vm(vm->id, tap);
        if (r < 0)
                return r;
        free(vm->tap);
        vm->tap = strdup(tap);
        return vm->tap ? 0 : -ENOMEM;
}

/* The work disk is mounted on /root in the guest, over the root disk's
 * /root: root's authorized_keys must be on it too, or they are hidden. */
static int workdisk_add_keys(int dfd, const char *pubkey) {
        _cleanup_close_ int fd = openat(dfd, "work.img", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        Ext4Image *img = NULL;
        int r = ext4_image_open_fd(fd, &img);
        if (r < 0)
                return r;
        r = ext4_mkdir_p(img, "/.ssh", 0700, 0, 0);
        if (r >= 0)
                r = ext4_write_file(img, "/.ssh/authorized_keys", pubkey, strlen(pubkey), 0600, 0, 0);
        if (r < 0) {
                ext4_image_abort(img);
                return r;
        }
        return ext4_image_close(img);
}

/* Root disk (clone of the image + guest patch) and work disk. */
static int vm_make_disks(VmManager *m, const VmRecord *vm, const ImageRecord *img, VmProgress *p) {
        _cleanup_free_ char *dir = vm_state_dir(m, vm->id);
        if (!dir)
                return -ENOMEM;
        int r = mkdirat_private(AT_FDCWD, dir, 0700);
        if (r < 0)
                return error_setf(r, "cannot create %s: %m", dir);
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        if (dfd < 0)
                return error_setf(dfd, "cannot open %s", dir);

        _cleanup_free_ char *base = strdup(img->rootfs_path);
        _cleanup_free_ char *base2 = strdup(img->rootfs_path);
        if (!base || !base2)
                return -ENOMEM;
        _cleanup_close_ int bfd = open_dir_nofollow(AT_FDCWD, dirname(base));
        if (bfd < 0)
                return error_setf(bfd, "cannot open the directory of %s", img->rootfs_path);

        _cleanup_free_ char *pubkey = NULL;
        (void) vm_manager_read_pubkey(m, &pubkey);
        char address[64];
        snprintf(address, sizeof(address), "%s/%u", vm->ip, host_prefix(m->host));
        GuestPatch patch = {
                .hostname = vm->name,
                .address = address,
                .gateway = host_bridge_ip(m->host),
                .mac = vm->mac,
                .dns = { host_bridge_ip(m->host), NULL },
                .authorized_keys = pubkey,
        };
        DiskCloneMethod used = 0;
        vm_progress(p, vm->id, "disk", "cloning %s", img->rootfs_path);
        r = rootdisk_create(bfd, basename(base2), dfd, "root.img", DISK_CLONE_FILE, &patch, &used);
        if (r < 0)
                return error_setf(r, "root disk: %s", error_last_message() ? error_last_message() : strerror(-r));
        vm_progress(p, vm->id, "disk", "root disk by %s; work disk %llu MiB", disk_clone_method_to_string(used),
                    (unsigned long long) (vm->disk_bytes >> 20));
        if (img->work_seed_path) {
                _cleanup_free_ char *sd = strdup(img->work_seed_path), *sn = strdup(img->work_seed_path);
                _cleanup_close_ int sfd = sd ? open_dir_nofollow(AT_FDCWD, dirname(sd)) : -ENOMEM;
                r = sfd < 0 ? sfd
                            : workdisk_from_seed(sfd, basename(sn), dfd, "work.img", vm->disk_bytes, DISK_CLONE_FILE,
                                                 NULL);
        } else
                r = workdisk_create(dfd, "work.img", vm->disk_bytes);
        if (r >= 0 && pubkey)
                r = workdisk_add_keys(dfd, pubkey);
        if (r < 0) {
                (void) unlinkat(dfd, "root.img", 0);
                (void) unlinkat(dfd, "work.img", 0);
                return error_setf(r, "work disk: %s", error_last_message() ? error_last_message() : strerror(-r));
        }
        return 0;
}

static void vm_remove_files(VmManager *m, const char *id) {
        _cleanup_free_ char *dir = vm_state_dir(m, id);
        _cleanup_close_ int dfd = dir ? open_dir_nofollow(AT_FDCWD, dir) : -EBADF;
        if (dfd >= 0) {
                static const char *const names[] = { "root.img", "work.img", "console.log" };
                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        (void) unlinkat(dfd, names[i], 0);
        }
        if (dir && rmdir(dir) < 0 && errno != ENOENT)
                log_warning("cannot remove %s: %m", dir);
}

int vm_op_create(VmManager *m, Store *s, const VmCreateRequest *req, VmProgress *p, VmRecord *ret) {
        ImageRecord img = {};
        _cleanup_free_ char *name = NULL;
        int r;
        const char *image_ref = req->image ? req->image : config_vm_image(&m->d->config);
        if (!image_ref)
                return error_setf(-ENOENT, "no image given and no default image configured");
        /* First use on a fresh host: the configured default image is built
         * here (minutes, with progress) rather than failing. */
        r = vm_default_image_ensure(m, s, image_ref, p);
        if (r >= 0)
                r = image_resolve(s, image_ref, &img);
        if (r < 0)
                return r;
        if (req->name)
                name = strdup(req->name);
        else
                r = vm_name_generate(s, &name);
        if (r < 0 || !name) {
                image_record_done(&img);
                return r < 0 ? r : -ENOMEM;
        }

        char id[STORE_ID_GENERATED_LEN + 1];
        r = store_id_generate(id);
        if (r < 0) {
                image_record_done(&img);
                return r;
        }
        json_t *spec =
                json_pack("{s:s, s:s, s:i, s:I, s:I, s:b, s:s}", "name", name, "image", img.name, "vcpu",
                          (int) req->vcpu, "memory_mib", (json_int_t) req->memory_mib, "disk_bytes",
                          (json_int_t) req->disk_bytes, "nat", req->nat, "vmm", vmm_kind_to_string((VmmKind) req->vmm));
        _cleanup_free_ char *spec_s = json_dumps(spec, JSON_COMPACT);
        json_decref(spec);
        VmRecord vm = {
                .id = strdup(id),
                .name = TAKE_PTR(name),
                .image_id = strdup(img.id),
                .state = VM_STATE_CREATED,
                .vmm = (VmmKind) req->vmm,
                .vcpus = req->vcpu,
                .mem_mib = req->memory_mib,
                .disk_bytes = req->disk_bytes,
                .nat = req->nat,
                .spec_json = TAKE_PTR(spec_s),
                /* Cleared once the disks exist: a crash before that leaves a
                 * marker the next start turns into a clear error. */
                .runtime_json = strdup("{\"creating\":true}"),
        };
        if (!vm.id || !vm.image_id) {
                r = -ENOMEM;
                goto fail_free;
        }
        vm_progress(p, vm.id, "prepare", "%s: image %s, %s, %u vCPU, %llu MiB, disk %llu MiB%s", vm.name, img.name,
                    vmm_kind_to_string(vm.vmm), vm.vcpus, (unsigned long long) vm.mem_mib,
                    (unsigned long long) (vm.disk_bytes >> 20), vm.nat ? ", NAT" : "");
        /* Locked before the row exists: nobody can act on a VM being made. */
        VmLock *l = vm_lock(m, vm.id);
        if (!l) {
                r = -ENOMEM;
                goto fail_free;
        }
        r = store_vm_insert(s, &vm);
        if (r < 0) {
                vm_unlock(m, l);
                if (r == -EEXIST)
                        r = error_setf(-EEXIST, "a VM named '%s' already exists", vm.name);
                goto fail_free;
        }
        if (p)
                snprintf(p->vm_id, sizeof(p->vm_id), "%s", vm.id);
        r = vm_assign_network(m, s, &vm);
        if (r >= 0)
                r = store_vm_update(s, &vm);
        if (r >= 0)
                r = vm_make_disks(m, &vm, &img, p);
        if (r >= 0) {
                free(vm.runtime_json);
                vm.runtime_json = NULL;
                r = store_vm_update(s, &vm);
        }
        if (r < 0) {
                /* Nothing of a half-made VM survives: files, address, record. */
                char why[1024];
                snprintf(why, sizeof(why), "%s", error_last_message() ? error_last_message() : strerror(-r));
                vm_remove_files(m, vm.id);
                (void) store_ip_release(s, vm.id);
                (void) store_vm_delete(s, vm.id);
                vm_unlock(m, l);
                if (p)
                        p->vm_id[0] = '\0'; /* nothing of it is left to name */
                error_setf(r, "%s", why);
                goto fail_free;
        }
        if (!req->no_start)
                r = vm_start_locked(m, s, &vm, p);
        vm_unlock(m, l);
        image_record_done(&img);
        if (r < 0) {
                vm_record_done(&vm);
                return r;
        }
        *ret = vm;
        return 0;

fail_free:
        vm_record_done(&vm);
        image_record_done(&img);
        return r;
}

int vm_op_delete(VmManager *m, Store *s, const char *id, int flags) {
        /* prune must not interrupt anything; an explicit delete may. */
        VmLock *l = (flags & VM_DELETE_ONLY_IDLE) ? vm_lock(m, id) : vm_lock_preempt(m, id);
        if (!l)
                return -ENOMEM;
        VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r >= 0 && (flags & VM_DELETE_ONLY_IDLE) && vm.state != VM_STATE_STOPPED && vm.state != VM_STATE_CREATED &&
            vm.state != VM_STATE_ERROR)
                r = error_setf(-EBUSY, "VM %s is %s now", vm.name, vm_state_to_string(vm.state));
        VmRuntime *rt = r >= 0 ? vm_runtime_get(m, id, false) : NULL;
        if (rt && rt->inst.proc.pidfd >= 0) {
                rt->generation = 0;
                int k = vmm_driver_get(vm.vmm)->kill(&rt->inst);
                if (k < 0 && k != -ESRCH) {
                        /* Never take disks and network from under a live VMM. */
                        r = error_setf(k, "cannot kill the VMM of %s: %s", vm.name, strerror(-k));
                        (void) store_vm_set_state(s, id, VM_STATE_ERROR, error_last_message());
                }
        }
        if (r >= 0) {
                vm_runtime_drop(m, id);
                bool nat = vm.nat;
                vm.nat = false; /* so the NAT sync below no longer sees it */
                vm.state = VM_STATE_STOPPED;
                (void) store_vm_update(s, &vm);
                vm.nat = nat;
                vm_release_host(m, s, &vm);
                vm_remove_files(m, id);
                if (vm.ip && m->known_hosts && access(m->known_hosts, F_OK) == 0) {
                        /* Both names a host key is kept under: the address ('vm ssh')
                         * and NAME.vm (plain ssh through 'banger ssh-config'). */
                        _cleanup_free_ char *host = NULL;
                        char *argv[] = { "ssh-keygen", "-R", vm.ip, "-f", m->known_hosts, NULL };
                        (void) spawn_run_capture(argv, 10 * USEC_PER_SEC, 4096, true, NULL);
                        if (asprintf(&host, "%s.vm", vm.name) >= 0) {
                                argv[2] = host;
                                (void) spawn_run_capture(argv, 10 * USEC_PER_SEC, 4096, true, NULL);
                        }
                        _cleanup_free_ char *old = NULL;
                        if (asprintf(&old, "%s.old", m->known_hosts) >= 0)
                                (void) unlink(old);
                }
                (void) store_ip_release(s, id);
                r = store_vm_delete(s, id);
                if (r >= 0)
                        log_info("vm %s deleted", vm.name);
        }
        vm_record_done(&vm);
        vm_unlock(m, l);
        return r;
}

int vm_op_set(VmManager *m, Store *s, const char *id, unsigned vcpu, unsigned long long memory_mib) {
        VmLock *l = vm_lock(m, id);
        if (!l)
                return -ENOMEM;
        VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r >= 0 && vm.state != VM_STATE_STOPPED && vm.state != VM_STATE_CREATED && vm.state != VM_STATE_ERROR)
                r = error_setf(-EBUSY, "VM %s is %s; stop it first", vm.name, vm_state_to_string(vm.state));
        if (r >= 0) {
                if (vcpu)
                        vm.vcpus = vcpu;
                if (memory_mib)
                        vm.mem_mib = memory_mib;
                r = store_vm_update(s, &vm);
        }
        vm_record_done(&vm);
        vm_unlock(m, l);
        return r;
}

int vm_agent_endpoint(VmManager *m, Store *s, const char *id, char **ret_socket, unsigned *ret_port) {
        VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        if (r < 0)
                return r;
        if (vm.state != VM_STATE_RUNNING || !vm.agent_socket)
                r = error_setf(-ESRCH, "VM %s is not running", vm.name);
        else {
                *ret_socket = strdup(vm.agent_socket);
                *ret_port = vm.vmm == VMM_FIRECRACKER ? AGENT_VSOCK_PORT : 0;
                r = *ret_socket ? 0 : -ENOMEM;
        }
        vm_record_done(&vm);
        return r;
}

int vm_agent_connect(VmManager *m, Store *s, const char *id, usec_t timeout, int *ret_fd) {
        VmLock *l = vm_lock(m, id);
        if (!l)
                return -ENOMEM;
        VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        VmRuntime *rt = r >= 0 ? vm_runtime_get(m, id, false) : NULL;
        if (r >= 0 && (!rt || vm.state != VM_STATE_RUNNING))
                r = error_setf(-ESRCH, "VM %s is not running", vm.name);
        if (r >= 0) {
                r = vmm_driver_get(vm.vmm)->connect_agent(&rt->inst, AGENT_VSOCK_PORT, timeout);
                if (r >= 0) {
                        *ret_fd = r;
                        r = 0;
                }
        }
        vm_record_done(&vm);
        vm_unlock(m, l);
        return r;
}

/* ---- recovery at daemon start ---- */

static void vm_recover_one(VmManager *m, Store *s, VmRecord *vm) {
        VmLaunchSpec spec = {};
        const VmmDriver *drv = vmm_driver_get(vm->vmm);
        int r = vm_launch_spec_build(m, s, vm, &spec);
        VmRuntime *rt = r >= 0 ? vm_runtime_get(m, vm->id, true) : NULL;
        if (rt)
                r = drv->attach(&spec.cfg, &rt->inst);
        vm_launch_spec_done(&spec);
        if (rt && r >= 0) {
                rt->generation = ++m->next_generation;
                vm->pid = rt->inst.proc.pid;
                vm->state = VM_STATE_RUNNING;
                (void) store_vm_update(s, vm);
                vm_watch(m, vm->id, rt);
                log_info("vm %s: re-attached to %s pid %d", vm->name, drv->name, (int) vm->pid);
                return;
        }
        vm_runtime_drop(m, vm->id);
        if (r != -ESRCH && r != -ENOENT) {
                /* Unsure whether it still runs: touch nothing it may be using. */
                log_warning("vm %s: cannot re-attach to its VMM (%s); marking it error", vm->name, strerror(-r));
                (void) store_vm_set_state(s, vm->id, VM_STATE_ERROR, "could not re-attach after a daemon restart");
                return;
        }
        log_info("vm %s: its VMM is gone (%s); marking it stopped", vm->name, strerror(-r));
        vm->state = VM_STATE_STOPPED;
        vm->pid = 0;
        (void) store_vm_update(s, vm);
        vm_release_host(m, s, vm);
}

int vm_manager_recover(VmManager *m) {
        Store *s = NULL;
        int r = vm_manager_open_store(m, &s);
        if (r < 0)
                return r;
        VmRecord *list = NULL;
        size_t n = 0;
        r = store_vm_list(s, &list, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (list[i].state == VM_STATE_RUNNING || list[i].state == VM_STATE_STARTING ||
                    list[i].state == VM_STATE_STOPPING)
                        vm_recover_one(m, s, &list[i]);
                else if (list[i].state == VM_STATE_CREATED && list[i].runtime_json &&
                         strstr(list[i].runtime_json, "\"creating\"")) {
                        log_warning("vm %s: its creation was interrupted; marking it error", list[i].name);
                        (void) store_vm_set_state(s, list[i].id, VM_STATE_ERROR,
                                                  "creation was interrupted (daemon stopped); delete this VM");
                }
        }
        vm_record_array_free(list, n);
        if (host_available(m->host)) {
                (void) host_nat_sync(m->host, s);
                (void) host_reconcile(m->host, s);
        }
        store_close(s);
        return r;
}
