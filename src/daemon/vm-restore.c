/* SPDX-License-Identifier: MIT */
/* Starting VMs from snapshots: a VM rolled back to one of its own snapshots
 * (in place: same name, address and TAP, disks replaced by copies of the
 * snapshot's), a new VM cloned from a snapshot (its own address, MAC, TAP
 * and name, told to the guest agent after the resume), and a warm start
 * from a template, which falls back to a cold boot when the restore fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "operation.h"
#include "string-util.h"
#include "vm-internal.h"
#include "vm-snapshot.h"

#define RESTORE_SUFFIX ".restore"
#define ENTROPY_BYTES 64
#define IDENTITY_TIMEOUT (30 * USEC_PER_SEC)
/* New host keys are made in the guest: an RSA key under emulation is slow. */
#define IDENTITY_KEYS_TIMEOUT (180 * USEC_PER_SEC)

void vm_restore_configure(const VmRestore *restore, VmmConfig *cfg, VmProgress *p, const char *vm_id) {
        const SnapshotRecord *n = restore->snap;
        cfg->restore_dir = n->dir;
        cfg->restore_version = n->vmm_version;
        /* vm_resume_locked() has just run the VMM binary for its version. */
        cfg->restore_version_checked = restore->suspended;
        vm_progress(p, vm_id, "restore", "%s %s (%llu MiB of saved state)",
                    restore->suspended  ? "loading the suspended state of"
                    : restore->template ? "warm start from template"
                                        : "loading snapshot",
                    n->name, (unsigned long long) ((n->state_bytes + n->memory_bytes) >> 20));
}

/* ENTROPY_BYTES from the host's getrandom() as hex, into hex. */
static int entropy_hex(char hex[static 2 * ENTROPY_BYTES + 1]) {
        uint8_t rnd[ENTROPY_BYTES];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd))
                return -EIO;
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        explicit_bzero(rnd, sizeof(rnd));
        return 0;
}

/* The identity request: network.conf's keys for this VM, the NIC's MAC as
 * the snapshot left it, the host's time and fresh entropy. A VM resumed in
 * place whose agent knows it (capability "resumed") is sent only the time
 * and the entropy: its address, MAC, hostname and files are already its own. */
static char *identity_request(VmManager *m, const VmRecord *vm, const SnapshotRecord *n, bool new_host_keys,
                              bool resumed) {
        _cleanup_(json_decrefp) json_t *spec = json_loads(n->spec_json ? n->spec_json : "{}", 0, NULL);
        const char *from_mac = json_string_value(json_object_get(spec, "mac"));
        char hex[2 * ENTROPY_BYTES + 1];
        if (entropy_hex(hex) < 0)
                return NULL;
        unsigned long long time_ns = (unsigned long long) now_realtime() * 1000ULL;
        char *text = NULL;
        int k = resumed ? asprintf(&text, "RESUMED=1\nTIME_NS=%llu\nENTROPY=%s\n", time_ns, hex)
                        : asprintf(&text,
                                   "# Written by banger-agent when this VM took its identity; read by the agent at "
                                   "boot. Format: docs/guest-config.md\nHOSTNAME=%s\nADDRESS=%s/%u\nGATEWAY=%s\n"
                                   "MAC=%s\nDNS=%s\nFROM_MAC=%s\nTIME_NS=%llu\nENTROPY=%s\n%s",
                                   vm->name, vm->ip, host_prefix(m->host), host_bridge_ip(m->host), vm->mac,
                                   host_bridge_ip(m->host), from_mac ? from_mac : vm->mac, time_ns, hex,
                                   new_host_keys ? "NEW_HOST_KEYS=1\n" : "");
        explicit_bzero(hex, sizeof(hex));
        return k < 0 ? NULL : text;
}

/* Every restore: the guest's clock and random state are the snapshot's. A
 * clone must also take its own address, MAC and hostname, or it is not
 * ready; a VM restored in place carries on when its agent cannot do it. */
