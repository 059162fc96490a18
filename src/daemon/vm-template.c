/* SPDX-License-Identifier: MIT */
/* Warm starts: a template is a snapshot banger takes itself of a freshly
 * booted VM, one per image, vCPUs, memory and VMM. vm create restores it
 * instead of booting when it fits; its fingerprint names what it was made
 * from (image, kernel, agent, banger and VMM versions), and a template whose
 * fingerprint no longer matches is dropped. After a cold boot of a shape
 * without a template, one is taken of that VM in a worker. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "banger-build.h"
#include "error.h"
#include "file-tree.h"
#include "log.h"
#include "string-util.h"
#include "vm-internal.h"
#include "vm-snapshot.h"
#include "worker.h"

#define FINGERPRINT_MAX 1024

static int file_sha256(const char *path, char ret[static SHA256_HEX_LEN + 1]) {
        _cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -ENOENT;
        if (fd < 0)
                return fd == -ENOENT ? -ENOENT : -errno;
        return sha256_fd(fd, ret, NULL);
}

/* What a template is made from; any change makes it stale. */
static int fingerprint(VmManager *m, Store *s, const ImageRecord *img, VmmKind vmm, char **ret) {
        const VmmDriver *drv = vmm_driver_get(vmm);
        _cleanup_free_ char *vmm_version = NULL, *agent_path = daemon_find_agent();
        _cleanup_(kernel_record_done) KernelRecord k = {};
        char agent[SHA256_HEX_LEN + 1] = "none";
        struct stat st = {};
        int r = drv->version(vmm == VMM_FIRECRACKER ? m->d->config.firecracker_bin : m->d->config.qemu_bin,
                             &vmm_version);
        if (r < 0)
                return r;
        if (img->kernel_id)
                (void) store_kernel_get_by_id(s, img->kernel_id, &k);
        (void) file_sha256(agent_path, agent);
        (void) stat(img->rootfs_path, &st);
        char *f = NULL;
        if (asprintf(&f, "image=%s:%s:%lld:%lld;kernel=%s:%s;agent=%.16s;banger=%s-%s;vmm=%s", img->id,
                     img->sha256 ? img->sha256 : "-", (long long) st.st_size, (long long) st.st_mtime,
                     k.id ? k.id : "-", k.sha256 ? k.sha256 : "-", agent, BANGER_VERSION, BANGER_COMMIT,
                     vmm_version) < 0)
                return -ENOMEM;
        *ret = f;
        return 0;
}

int vm_template_find(VmManager *m, Store *s, const ImageRecord *img, const VmCreateRequest *req, SnapshotRecord *ret,
                     VmProgress *p) {
        if (!m->d->config.vm_templates)
                return -ENOENT;
        _cleanup_(snapshot_record_done) SnapshotRecord t = {};
        int r = store_snapshot_get_template(s, img->id, req->vcpu, req->memory_mib, (VmmKind) req->vmm, &t);
        if (r < 0 || t.state != SNAPSHOT_READY)
                return -ENOENT;
        _cleanup_free_ char *now = NULL;
        if (fingerprint(m, s, img, t.vmm, &now) < 0)
                return -ENOENT;
        if (!streq_ptr(t.fingerprint, now)) {
                vm_progress(p, NULL, "template",
                            "template %s is stale (its image, kernel, agent, banger or VMM changed): dropped", t.name);
                log_info("template %s is stale: was %s, now %s", t.name, t.fingerprint, now);
                (void) snapshot_op_delete(m, s, t.id);
                return -ENOENT;
        }
        if (t.disk_bytes != req->disk_bytes) {
                vm_progress(p, NULL, "template", "template %s has a %llu MiB disk, not %llu MiB: booting cold", t.name,
                            (unsigned long long) (t.disk_bytes >> 20), (unsigned long long) (req->disk_bytes >> 20));
                return -ENOENT;
        }
        *ret = t;
        t = (SnapshotRecord){};
        return 0;
}

typedef struct TemplateJob {
        VmManager *m;
        char *vm_id;
} TemplateJob;

static void template_job_free(TemplateJob *j) {
        if (!j)
                return;
        free(j->vm_id);
        free(j);
}

static int make_template_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        _cleanup_(snapshot_record_done) SnapshotRecord existing = {}, made = {};
        _cleanup_(image_record_done) ImageRecord img = {};
        _cleanup_free_ char *f = NULL;
        if (vm->state != VM_STATE_RUNNING || vm_preempt_requested(m, vm->id))
                return 0; /* gone on, or someone waits to stop or delete it */
        if (store_snapshot_get_template(s, vm->image_id, vm->vcpus, vm->mem_mib, vm->vmm, &existing) >= 0)
                return 0;
        int r = store_image_get_by_id(s, vm->image_id, &img);
        if (r >= 0)
                r = fingerprint(m, s, &img, vm->vmm, &f);
        if (r < 0)
                return r;
        char name[64];
        snprintf(name, sizeof(name), "tpl-%.30s-%uc%llum-%s", img.name, vm->vcpus, (unsigned long long) vm->mem_mib,
                 vm->vmm == VMM_FIRECRACKER ? "fc" : "qemu");
        VmSnapshotRequest req = { .name = name, .kind = SNAPSHOT_TEMPLATE, .fingerprint = f };
        r = vm_snapshot_locked(m, s, vm, &req, NULL, &made);
        if (r >= 0)
                log_info("template %s made from %s for warm starts", made.name, vm->name);
        return r;
}

static void template_main(void *userdata) {
        TemplateJob *j = userdata;
        _cleanup_store_close_ Store *s = NULL;
        int r = daemon_open_store(j->m->d, &s);
        if (r >= 0)
                r = vm_with_lock(j->m, s, j->vm_id, 0, make_template_locked, NULL);
        if (r < 0)
                log_warning("no template from VM %s: %s", j->vm_id,
                            error_last_message() ? error_last_message() : strerror(-r));
}

static void template_done(void *userdata) {
        template_job_free(userdata);
}

/* On the loop: the worker starts now, before the create's reply goes out. */
static void template_start(void *userdata) {
        TemplateJob *j = userdata;
        if (workers_start(j->m->d->workers, template_main, template_done, j, WORKER_UNLIMITED) < 0)
                template_job_free(j);
}

void vm_template_schedule(VmManager *m, Store *s, const VmRecord *vm) {
        _cleanup_(snapshot_record_done) SnapshotRecord existing = {};
        if (!m->d->config.vm_templates ||
            store_snapshot_get_template(s, vm->image_id, vm->vcpus, vm->mem_mib, vm->vmm, &existing) >= 0)
                return;
        TemplateJob *j = calloc(1, sizeof(*j));
        if (!j || !(j->vm_id = strdup(vm->id))) {
                template_job_free(j);
                return;
        }
        j->m = m;
        if (workers_post(m->d->workers, template_start, j) < 0)
                template_job_free(j);
}
