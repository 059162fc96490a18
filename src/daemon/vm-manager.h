/* SPDX-License-Identifier: MIT */
#pragma once

/* The VM service: everything the vm.* methods do. Operations block (disk
 * clones, VMM API calls, waiting for the guest agent) and run in worker
 * threads, each with its own Store connection. Operations on one VM are
 * serialised by a per-VM lock; different VMs proceed in parallel. */

#include <jansson.h>
#include <stdbool.h>

#include "agent-client.h"
#include "port-spec.h"
#include "store.h"
#include "vmm-driver.h"

typedef struct Daemon Daemon;
typedef struct VmManager VmManager;
typedef struct RpcCall RpcCall;

/* Progress reporting to the caller (may be NULL). */
typedef struct VmProgress {
        RpcCall *call;
        usec_t started;
        char vm_id[40]; /* set once the VM is recorded, so a failure can name it */
} VmProgress;

void vm_progress(VmProgress *p, const char *vm_id, const char *stage, const char *fmt, ...) _printf_(4, 5);

typedef struct VmCreateRequest {
        const char *name;  /* NULL: generated */
        const char *image; /* NULL: config default */
        unsigned vcpu;
        unsigned long long memory_mib;
        unsigned long long disk_bytes;
        bool nat;
        int vmm; /* VmmKind, or -1: config default */
        bool no_start;
        /* A clone: disks, size, image and VMM from this snapshot, which is
         * restored instead of booted; nothing is left if that fails. */
        const SnapshotRecord *snapshot;
        bool cold;             /* boot even when a template would fit */
        bool new_host_keys;    /* a clone: new SSH host keys and machine id in the guest */
        const PortSpec *ports; /* port forwards (vm create -p) */
        size_t n_ports;
        int64_t idle_timeout_sec; /* as VmRecord's: 0 the config's */
        VmIdleAction idle_action;
} VmCreateRequest;

int vm_manager_new(Daemon *d, VmManager **ret);
VmManager *vm_manager_free(VmManager *m);
/* At daemon exit: stop the helper we started; leave VMs running. */
void vm_manager_shutdown(VmManager *m);

/* At daemon start: re-attach to every VM recorded as running (PID verified
 * by the driver), mark the others stopped and release their host resources,
 * then reconcile host resources nobody owns. */
int vm_manager_recover(VmManager *m);

/* Default VMM for new VMs: Firecracker when its binary and /dev/kvm are
 * usable, else QEMU (config default_vmm may force one). */
VmmKind vm_manager_default_vmm(VmManager *m);

/* Resolve a reference (name, full id, unique id prefix). -ENOENT or
 * -ENOTUNIQ (message lists the matches) with error_setf(). */
int vm_resolve(Store *s, const char *ref, VmRecord *ret);

/* The VM object of docs/protocol.md. */
json_t *vm_to_json(VmManager *m, Store *s, const VmRecord *vm);
/* The same with the image's name already known (a listing reads the images
 * once rather than once per VM); NULL: the image id is shown. */
json_t *vm_to_json_image(VmManager *m, const VmRecord *vm, const char *image_name);

int vm_op_create(VmManager *m, Store *s, const VmCreateRequest *req, VmProgress *p, VmRecord *ret);
/* Start and stop return 1 when the VM already was in that state. */
int vm_op_start(VmManager *m, Store *s, const char *id, VmProgress *p);
int vm_op_stop(VmManager *m, Store *s, const char *id, usec_t timeout);
int vm_op_kill(VmManager *m, Store *s, const char *id, int sig);
/* VM_DELETE_ONLY_IDLE: only when, under the VM's lock, it is still stopped,
 * created or in error (prune); -EBUSY otherwise. */
#define VM_DELETE_ONLY_IDLE 1
/* VM_DELETE_FORCE: its snapshots go too (without it, a VM with snapshots
 * is refused, naming them). */
#define VM_DELETE_FORCE 2
/* ret_warning (may be NULL): set, or NULL, when the delete succeeded; what the
 * user must know of it (forced while its VMM may still run). */