int vm_restore_reidentify(VmManager *m, const VmRecord *vm, const VmRestore *restore, AgentClient *agent,
                          VmProgress *p) {
        if (!vm->ip || !vm->mac)
                return 0;
        /* Not a clone: no other VM shares its address or random state (the
         * saved state is deleted once it runs), so it keeps who it is. */
        bool light = restore->suspended && !restore->new_host_keys &&
                     agent_hello_has_cap(agent_client_info(agent), "resumed");
        char *text = identity_request(m, vm, restore->snap, restore->new_host_keys, light);
        if (!text)
                return -ENOMEM;
        usec_t t0 = now_monotonic();
        int r = agent_client_identity(agent, text, restore->new_host_keys ? IDENTITY_KEYS_TIMEOUT : IDENTITY_TIMEOUT);
        explicit_bzero(text, strlen(text));
        free(text);
        if (r >= 0 && light) {
                vm_progress(p, vm->id, "identity",
                            "resumed in place: clock stepped, random generator reseeded (%llu ms)",
                            (unsigned long long) ((now_monotonic() - t0) / USEC_PER_MSEC));
                return 0;
        }
        if (r >= 0) {
                vm_progress(p, vm->id, "identity",
                            "the guest is now %s (%s, %s); clock stepped, random generator "
                            "reseeded%s (%llu ms)",
                            vm->name, vm->ip, vm->mac,
                            restore->new_host_keys ? ", new SSH host keys and machine id" : "",
                            (unsigned long long) ((now_monotonic() - t0) / USEC_PER_MSEC));
                return 0;
        }
        if (restore->reidentify)
                return r;
        vm_progress(p, vm->id, "identity", "%s", error_last_message() ? error_last_message() : strerror(-r));
        log_warning("vm %s: %s", vm->name, error_last_message() ? error_last_message() : strerror(-r));
        return 0;
}

static int open_vm_dir(VmManager *m, const VmRecord *vm, bool create) {
        _cleanup_free_ char *dir = vm_state_dir(m, vm->id);
        if (!dir)
                return -ENOMEM;
        if (create) {
                int r = mkdirat_private(AT_FDCWD, dir, 0700);
                if (r < 0)
                        return error_setf(r, "cannot create %s: %s", dir, strerror(-r));
        }
        int fd = open_dir_nofollow(AT_FDCWD, dir);
        return fd < 0 ? error_setf(fd, "cannot open %s", dir) : fd;
}

/* Copies of the snapshot's disks as the VM's (suffix: under another name
 * first, for an in-place restore). */
static int copy_snapshot_disks(VmManager *m, const VmRecord *vm, const SnapshotRecord *n, bool create,
                               const char *suffix, VmProgress *p) {
        _cleanup_close_ int vfd = open_vm_dir(m, vm, create);
        if (vfd < 0)
                return vfd;
        _cleanup_close_ int sfd = open_dir_nofollow(AT_FDCWD, n->dir);
        if (sfd < 0)
                return error_setf(sfd, "snapshot %s: its directory %s is missing", n->name, n->dir);
        usec_t t0 = now_monotonic();
        DiskCloneMethod used = 0;
        int r = vm_copy_disks(sfd, vfd, suffix, &used);
        if (r < 0)
                return error_setf(r, "snapshot %s: %s", n->name, error_last_message());
        vm_progress(p, vm->id, "disk", "disks from snapshot %s by %s in %llu ms", n->name, vm_copy_method_words(used),
                    (unsigned long long) ((now_monotonic() - t0) / USEC_PER_MSEC));
        return 0;
}

int vm_clone_disks(VmManager *m, const VmRecord *vm, const SnapshotRecord *n, VmProgress *p) {
        /* Held while copying: a delete of the snapshot waits. */
        _cleanup_(vm_unlockp) VmLock *snap_lock = vm_lock(m, n->id);
        return snap_lock ? copy_snapshot_disks(m, vm, n, true, NULL, p) : -ENOMEM;
}

/* The copies replace the VM's disks, one rename each. */
static int replace_disks(VmManager *m, const VmRecord *vm) {
        _cleanup_close_ int vfd = open_vm_dir(m, vm, false);
        if (vfd < 0)
                return vfd;
        for (size_t i = 0; i < VM_DISK_FILES; i++) {
                char from[64];
                snprintf(from, sizeof(from), "%s%s", vm_disk_files[i], RESTORE_SUFFIX);
                if (renameat(vfd, from, vfd, vm_disk_files[i]) < 0)
                        return error_setf(-errno, "cannot put %s in place: %m", vm_disk_files[i]);
        }
        return fsync(vfd) < 0 ? -errno : 0;
}

void vm_remove_restore_copies(VmManager *m, const char *id) {
        _cleanup_close_ int vfd = vm_dir_open(m, VM_DIR_STATE, id, false);
        for (size_t i = 0; vfd >= 0 && i < VM_DISK_FILES; i++) {
                char name[64];
                snprintf(name, sizeof(name), "%s%s", vm_disk_files[i], RESTORE_SUFFIX);
                (void) unlinkat(vfd, name, 0);
        }
}

