/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between the VM service's files (vm-*.c); not for the RPC layer,
 * which uses vm-manager.h. */

#include <pthread.h>
#include <stdbool.h>

#include "agent-client.h"
#include "daemon.h"
#include "host.h"
#include "vm-manager.h"

typedef struct Operation Operation;

typedef struct VmLock {
        VmManager *m;
        char *id;
        pthread_mutex_t mutex;
        unsigned users;
        /* A stop, kill or delete waits for the lock: a boot in progress gives
         * up. Guarded by m->lock, like the two fds that tell the boot at once:
         * preempt_fd (an eventfd) becomes readable, waiting_fd (the agent
         * socket the boot waits on) is shut down. */
        bool preempt;
        int preempt_fd;
        int waiting_fd;
        /* The holder's operation was cancelled: the same two fds tell its
         * boot; guarded by m->lock too. op: that operation (the holder's). */
        bool cancelled;
        Operation *op;
        struct VmLock *next;
} VmLock;

typedef struct VmAgent VmAgent;
typedef struct VmForwards VmForwards;

/* A running VM's VMM handles. Touched only under the VM's lock. */
typedef struct VmRuntime {
        char *id;
        VmmInstance inst;
        unsigned generation;  /* bumped on every launch; watchers compare it */
        VmAgent *agent;       /* the guest agent's multiplexer (vm-agent.c) */
        VmForwards *forwards; /* its port forwards' listeners (vm-forward.c); the pointer under m->lock */
        usec_t touched;       /* realtime: its last use the daemon saw itself (vm-idle.c), under m->lock */
        struct VmRuntime *next;
} VmRuntime;

typedef struct VmIdle VmIdle;

struct VmManager {
        Daemon *d;
        VmIdle *idle;                      /* the idle check (vm-idle.c): loop only */
        struct VmSleeper *sleepers;        /* suspended VMs' bound ports (vm-wake.c), under lock */
        struct VmLookupWake *lookup_wakes; /* resumes for DNS lookups that run (vm-wake.c): loop only */
        Host *host;
        pthread_mutex_t lock;               /* guards the lists below, never held while blocking */
        pthread_mutex_t default_image_lock; /* one build of the default image at a time */
        VmLock *locks;
        VmRuntime *runtimes;
        unsigned next_generation;
        char *ssh_key;
        char *known_hosts;
};