int vm_op_delete(VmManager *m, Store *s, const char *id, int flags, char **ret_warning);
int vm_op_set(VmManager *m, Store *s, const char *id, unsigned vcpu, unsigned long long memory_mib);
/* The VM's own idle timeout (VmRecord's encoding; set false: unchanged) and
 * action (-1: unchanged), in any state. */
int vm_op_set_idle(VmManager *m, Store *s, const char *id, bool set, int64_t timeout_sec, int action);
/* vm-idle.c. A use of the VM (exec, ssh, cp, a console follower): its idle
 * time counts from now; record: also in the store (vm show, after a
 * restart). */
void vm_touch(VmManager *m, Store *s, const char *id, bool record);
/* When it was last used (realtime; 0: never seen). */
usec_t vm_last_used(VmManager *m, const VmRecord *vm);
/* Any thread: a VM started or its idle settings changed: check soon. */
void vm_idle_kick(VmManager *m);
/* RPC_PARAM_CUSTOM parsers: "idle_timeout" (a duration string, seconds,
 * "off" or "default") into an int64_t in VmRecord's encoding, and
 * "idle_action" ("stop", "suspend" or "default") into an int. */
int vm_idle_timeout_param(json_t *v, void *field);
int vm_idle_action_param(json_t *v, void *field);
#define VM_IDLE_TIMEOUT_WORDS "a duration like \"30m\" or \"1h30m\", \"off\" or \"default\""
#define VM_IDLE_ACTION_WORDS "\"stop\", \"suspend\" or \"default\""
/* vm-suspend.c: save a running VM's memory and devices into its directory
 * and end its VMM (state suspended); vm_op_start resumes it. 1 when it was
 * suspended already. */
int vm_op_suspend(VmManager *m, Store *s, const char *id, VmProgress *p);
/* What vm_op_stop and vm_op_kill (SIGKILL) return for a suspended VM: it is
 * stopped and its saved state discarded. */
#define VM_OP_DISCARDED_SUSPEND 2
/* Before a use of the guest (exec, ssh, cp, a forwarded connection): a
 * suspended VM resumes (stage "resuming"); any other is left as it is. */
int vm_op_wake(VmManager *m, Store *s, const char *id, VmProgress *p);
/* vm-wake.c, on the loop: a DNS lookup of the suspended VM id's name resumes
 * it in a worker (one at a time per VM; nothing waits for it). */
void vm_wake_on_lookup(VmManager *m, const char *id, const char *name);
/* vm-pause.c: the VMM's own pause (pause true) or resume; a VM already in
 * the wanted state is left alone. */
int vm_op_pause(VmManager *m, Store *s, const char *id, bool pause);

/* ---- snapshots ---- */

typedef struct VmSnapshotRequest {
        const char *name;      /* NULL: <name_stem>-<n> */
        const char *name_stem; /* NULL: the VM's name */
        bool stop;             /* stop the VM afterwards instead of letting it run on */
        SnapshotKind kind;
        const char *fingerprint; /* templates: what they are made from */
        const char *repository;  /* workspace snapshots: the host work tree */
} VmSnapshotRequest;

/* vm-snapshot.c: pause, save the VMM's state, copy the disks, resume (or
 * stop). Nothing is left of a snapshot that failed. */
int vm_op_snapshot(VmManager *m, Store *s, const char *vm_id, const VmSnapshotRequest *req, VmProgress *p,
                   SnapshotRecord *ret);

/* vm-restore.c: roll a VM back to one of its snapshots, in place: its VMM
 * is killed, its disks replaced by copies of the snapshot's, and the saved
 * state loaded into a new VMM. */
int vm_op_restore(VmManager *m, Store *s, const char *vm_id, const char *snapshot_id, VmProgress *p);

