/* SPDX-License-Identifier: MIT */
/* What a VMM is launched with: the VmmConfig of one VM (kernel, disks,
 * NIC, command line) and the strings it points into. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "console-stream.h"
#include "fs-util.h"
#include "kernel-store.h"
#include "vm-internal.h"

void vm_launch_spec_done(VmLaunchSpec *s) {
        free(s->run_dir);
        free(s->log_path);
        free(s->console_path);
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

static int console_open(VmManager *m, const VmRecord *vm) {
        _cleanup_close_ int dfd = vm_dir_open(m, VM_DIR_STATE, vm->id, false);
        int r = dfd < 0 ? dfd : console_stream_open(m->d->consoles, dfd, vm->id);
        return r < 0 ? error_setf(r, "cannot set up the console of VM %s: %s", vm->name, strerror(-r)) : 0;
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
        sp.log_path = dir ? path_join(dir, CONSOLE_PIPE_NAME) : NULL;
        sp.console_path = vm_console_log(m, vm->id);
        sp.root_img = dir ? path_join(dir, "root.img") : NULL;
        sp.work_img = dir ? path_join(dir, "work.img") : NULL;
        /* Firecracker boots only an uncompressed ELF; QEMU boots it when it can. */
        const char *kpath = kernel_record_boot_path(&k, vm->vmm);
        sp.kernel = kpath ? strdup(kpath) : NULL;
        sp.initrd = k.initrd_path ? strdup(k.initrd_path) : NULL;
        if (vm->vmm == VMM_FIRECRACKER && !k.elf_path)
                r = error_setf(-ENOEXEC, "kernel %s has no ELF vmlinux for Firecracker", k.name);
        kernel_record_done(&k);
        if (r < 0 || !sp.run_dir || !sp.log_path || !sp.console_path || !sp.root_img || !sp.work_img || !sp.kernel) {
                vm_launch_spec_done(&sp);
                return r < 0 ? r : -ENOMEM;
        }
        /* ip= lets guests whose NIC driver is built in configure themselves;
         * the agent reads /etc/banger/network.conf either way. */
        /* The QEMU driver adds its TCG clock hints itself. cryptomgr.notests:
         * the kernel's boot-time self-tests of its crypto algorithms were
         * the longest initcalls of a guest's boot (crypto_algapi_init and
         * crypto_kdf108_init, 0.31 s of a 2.1 s TCG boot; bench/README.md);
         * they check the kernel's own code, not anything a guest is given,
         * and a kernel in FIPS mode runs them regardless. */
        int n = asprintf(&sp.cmdline,
                         "console=ttyS0 root=/dev/vda rw panic=1 cryptomgr.notests%s ip=%s::%s:%s:%s:eth0:off",
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
                .console_path = sp.console_path,
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
        r = console_open(m, vm);
        if (r < 0) {
                vm_launch_spec_done(&sp);
                return r;
        }
        *ret = sp;
        return 0;
}
