/* SPDX-License-Identifier: MIT */
/* Creating a VM: record it, give it an address and disks, and (unless asked
 * not to) start it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "vm-internal.h"

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