/* snapshot-ops.c */
/* By name, full id or unique id prefix; -ENOENT or -ENOTUNIQ with a message. */
int snapshot_resolve(Store *s, const char *ref, SnapshotRecord *ret);
/* The snapshot object of docs/protocol.md. */
json_t *snapshot_to_json(Store *s, const SnapshotRecord *n);
/* Remove its files, then its record (waits for a clone copying its disks). */
int snapshot_op_delete(VmManager *m, Store *s, const char *id);
/* Before an image (image_id) or a VM (vm_id) goes: its templates are
 * deleted; other snapshots made from it are too with force, else -EBUSY
 * names them. */
int snapshot_dependents_delete(VmManager *m, Store *s, const char *image_id, const char *vm_id, const char *what,
                               bool force);
/* At daemon start, after the VMs are re-attached: snapshots a crash
 * interrupted are removed (a VM they paused runs again), and directories no
 * record names are swept. */
void vm_snapshots_recover(VmManager *m, Store *s);

/* A session with the guest agent of a running VM (hello done), each step
 * within timeout. */
int vm_agent_open(VmManager *m, Store *s, const char *id, usec_t timeout, AgentClient **ret);

/* Where a client connects to the agent itself (vm.agent). */
int vm_agent_endpoint(VmManager *m, Store *s, const char *id, char **ret_socket, unsigned *ret_handshake_port);

/* Paths. */
char *vm_state_dir(VmManager *m, const char *id);
char *vm_console_log(VmManager *m, const char *id);
/* The console log opened read-only through the state directory, or -errno. */
int vm_console_log_open(VmManager *m, const char *id);
/* Its last lines (at most max bytes, from a line start, made printable),
 * for error replies; NULL when there is none. */
char *vm_log_tail(VmManager *m, const char *id, size_t max);

/* A piece of the console as kept on disk (console.log.1 then console.log),
 * and where to continue: next_offset in the part whose identity (inode and
 * birth time) is next_file. */
typedef struct VmConsoleChunk {
        char *data;
        size_t len;
        uint64_t next_offset, next_file;
        uint64_t kept; /* bytes on disk, both parts */
} VmConsoleChunk;

/* From offset in the part with identity file (0: console.log; a part rotated
 * away: from the oldest part kept), or, when !from_offset, the last tail
 * bytes; at most max bytes. */
int vm_console_read(VmManager *m, const char *id, bool from_offset, uint64_t offset, uint64_t file, size_t tail,
                    size_t max, VmConsoleChunk *ret);
const char *vm_manager_ssh_key(VmManager *m);
const char *vm_manager_known_hosts(VmManager *m);
/* Does <name>.vm resolve for the host's own resolver (host.h)? */
bool vm_manager_names_resolve(VmManager *m);

/* vm-limits.c: what one VM may have on this host (online CPUs, RAM). */
typedef struct VmHostLimits {
        unsigned vcpu;
        unsigned long long memory_mib;
} VmHostLimits;
void vm_host_limits(VmHostLimits *ret);
#define VM_MIB_STRLEN 32
/* "512 MiB", "23.5 GiB". */
char *vm_format_mib(char buf[static VM_MIB_STRLEN], unsigned long long mib);
/* 0, or -E2BIG with a message saying what to change with 'banger vm set'. */
int vm_size_fits_host(const VmRecord *vm);

/* Generate an adjective-noun name not yet used. */
int vm_name_generate(Store *s, char **ret);

/* ---- port forwards (vm-port.c, vm-forward.c) ---- */

/* Record a forward and, on a running VM, listen at once; a host port that
 * is taken, privileged or a duplicate is refused with nothing made. *ret
 * is the forward object of docs/protocol.md. */
int vm_op_port_add(VmManager *m, Store *s, const char *id, const PortSpec *spec, json_t **ret);
/* Remove it, closing its listener and connections. */
int vm_op_port_remove(VmManager *m, Store *s, const char *id, const PortSpec *spec);
/* The VM's forwards as an array of forward objects. */
json_t *vm_forwards_json(VmManager *m, Store *s, const VmRecord *vm);
json_t *vm_forward_to_json(VmManager *m, const StoreForward *f);
