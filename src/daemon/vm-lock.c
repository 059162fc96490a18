/* SPDX-License-Identifier: MIT */
/* Per-VM locks (operations on one VM are serialised; a stop, kill or delete
 * may ask a boot in progress to give up) and the VMM handles of running VMs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "operation.h"
#include "string-util.h"
#include "vm-internal.h"

/* With m->lock held. */
static VmLock *lock_find(VmManager *m, const char *id) {
        for (VmLock *l = m->locks; l; l = l->next)
                if (streq(l->id, id))
                        return l;
        return NULL;
}

static VmLock *lock_new(VmManager *m, const char *id) {
        VmLock *l = calloc(1, sizeof(*l));
        if (!l)
                return NULL;
        *l = (VmLock){
                .m = m, .id = strdup(id), .waiting_fd = -EBADF, .preempt_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)
        };
        if (!l->id || l->preempt_fd < 0) {
                safe_close(l->preempt_fd);
                free(l->id);
                free(l);
                return NULL;
        }
        pthread_mutex_init(&l->mutex, NULL);
        l->next = m->locks;
        m->locks = l;
        return l;
}

/* The holder's operation was cancelled (operations.cancel): tell a boot
 * in progress at once, as a stop does. Under the operation's lock. */
static void lock_cancel(void *userdata) {
        VmLock *l = userdata;
        pthread_mutex_lock(&l->m->lock);
        l->cancelled = true;
        uint64_t v = 1;
        (void) !write(l->preempt_fd, &v, sizeof(v));
        if (l->waiting_fd >= 0)
                (void) shutdown(l->waiting_fd, SHUT_RDWR);
        pthread_mutex_unlock(&l->m->lock);
}

VmLock *vm_lock(VmManager *m, const char *id) {
        pthread_mutex_lock(&m->lock);
        VmLock *l = lock_find(m, id);
        if (!l)
                l = lock_new(m, id);
        if (l)
                l->users++;
        pthread_mutex_unlock(&m->lock);
        if (!l)
                return NULL;
        pthread_mutex_lock(&l->mutex);
        /* Held for an operation someone may cancel: its waits end too. */
        l->op = operation_current();
        if (operation_on_cancel(l->op, lock_cancel, l) < 0)
                l->op = NULL; /* not cancellable in the boot wait; its steps still check */
        return l;
}

static void vm_set_preempt(VmManager *m, const char *id, bool on) {
        pthread_mutex_lock(&m->lock);
        VmLock *l = lock_find(m, id);
        if (l) {
                l->preempt = on;
                uint64_t v = 1;
                if (on)
                        (void) !write(l->preempt_fd, &v, sizeof(v));
                else
                        (void) !read(l->preempt_fd, &v, sizeof(v));
                if (on && l->waiting_fd >= 0)
                        (void) shutdown(l->waiting_fd, SHUT_RDWR);
        }
        pthread_mutex_unlock(&m->lock);
}

VmLock *vm_lock_preempt(VmManager *m, const char *id) {
        vm_set_preempt(m, id, true);
        VmLock *l = vm_lock(m, id);
        vm_set_preempt(m, id, false);
        return l;
}

bool vm_cancel_requested(VmManager *m, const char *id) {
        pthread_mutex_lock(&m->lock);
        VmLock *l = lock_find(m, id);
        bool r = l && l->cancelled;
        pthread_mutex_unlock(&m->lock);
        return r;
}

bool vm_preempt_requested(VmManager *m, const char *id) {
        pthread_mutex_lock(&m->lock);
        VmLock *l = lock_find(m, id);
        bool r = l && l->preempt;
        pthread_mutex_unlock(&m->lock);
        return r;
}

int vm_preempt_fd(VmManager *m, const char *id) {
        pthread_mutex_lock(&m->lock);
        VmLock *l = lock_find(m, id);
        int fd = l ? l->preempt_fd : -ENOENT;
        pthread_mutex_unlock(&m->lock);
        return fd;
}

int vm_preempt_set_waiting_fd(VmManager *m, const char *id, int fd) {
        pthread_mutex_lock(&m->lock);
        VmLock *l = lock_find(m, id);
        int r = !l ? -ENOENT : fd >= 0 && (l->preempt || l->cancelled) ? -ECANCELED : 0;
        if (r >= 0)
                l->waiting_fd = fd;
        pthread_mutex_unlock(&m->lock);
        return r;
}

void vm_unlock(VmLock *l) {
        if (!l)
                return;
        VmManager *m = l->m;
        operation_on_cancel_remove(l->op, lock_cancel, l);
        l->op = NULL;
        pthread_mutex_lock(&m->lock);
        if (l->cancelled && !l->preempt) { /* the next holder starts afresh */
                uint64_t v;
                (void) !read(l->preempt_fd, &v, sizeof(v));
        }
        l->cancelled = false;
        pthread_mutex_unlock(&m->lock);
        pthread_mutex_unlock(&l->mutex);
        pthread_mutex_lock(&m->lock);
        if (--l->users == 0) {
                VmLock **pp = &m->locks;
                while (*pp != l)
                        pp = &(*pp)->next;
                *pp = l->next;
                pthread_mutex_destroy(&l->mutex);
                safe_close(l->preempt_fd);
                free(l->id);
                free(l);
        }
        pthread_mutex_unlock(&m->lock);
}

int vm_with_lock(VmManager *m, Store *s, const char *id, VmLockFlags flags, VmLockedFn fn, void *userdata) {
        _cleanup_(vm_unlockp) VmLock *l = flags & VM_LOCK_PREEMPT ? vm_lock_preempt(m, id) : vm_lock(m, id);
        if (!l)
                return -ENOMEM;
        _cleanup_(vm_record_done) VmRecord vm = {};
        int r = store_vm_get_by_id(s, id, &vm);
        return r < 0 ? r : fn(m, s, &vm, userdata);
}

/* Callers hold the VM's lock for everything they do with the runtime. */
VmRuntime *vm_runtime_get(VmManager *m, const char *id, bool create) {
        pthread_mutex_lock(&m->lock);
        VmRuntime *rt;
        for (rt = m->runtimes; rt; rt = rt->next)
                if (streq(rt->id, id))
                        break;
        if (!rt && create) {
                rt = calloc(1, sizeof(*rt));
                if (rt && (rt->id = strdup(id))) {
                        rt->inst.proc = PROCESS_NULL;
                        rt->next = m->runtimes;
                        m->runtimes = rt;
                } else {
                        free(rt);
                        rt = NULL;
                }
        }
        pthread_mutex_unlock(&m->lock);
        return rt;
}

void vm_runtime_drop(VmManager *m, const char *id) {
        VmRuntime *gone = NULL;
        pthread_mutex_lock(&m->lock);
        for (VmRuntime **pp = &m->runtimes; *pp; pp = &(*pp)->next)
                if (streq((*pp)->id, id)) {
                        gone = *pp;
                        *pp = gone->next;
                        break;
                }
        pthread_mutex_unlock(&m->lock);
        if (!gone)
                return;
        /* Outside the lock: stopping the agent's multiplexer joins its thread. */
        vm_forwards_free(gone->forwards); /* before the mux its connections use */
        vm_agent_stop(gone->agent);
        vmm_instance_done(&gone->inst);
        free(gone->id);
        free(gone);
}
