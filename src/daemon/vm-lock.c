/* SPDX-License-Identifier: MIT */
/* Per-VM locks (operations on one VM are serialised; a stop, kill or delete
 * may ask a boot in progress to give up) and the VMM handles of running VMs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "string-util.h"
#include "vm-internal.h"

VmLock *vm_lock(VmManager *m, const char *id) {
        pthread_mutex_lock(&m->lock);
        VmLock *l;
        for (l = m->locks; l; l = l->next)
                if (streq(l->id, id))
                        break;
        if (!l) {
                l = calloc(1, sizeof(*l));
                if (!l || !(l->id = strdup(id))) {
                        free(l);
                        pthread_mutex_unlock(&m->lock);
                        return NULL;
                }
                pthread_mutex_init(&l->mutex, NULL);
                l->m = m;
                l->next = m->locks;
                m->locks = l;
        }
        l->users++;
        pthread_mutex_unlock(&m->lock);
        pthread_mutex_lock(&l->mutex);
        return l;
}

static void vm_set_preempt(VmManager *m, const char *id, bool on) {
        pthread_mutex_lock(&m->lock);
        for (VmLock *l = m->locks; l; l = l->next)
                if (streq(l->id, id))
                        l->preempt = on;
        pthread_mutex_unlock(&m->lock);
}

VmLock *vm_lock_preempt(VmManager *m, const char *id) {
        vm_set_preempt(m, id, true);
        VmLock *l = vm_lock(m, id);
        vm_set_preempt(m, id, false);
        return l;
}

bool vm_preempt_requested(VmManager *m, const char *id) {
        bool r = false;
        pthread_mutex_lock(&m->lock);
        for (VmLock *l = m->locks; l; l = l->next)
                if (streq(l->id, id))
                        r = l->preempt;
        pthread_mutex_unlock(&m->lock);
        return r;
}

void vm_unlock(VmLock *l) {
        if (!l)
                return;
        VmManager *m = l->m;
        pthread_mutex_unlock(&l->mutex);
        pthread_mutex_lock(&m->lock);
        if (--l->users == 0) {
                VmLock **pp = &m->locks;
                while (*pp != l)
                        pp = &(*pp)->next;
                *pp = l->next;
                pthread_mutex_destroy(&l->mutex);
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
        pthread_mutex_lock(&m->lock);
        for (VmRuntime **pp = &m->runtimes; *pp; pp = &(*pp)->next) {
                VmRuntime *rt = *pp;
                if (!streq(rt->id, id))
                        continue;
                *pp = rt->next;
                vmm_instance_done(&rt->inst);
                free(rt->id);
                free(rt);
                break;
        }
        pthread_mutex_unlock(&m->lock);
}