/* The snapshot must be this VM's, complete, and of its VMM. */
static int restore_check(const VmRecord *vm, const SnapshotRecord *n) {
        if (n->state != SNAPSHOT_READY)
                return error_setf(-EBUSY, "snapshot %s is still being written", n->name);
        if (!n->vm_id || !streq(n->vm_id, vm->id))
                return error_setf(-EINVAL,
                                  "snapshot %s was taken of %s, not of %s; 'banger vm create --from-snapshot %s' "
                                  "makes a new VM from it",
                                  n->name, n->vm_name ? n->vm_name : "another VM", vm->name, n->name);
        if (n->vmm != vm->vmm)
                return error_setf(-EINVAL, "snapshot %s was saved by %s; VM %s runs on %s", n->name,
                                  vmm_kind_to_string(n->vmm), vm->name, vmm_kind_to_string(vm->vmm));
        return 0;
}

typedef struct RestoreArgs {
        const char *snapshot_id;
        VmProgress *p;
} RestoreArgs;

static int restore_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        RestoreArgs *a = userdata;
        _cleanup_(snapshot_record_done) SnapshotRecord n = {};
        _cleanup_(vm_unlockp) VmLock *snap_lock = vm_lock(m, a->snapshot_id);
        if (!snap_lock)
                return -ENOMEM;
        int r = store_snapshot_get_by_id(s, a->snapshot_id, &n);
        if (r >= 0)
                r = restore_check(vm, &n);
        if (r >= 0)
                r = operation_check();
        if (r >= 0)
                r = copy_snapshot_disks(m, vm, &n, false, RESTORE_SUFFIX, a->p);
        if (r < 0)
                return r;
        /* The point of no return of a vm.restore: a cancel until here leaves
         * the VM as it was (the copies go); after it, the restore completes. */
        char why[160];
        snprintf(why, sizeof(why), "has copied the disks of snapshot %s and is replacing those of VM %s", n.name,
                 vm->name);
        r = operation_commit(why);
        if (r < 0) {
                vm_remove_restore_copies(m, vm->id);
                return r;
        }
        /* What ran is discarded: no guest shutdown, the VMM is killed. */
        if (vm_state_is_live(vm->state)) {
                vm_progress(a->p, vm->id, "stop", "killing the running %s", vm->name);
                (void) vm_stop_locked(m, s, vm, 0, true);
        }
        r = replace_disks(m, vm);
        if (r < 0) {
                vm_remove_restore_copies(m, vm->id);
                return r;
        }
        /* A VM resized since keeps the size it had when it was saved. */
        vm->vcpus = n.vcpus;
        vm->mem_mib = n.mem_mib;
        VmRestore restore = { .snap = &n };
        return vm_start_restore_locked(m, s, vm, &restore, a->p);
}

int vm_op_restore(VmManager *m, Store *s, const char *vm_id, const char *snapshot_id, VmProgress *p) {
        RestoreArgs a = { .snapshot_id = snapshot_id, .p = p };
        return vm_with_lock(m, s, vm_id, VM_LOCK_PREEMPT, restore_locked, &a);
}

/* A warm start that failed: the template goes (every later create would
 * fail the same way), the VM's disks are made anew from its image and it
 * boots cold. */
static int fall_back_cold(VmManager *m, Store *s, VmRecord *vm, const ImageRecord *img, const SnapshotRecord *n,
                          VmProgress *p) {
        char why[512];
        snprintf(why, sizeof(why), "%s", error_last_message() ? error_last_message() : "unknown error");
        vm_progress(p, vm->id, "cold", "warm start failed, booting cold instead; template %s dropped: %s", n->name,
                    why);
        log_warning("vm %s: warm start from %s failed (%s); booting cold", vm->name, n->name, why);
        (void) snapshot_op_delete(m, s, n->id);
        vm_remove_files(m, vm->id);
        int r = vm_make_disks(m, vm, img, p);
        if (r >= 0)
                r = vm_start_locked(m, s, vm, p);
        if (r >= 0)
                vm_template_schedule(m, s, vm); /* a good one replaces it */
        return r;
}

int vm_start_from_snapshot(VmManager *m, Store *s, VmRecord *vm, const ImageRecord *img, const SnapshotRecord *n,
                           bool template, bool new_host_keys, VmProgress *p) {
        VmRestore restore = { .snap = n, .reidentify = true, .template = template, .new_host_keys = new_host_keys };
        int r = vm_start_restore_locked(m, s, vm, &restore, p);
        if (r >= 0 || !template)
                return r;
        return fall_back_cold(m, s, vm, img, n, p);
}