/* vm-lock.c */
VmLock *vm_lock(VmManager *m, const char *id);
void vm_unlock(VmLock *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(VmLock *, vm_unlock);
/* For stop/kill/delete: ask the holder (a boot waiting for its agent) to give
 * up, then take the lock. */
VmLock *vm_lock_preempt(VmManager *m, const char *id);
/* Has someone asked the holder of id's lock to give up? */
bool vm_preempt_requested(VmManager *m, const char *id);
/* Was the operation holding id's lock cancelled (operations.cancel)? */
bool vm_cancel_requested(VmManager *m, const char *id);
/* For the holder of id's lock: an fd that becomes readable when someone asks
 * it to give up (valid while the lock is held). */
int vm_preempt_fd(VmManager *m, const char *id);
/* For the holder of id's lock, while it waits on the socket fd (-EBADF: no
 * longer): asking it to give up shuts fd down, so the wait ends at once.
 * -ECANCELED when that was asked already. */
int vm_preempt_set_waiting_fd(VmManager *m, const char *id, int fd);

/* While a guest boots, before asking it again: wait for its VMM to exit or
 * a stop, kill or delete, at most until `until`. 0 to ask again, else why
 * not (-ECHILD, -ECANCELED). */
int vm_boot_wait_retry(VmManager *m, const char *id, const VmmDriver *drv, VmmInstance *inst, usec_t until);

typedef enum VmLockFlags {
        VM_LOCK_PREEMPT = 1 << 0, /* as vm_lock_preempt() */
} VmLockFlags;
typedef int (*VmLockedFn)(VmManager *m, Store *s, VmRecord *vm, void *userdata);
/* Take id's lock, read its record, and run fn on it. */
int vm_with_lock(VmManager *m, Store *s, const char *id, VmLockFlags flags, VmLockedFn fn, void *userdata);
VmRuntime *vm_runtime_get(VmManager *m, const char *id, bool create);
void vm_runtime_drop(VmManager *m, const char *id);

/* vm-exit.c: watch rt's VMM; when it exits by itself, the VM is stopped. */
void vm_watch(VmManager *m, const char *id, VmRuntime *rt);

/* vm-manager.c */
/* A VM's directory vms/<id>: its files in the state directory, its sockets
 * in the runtime directory. Reached through the daemon's directory fds. */
typedef enum VmDir {
        VM_DIR_STATE,
        VM_DIR_RUNTIME,
} VmDir;
/* Open it (create: make it first, 0700, if missing); -errno. */
int vm_dir_open(VmManager *m, VmDir where, const char *id, bool create);
/* Remove it (missing is not an error): in the state directory only once
 * empty; in the runtime directory with all the VMM left there (sockets, pid
 * files, drive links), never following a link. */
int vm_dir_remove(VmManager *m, VmDir where, const char *id);
/* The runtime directory's path, for the VMM (which needs paths). */
char *vm_run_dir(VmManager *m, const char *id);
int vm_manager_read_pubkey(VmManager *m, char **ret);

/* vm-default-image.c: when ref is the configured default_image and no such
 * image exists, build it (debootstrap, as root) with progress; 0 when there
 * is nothing to do. */
int vm_default_image_ensure(VmManager *m, Store *s, const char *ref, VmProgress *p);

/* vm-launch.c: strings a VmmConfig points into. */
typedef struct VmLaunchSpec {
        VmmConfig cfg;
        char *run_dir, *log_path, *console_path, *kernel, *initrd, *cmdline, *root_img, *work_img;
} VmLaunchSpec;

/* Also opens the VM's console stream (console-stream.h): the VMM writes
 * into log_path, a FIFO the daemon reads. */
int vm_launch_spec_build(VmManager *m, Store *s, const VmRecord *vm, VmLaunchSpec *ret);
void vm_launch_spec_done(VmLaunchSpec *spec);

/* vm-network.c */
/* Address (unique, from the store), MAC and vsock CID derived from it, TAP name. */
int vm_assign_network(VmManager *m, Store *s, VmRecord *vm);
/* Record the TAP handle, then create the TAP on the bridge. */
int vm_take_tap(VmManager *m, Store *s, const VmRecord *vm);
/* Release everything a stopped VM does not keep: TAP, NAT entry, sockets. */
void vm_release_host(VmManager *m, Store *s, const VmRecord *vm);

/* vm-disk.c */
int vm_make_disks(VmManager *m, const VmRecord *vm, const ImageRecord *img, VmProgress *p);
void vm_remove_files(VmManager *m, const char *id);

/* vm-agent.c */
/* Start the VM's agent multiplexer (its socket exists on return). */
int vm_agent_start(VmManager *m, const VmRecord *vm, VmRuntime *rt);
/* Stop it (joins its thread; not under m->lock); NULL is fine. */
void vm_agent_stop(VmAgent *a);
/* Its clients now and when one last came or went (realtime); under m->lock. */
void vm_agent_usage(VmAgent *a, unsigned *ret_clients, usec_t *ret_last);
char *vm_agent_mux_path(VmManager *m, const char *id);
/* Say hello through the multiplexer, retrying until the deadline; a stop,
 * kill or delete (preempt) or the VMM's exit ends the wait early.
 * -EPROTONOSUPPORT: the agent speaks protocol 1 (the message says so). */
int vm_agent_wait(VmManager *m, const char *id, const VmmDriver *drv, VmmInstance *inst, usec_t deadline,
                  AgentClient **ret);
/* Ask the agent to sync and power the guest off (all within deadline). */
int vm_agent_poweroff(VmManager *m, const char *id, usec_t deadline);

/* vm-start.c, with the VM's lock held: 0 started, 1 already running. */
int vm_start_locked(VmManager *m, Store *s, VmRecord *vm, VmProgress *p);
/* A start that loads a snapshot's saved state instead of booting. */
typedef struct VmRestore {
        const SnapshotRecord *snap;
        bool reidentify;    /* a new VM: the agent gives the guest its own identity */
        bool template;      /* a warm start (the progress says so) */
        bool new_host_keys; /* a clone asked for its own SSH host keys and machine id */
        bool suspended;     /* a resume from vm suspend's saved state (the progress says so) */
} VmRestore;
int vm_start_restore_locked(VmManager *m, Store *s, VmRecord *vm, const VmRestore *restore, VmProgress *p);
/* vm-restore.c: point the launch at the saved state; after the agent's
 * hello, re-identify the guest (a clone) and step its clock. */
void vm_restore_configure(const VmRestore *restore, VmmConfig *cfg, VmProgress *p, const char *vm_id);
int vm_restore_reidentify(VmManager *m, const VmRecord *vm, const VmRestore *restore, AgentClient *agent,
                          VmProgress *p);
/* Remove the copies of a snapshot's disks an in-place restore puts beside
 * the VM's before renaming them over (a restore cut short leaves them). */
void vm_remove_restore_copies(VmManager *m, const char *id);
/* A new VM's disks as copies of a snapshot's. */
int vm_clone_disks(VmManager *m, const VmRecord *vm, const SnapshotRecord *n, VmProgress *p);
/* Start a new VM from a snapshot (its disks already copied): for a
 * template, a failed restore falls back to new disks from img and a cold
 * boot, and says so. */
int vm_start_from_snapshot(VmManager *m, Store *s, VmRecord *vm, const ImageRecord *img, const SnapshotRecord *n,
                           bool template, bool new_host_keys, VmProgress *p);
/* vm-template.c: the template for a create, when one fits and is current
 * (-ENOENT otherwise; a stale one is deleted); after a cold boot, make one
 * in the background (needs the VM's lock: call it with the lock held so the
 * template is taken before anyone else acts on the VM). */
int vm_template_find(VmManager *m, Store *s, const ImageRecord *img, const VmCreateRequest *req, SnapshotRecord *ret,
                     VmProgress *p);
void vm_template_schedule(VmManager *m, Store *s, const VmRecord *vm);
/* Write the record; a failure is logged (and returned). */
int vm_save(Store *s, VmRecord *vm);
/* The runtime facts vm_to_json() shows as "ready". */
void vm_set_runtime(VmRecord *vm, bool agent, bool ssh);

/* vm-suspend.c, with the VM's lock held. Suspend a running VM: 0, or 1 when
 * it already is. */
int vm_suspend_locked(VmManager *m, Store *s, VmRecord *vm, VmProgress *p);
/* Resume a suspended VM from its saved state (deleted once it runs); boot
 * it cold, saying why, when that state cannot be loaded. */
int vm_resume_locked(VmManager *m, Store *s, VmRecord *vm, VmProgress *p);
/* Stop a suspended VM: its saved state goes; VM_OP_DISCARDED_SUSPEND. */
int vm_suspend_discard(VmManager *m, Store *s, VmRecord *vm);
/* Remove a saved state and a partial one (missing is fine). */
void vm_suspend_remove_files(VmManager *m, const char *id);
/* At daemon start, after the VM's re-attach: finish what a suspend the
 * daemon's death interrupted left, so the VM runs or is suspended. */
void vm_suspend_recover(VmManager *m, Store *s, VmRecord *vm);

/* vm-wake.c: a suspended VM's port forwards stay bound; the first
 * connection to one resumes it. Call with the VM's lock held, after its
 * runtime went (its VMM's listeners are closed by then). */
void vm_wake_on_forwards(VmManager *m, Store *s, const VmRecord *vm);
/* For the start that resumes it: the bound listeners (1), or 0 when there
 * are none (the start binds them). */
int vm_wake_take_forwards(VmManager *m, const char *id, VmForwards **ret);
/* Its ports are closed (stop, kill, delete, a cold boot). */
void vm_wake_forget(VmManager *m, const char *id);
/* A suspended VM's forwards changed (vm port add/rm): bind them anew. */
void vm_wake_refresh(VmManager *m, Store *s, const VmRecord *vm);
/* At vm_manager_free(). */
void vm_wake_free_all(VmManager *m);

/* vm-idle.c: the idle check's timer on the loop (first check soon after
 * start), and its end. */
int vm_idle_start(VmManager *m);
void vm_idle_free(VmManager *m);

/* vm-lost-vmm.c, with the VM's lock held, for a VM in state error without
 * a VMM of ours: recovery could not identify its VMM, which may still run.
 * Look for it again (for a bounded time); found: 0, and *ret is the VM's
 * runtime holding it, with no exit watcher (the caller ends it). -ESRCH:
 * none runs. Else an error (error_setf) naming the runtime directory's
 * vmm.lock and, when verb ("stop", "kill", "delete") is given, what to do. */
int vm_lost_vmm_find(VmManager *m, Store *s, const VmRecord *vm, const char *verb, VmRuntime **ret);

/* vm-stop.c, with the VM's lock held: record it stopped, then release its
 * host resources (the NAT table is regenerated from the database). */
void vm_mark_stopped(VmManager *m, Store *s, VmRecord *vm);
/* Stop it: the agent powers the guest off within timeout, else (or with
 * force at once) the VMM is killed. */
int vm_stop_locked(VmManager *m, Store *s, VmRecord *vm, usec_t timeout, bool force);

/* vm-forward.c: a VM's port forwards while it runs. */
/* Bind every recorded forward of vm (strict: the first that fails fails
 * all, with a sentence naming the host port). */
int vm_forwards_open(VmManager *m, Store *s, const VmRecord *vm, bool strict, VmForwards **ret);
/* The listening sockets not yet served, at most max (fw keeps them). */
size_t vm_forwards_fds(const VmForwards *fw, int *fds, size_t max);
/* Serve them through a forwarder of the VM's (takes fw, also on failure). */
int vm_forwards_attach(VmManager *m, const VmRecord *vm, VmRuntime *rt, VmForwards *fw);
/* After a daemon restart: what can be bound again is served, the rest logged. */
void vm_forwards_restore(VmManager *m, Store *s, const VmRecord *vm, VmRuntime *rt);
/* Close the listeners and connections (joins the forwarder's thread; not
 * under m->lock). NULL is fine. */
void vm_forwards_free(VmForwards *fw);
/* A listening socket for f, or -errno with a sentence that says what to do. */
int vm_forward_listen(const char *vm_name, const StoreForward *f);
/* On a running VM: serve one more (fd taken), or stop serving one. */
int vm_forwards_add_live(VmManager *m, const VmRecord *vm, VmRuntime *rt, int64_t id, int fd, uint16_t guest_port);
void vm_forwards_remove_live(VmManager *m, VmRuntime *rt, int64_t id);
/* vm-port.c: for vm create -p: every host port free now (nothing kept), and
 * the rows. */
int vm_ports_check_free(const char *vm_name, const PortSpec *ports, size_t n);
int vm_ports_record(Store *s, const char *vm_id, const PortSpec *ports, size_t n);
