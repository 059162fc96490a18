/* SPDX-License-Identifier: MIT */
/* Creating a VM, in named steps: pick the image, make the record, insert it
 * (locked), give it an address, make its disks, clear the "creating"
 * marker; then, unless asked not to, start it. Each step that leaves
 * something behind records its undo: a failure removes files, address and
 * record, so nothing of a half-made VM survives. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "operation.h"
#include "undo.h"
#include "vm-internal.h"

typedef struct Create {
        VmManager *m;
        Store *s;
        const VmCreateRequest *req;
        VmProgress *p;
        ImageRecord img;
        VmRecord vm;
        VmLock *lock;
        SnapshotRecord template;    /* a warm start's, when one fits */
        const SnapshotRecord *snap; /* the snapshot restored: req->snapshot or &template */
        UndoStack undo;
} Create;

static void create_done(Create *c) {
        undo_stack_done(&c->undo);
        vm_unlock(c->lock);
        vm_record_done(&c->vm);
        image_record_done(&c->img);
        snapshot_record_done(&c->template);
}

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

static int step_pick_image(Create *c) {
        if (c->req->snapshot) /* a clone: the snapshot's image */
                return store_image_get_by_id(c->s, c->req->snapshot->image_id, &c->img);
        const char *ref = c->req->image ? c->req->image : config_vm_image(&c->m->d->config);
        if (!ref)
                return error_setf(-ENOENT, "no image given and no default image configured");
        /* First use on a fresh host: the configured default image is built
         * here (minutes, with progress) rather than failing. */
        int r = vm_default_image_ensure(c->m, c->s, ref, c->p);
        return r < 0 ? r : image_resolve(c->s, ref, &c->img);
}

/* What the user asked for, kept with the VM. */
static char *spec_json(const VmCreateRequest *req, const char *name, const char *image) {
        json_t *spec =
                json_pack("{s:s, s:s, s:i, s:I, s:I, s:b, s:s}", "name", name, "image", image, "vcpu", (int) req->vcpu,
                          "memory_mib", (json_int_t) req->memory_mib, "disk_bytes", (json_int_t) req->disk_bytes, "nat",
                          req->nat, "vmm", vmm_kind_to_string((VmmKind) req->vmm));
        char *s = json_dumps(spec, JSON_COMPACT);
        json_decref(spec);
        return s;
}

static int step_make_record(Create *c) {
        const VmCreateRequest *req = c->req;
        VmRecord *vm = &c->vm;
        char id[STORE_ID_GENERATED_LEN + 1];
        int r = store_id_generate(id);
        if (r < 0)
                return r;
        r = req->name ? ((vm->name = strdup(req->name)) ? 0 : -ENOMEM) : vm_name_generate(c->s, &vm->name);
        if (r < 0)
                return r;
        vm->id = strdup(id);
        vm->image_id = strdup(c->img.id);
        vm->spec_json = spec_json(req, vm->name, c->img.name);
        /* Cleared once the disks exist: a crash before that leaves a marker
         * the next start turns into a clear error. */
        vm->runtime_json = strdup("{\"creating\":true}");
        vm->state = VM_STATE_CREATED;
        vm->vmm = (VmmKind) req->vmm;
        vm->vcpus = req->vcpu;
        vm->mem_mib = req->memory_mib;
        vm->disk_bytes = req->disk_bytes;
        vm->nat = req->nat;
        vm->idle_timeout_sec = req->idle_timeout_sec;
        vm->idle_action = req->idle_action;
        return vm->id && vm->image_id && vm->spec_json && vm->runtime_json ? 0 : -ENOMEM;
}

static int undo_record(const char *id, void *data) {
        return store_vm_delete(data, id);
}

static int step_insert(Create *c) {
        VmRecord *vm = &c->vm;
        vm_progress(c->p, vm->id, "prepare", "%s: image %s, %s, %u vCPU, %llu MiB, disk %llu MiB%s", vm->name,
                    c->img.name, vmm_kind_to_string(vm->vmm), vm->vcpus, (unsigned long long) vm->mem_mib,
                    (unsigned long long) (vm->disk_bytes >> 20), vm->nat ? ", NAT" : "");
        /* Locked before the row exists: nobody can act on a VM being made. */
        c->lock = vm_lock(c->m, vm->id);
        if (!c->lock)
                return -ENOMEM;
        int r = store_vm_insert(c->s, vm);
        if (r == -EEXIST)
                return error_setf(-EEXIST, "a VM named '%s' already exists", vm->name);
        if (r < 0 || (r = undo_push(&c->undo, "vm", vm->id, undo_record, c->s, NULL)) < 0)
                return r;
        if (c->p)
                snprintf(c->p->vm_id, sizeof(c->p->vm_id), "%s", vm->id);
        operation_set_target(operation_current(), vm->name);
        /* Its forwards go with the row (CASCADE) if the create fails. */
        return vm_ports_record(c->s, vm->id, c->req->ports, c->req->n_ports);
}

