/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between the VM service's files; not for the RPC layer. */

#include <pthread.h>
#include <stdbool.h>

#include "vm-manager.h"

typedef struct Host Host;

typedef struct VmLock {
        char *id;
        pthread_mutex_t mutex;
        unsigned users;
        bool preempt; /* a stop/kill/delete waits: a boot in progress gives up (guarded by m->lock) */
        struct VmLock *next;
} VmLock;

/* A running VM's VMM handles. Touched only under the VM's lock. */
typedef struct VmRuntime {
        char *id;
        VmmInstance inst;
        unsigned generation; /* bumped on every launch; watchers compare it */
        struct VmRuntime *next;
} VmRuntime;

struct VmManager {
        Daemon *d;
        Host *host;
        pthread_mutex_t lock;               /* guards the lists below, never held while blocking */
        pthread_mutex_t default_image_lock; /* one build of the default image at a time */
        VmLock *locks;
        VmRuntime *runtimes;
        unsigned next_generation;
        char *ssh_key;
        char *known_hosts;
        volatile bool stopping;
};

VmLock *vm_lock(VmManager *m, const char *id);
void vm_unlock(VmManager *m, VmLock *l);
/* For stop/kill/delete: ask the holder (a boot waiting for its agent) to give
 * up, then take the lock. */
VmLock *vm_lock_preempt(VmManager *m, const char *id);
/* Has someone asked the holder of id's lock to give up? */
bool vm_preempt_requested(VmManager *m, const char *id);
VmRuntime *vm_runtime_get(VmManager *m, const char *id, bool create);
void vm_runtime_drop(VmManager *m, const char *id);
void vm_watch(VmManager *m, const char *id, VmRuntime *rt);
/* Called by a watcher when a VMM process exited (any reason). */
void vm_handle_exit(VmManager *m, const char *id, unsigned generation);
char *vm_run_dir(VmManager *m, const char *id);
int vm_manager_read_pubkey(VmManager *m, char **ret);
/* vm-default-image.c: when ref is the configured default_image and no such
 * image exists, build it (debootstrap, as root) with progress; 0 when there
 * is nothing to do. */
int vm_default_image_ensure(VmManager *m, Store *s, const char *ref, VmProgress *p);
/* With the VM's lock held. */
int vm_start_locked(VmManager *m, Store *s, VmRecord *vm, VmProgress *p);
void vm_release_host(VmManager *m, Store *s, const VmRecord *vm);

/* Strings a VmmConfig points into. */
typedef struct VmLaunchSpec {
        VmmConfig cfg;
        char *run_dir, *log_path, *kernel, *initrd, *cmdline, *root_img, *work_img;
} VmLaunchSpec;

int vm_launch_spec_build(VmManager *m, Store *s, const VmRecord *vm, VmLaunchSpec *ret);
void vm_launch_spec_done(VmLaunchSpec *spec);