static int undo_address(const char *id, void *data) {
        return store_ip_release(data, id);
}

static int step_network(Create *c) {
        int r = undo_push(&c->undo, "address", c->vm.id, undo_address, c->s, NULL);
        if (r >= 0)
                r = vm_assign_network(c->m, c->s, &c->vm);
        return r < 0 ? r : store_vm_update(c->s, &c->vm);
}

static int undo_files(const char *id, void *data) {
        vm_remove_files(data, id);
        return 0;
}

static int step_disks(Create *c) {
        int r = undo_push(&c->undo, "files", c->vm.id, undo_files, c->m, NULL);
        if (r < 0)
                return r;
        return c->snap ? vm_clone_disks(c->m, &c->vm, c->snap, c->p) : vm_make_disks(c->m, &c->vm, &c->img, c->p);
}

/* The VM stays undoable until it started: nothing of it is left when its
 * start is cancelled, or a clone's restore fails. */
static int step_finish(Create *c) {
        free(c->vm.runtime_json);
        c->vm.runtime_json = NULL;
        int r = store_vm_update(c->s, &c->vm);
        if (r >= 0 && c->req->no_start)
                undo_commit(&c->undo);
        return r;
}

static void step_warm(Create *c) {
        if (!c->req->snapshot && !c->req->no_start && !c->req->cold &&
            vm_template_find(c->m, c->s, &c->img, c->req, &c->template, c->p) >= 0)
                c->snap = &c->template;
}

/* Start the VM: a restore for a clone or a warm start, else a cold boot
 * after which a template of its shape is made in the background. */
static int step_start(Create *c) {
        if (c->snap) {
                int r = vm_start_from_snapshot(c->m, c->s, &c->vm, &c->img, c->snap, !c->req->snapshot,
                                               c->req->new_host_keys, c->p);
                if (r >= 0)
                        undo_commit(&c->undo);
                return r;
        }
        int r = vm_start_locked(c->m, c->s, &c->vm, c->p);
        if (r >= 0 && !c->req->cold)
                vm_template_schedule(c->m, c->s, &c->vm);
        return r;
}

/* A start that failed keeps the VM, in state error with its disks, for the
 * user to look at; a cancelled one (not a stop or delete that interrupted
 * it: that one takes the VM over) leaves nothing, as if never made. */
static bool start_undoes_create(Create *c, int r) {
        return c->req->snapshot ||
               (r == -ECANCELED && operation_cancelled(operation_current()) && !vm_preempt_requested(c->m, c->vm.id));
}

/* Take the half-made VM apart, keeping the reason of the failure. */
static int create_fail(Create *c, int r) {
        char why[1024];
        snprintf(why, sizeof(why), "%s", error_last_message() ? error_last_message() : strerror(-r));
        (void) undo_run(&c->undo);
        if (c->p)
                c->p->vm_id[0] = '\0'; /* nothing of it is left to name */
        return error_setf(r, "%s", why);
}

int vm_op_create(VmManager *m, Store *s, const VmCreateRequest *req, VmProgress *p, VmRecord *ret) {
        _cleanup_(create_done) Create c = { .m = m, .s = s, .req = req, .p = p, .undo = UNDO_STACK_INIT };
        /* A host port that is taken refuses the create before anything is made. */
        int r = req->no_start ? 0 : vm_ports_check_free(req->name ? req->name : "new", req->ports, req->n_ports);
        if (r >= 0)
                r = step_pick_image(&c);
        c.snap = req->snapshot;
        if (r >= 0)
                step_warm(&c);
        if (r >= 0)
                r = step_make_record(&c);
        if (r >= 0)
                r = operation_check();
        if (r >= 0)
                r = step_insert(&c);
        if (r >= 0)
                r = step_network(&c);
        if (r >= 0)
                r = operation_check();
        if (r >= 0)
                r = step_disks(&c);
        if (r >= 0)
                r = operation_check();
        if (r >= 0)
                r = step_finish(&c);
        if (r < 0)
                return create_fail(&c, r);
        if (!req->no_start) {
                r = step_start(&c);
                if (r < 0 && start_undoes_create(&c, r))
                        return create_fail(&c, r);
                undo_commit(&c.undo);
                if (r < 0)
                        return r;
        }
        *ret = c.vm;
        c.vm = (VmRecord){};
        return 0;
}
