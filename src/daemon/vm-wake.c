/* SPDX-License-Identifier: MIT */
/* Waking a suspended VM by a port-forwarded connection or a DNS lookup of
 * its name. While a VM sleeps,
 * the daemon keeps its forwarded host ports bound; the loop watches copies
 * of the listening sockets, and the first connection starts a worker that
 * resumes the VM. The resume takes the very same listening sockets (the
 * connection waits in their backlog) and hands them to the VM's forwarder,
 * which accepts it: the client sees a slow connect, not a refused one. The
 * loop owns the watches and frees a sleeper; the list is under m->lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "string-util.h"
#include "vm-internal.h"
#include "worker.h"

#define WAKE_MAX_PORTS 64
#define RELEASE_WAIT_MS 5000

typedef struct VmSleeper {
        VmManager *m;
        char *id, *name;
        VmForwards *fw;          /* until a resume takes it, under m->lock */
        int fds[WAKE_MAX_PORTS]; /* dups the loop watches */
        int released_fd;         /* an eventfd: the loop closed the dups */
        sd_event_source *src[WAKE_MAX_PORTS];
        size_t n;
        bool listed;   /* in m->sleepers (under m->lock) */
        bool waking;   /* a wake worker runs (loop) */
        bool released; /* unlisted, and the loop knows: whoever sees it last frees it */
        struct VmSleeper *next;
} VmSleeper;

/* On the loop, or at the manager's end. */
static void sleeper_close_watches(VmSleeper *z) {
        for (size_t i = 0; i < z->n; i++) {
                z->src[i] = sd_event_source_disable_unref(z->src[i]);
                z->fds[i] = safe_close(z->fds[i]);
        }
        z->n = 0;
}

static void sleeper_free(VmSleeper *z) {
        sleeper_close_watches(z);
        safe_close(z->released_fd);
        vm_forwards_free(z->fw);
        free(z->id);
        free(z->name);
        free(z);
}

static bool sleeper_listed(VmSleeper *z) {
        pthread_mutex_lock(&z->m->lock);
        bool listed = z->listed;
        pthread_mutex_unlock(&z->m->lock);
        return listed;
}

/* Connections that came while the wake failed: refused, so the next one
 * tries again (a backlog left full would wake the loop forever). */
static void drain(VmSleeper *z) {
        for (size_t i = 0; i < z->n; i++) {
                int fd;
                while ((fd = accept4(z->fds[i], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0)
                        safe_close(fd);
                (void) sd_event_source_set_enabled(z->src[i], SD_EVENT_ON);
        }
}

/* In a worker: resume the VM for `what` (logged both ways). */
static void wake_for(VmManager *m, const char *id, const char *name, const char *what) {
        _cleanup_store_close_ Store *s = NULL;
        int r = daemon_open_store(m->d, &s);
        if (r >= 0) {
                log_info("vm %s: %s wakes it", name, what);
                r = vm_op_wake(m, s, id, NULL);
        }
        if (r < 0)
                log_warning("vm %s: cannot resume it for %s: %s", name, what,
                            error_last_message() ? error_last_message() : strerror(-r));
}

static void wake_main(void *userdata) {
        VmSleeper *z = userdata;
        wake_for(z->m, z->id, z->name, "a connection to a forwarded port");
}

static void wake_done(void *userdata) {
        VmSleeper *z = userdata;
        z->waking = false;
        if (z->released)
                sleeper_free(z); /* taken by the resume, or forgotten, while it ran */
        else if (sleeper_listed(z))
                drain(z);
}

static int on_connection(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        VmSleeper *z = userdata;
        for (size_t i = 0; i < z->n; i++)
                (void) sd_event_source_set_enabled(z->src[i], SD_EVENT_OFF);
        if (z->waking)
                return 0;
        z->waking = true;
        if (workers_start(z->m->d->workers, wake_main, wake_done, z, WORKER_UNLIMITED) < 0) {
                z->waking = false;
                drain(z);
        }
        return 0;
}

/* Posted before any release_on_loop() of the same sleeper. */
static void watch_on_loop(void *userdata) {
        VmSleeper *z = userdata;
        if (!sleeper_listed(z))
                return;
        for (size_t i = 0; i < z->n; i++)
                if (sd_event_add_io(z->m->d->event, &z->src[i], z->fds[i], EPOLLIN, on_connection, z) < 0)
                        log_warning("vm %s: a connection to one of its ports will not wake it", z->name);
}

/* Gone from the list: its copies of the sockets closed now (so a port it
 * held can be bound again), the rest freed now or by the wake that runs. */
static void release_on_loop(void *userdata) {
        VmSleeper *z = userdata;
        z->released = true;
        sleeper_close_watches(z);
        uint64_t one = 1;
        (void) !write(z->released_fd, &one, sizeof(one));
        if (!z->waking)
                sleeper_free(z);
}

/* Post the release and wait (bounded) until the loop has done it. */
static void release_and_wait(VmManager *m, VmSleeper *z, const char *id) {
        int w = fcntl(z->released_fd, F_DUPFD_CLOEXEC, 3);
        if (workers_post(m->d->workers, release_on_loop, z) < 0) {
                log_warning("vm %s: cannot release the watch on its ports", id);
                safe_close(w);
                return;
        }
        /* z belongs to the loop from here on. */
        struct pollfd p = { .fd = w, .events = POLLIN };
        if (w >= 0 && poll(&p, 1, RELEASE_WAIT_MS) <= 0)
                log_warning("vm %s: the watch on its ports was not released in time", id);
        safe_close(w);
}

void vm_wake_on_forwards(VmManager *m, Store *s, const VmRecord *vm) {
        VmForwards *fw = NULL;
        if (vm_forwards_open(m, s, vm, false, &fw) < 0)
                return;
        int fds[WAKE_MAX_PORTS];
        size_t n = vm_forwards_fds(fw, fds, WAKE_MAX_PORTS);
        VmSleeper *z = n > 0 ? calloc(1, sizeof(*z)) : NULL;
        if (!z) {
                vm_forwards_free(fw);
                return;
        }
        z->m = m;
        z->fw = fw;
        z->released_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        z->id = strdup(vm->id);
        z->name = strdup(vm->name);
        if (!z->id || !z->name || z->released_fd < 0) {
                sleeper_free(z);
                return;
        }
        for (; z->n < n; z->n++)
                if ((z->fds[z->n] = fcntl(fds[z->n], F_DUPFD_CLOEXEC, 3)) < 0)
                        break;
        pthread_mutex_lock(&m->lock);
        z->listed = true;
        z->next = m->sleepers;
        m->sleepers = z;
        pthread_mutex_unlock(&m->lock);
        if (workers_post(m->d->workers, watch_on_loop, z) < 0) {
                vm_wake_forget(m, vm->id);
                return;
        }
        log_info("vm %s: %zu forwarded port(s) stay open while it is suspended; a connection resumes it", vm->name,
                 z->n);
}

/* Out of the list (under m->lock), or NULL. */
static VmSleeper *unlist(VmManager *m, const char *id) {
        VmSleeper *z = NULL;
        pthread_mutex_lock(&m->lock);
        for (VmSleeper **pp = &m->sleepers; *pp; pp = &(*pp)->next)
                if (streq((*pp)->id, id)) {
                        z = *pp;
                        *pp = z->next;
                        z->listed = false;
                        break;
                }
        pthread_mutex_unlock(&m->lock);
        return z;
}

int vm_wake_take_forwards(VmManager *m, const char *id, VmForwards **ret) {
        VmSleeper *z = unlist(m, id);
        if (!z)
                return 0;
        *ret = TAKE_PTR(z->fw);
        release_and_wait(m, z, id);
        return 1;
}

void vm_wake_forget(VmManager *m, const char *id) {
        VmForwards *fw = NULL;
        if (vm_wake_take_forwards(m, id, &fw) > 0)
                vm_forwards_free(fw);
}

void vm_wake_refresh(VmManager *m, Store *s, const VmRecord *vm) {
        if (vm->state != VM_STATE_SUSPENDED)
                return;
        vm_wake_forget(m, vm->id);
        vm_wake_on_forwards(m, s, vm);
}

/* A DNS lookup of a suspended VM's name (<name>.vm): the answer goes out at
 * once and the VM resumes in a worker, one per VM at a time (the resolver
 * asks again while it runs). The client's first SYN finds no TAP yet and is
 * sent again by its TCP, by then to the resumed guest. Loop only. */
typedef struct VmLookupWake {
        VmManager *m;
        char *id, *name;
        struct VmLookupWake *next;
} VmLookupWake;

static void lookup_wake_free(VmLookupWake *w) {
        free(w->id);
        free(w->name);
        free(w);
}

static void lookup_wake_main(void *userdata) {
        VmLookupWake *w = userdata;
        wake_for(w->m, w->id, w->name, "a DNS lookup of its name");
}

static void lookup_wake_done(void *userdata) {
        VmLookupWake *w = userdata;
        for (VmLookupWake **pp = &w->m->lookup_wakes; *pp; pp = &(*pp)->next)
                if (*pp == w) {
                        *pp = w->next;
                        break;
                }
        lookup_wake_free(w);
}

void vm_wake_on_lookup(VmManager *m, const char *id, const char *name) {
        for (VmLookupWake *w = m->lookup_wakes; w; w = w->next)
                if (streq(w->id, id))
                        return;
        VmLookupWake *w = calloc(1, sizeof(*w));
        if (!w)
                return;
        *w = (VmLookupWake){ .m = m, .id = strdup(id), .name = strdup(name) };
        /* Counted against the workers' limit: lookups come from anyone. */
        if (!w->id || !w->name || workers_start(m->d->workers, lookup_wake_main, lookup_wake_done, w, 0) < 0) {
                lookup_wake_free(w);
                return;
        }
        w->next = m->lookup_wakes;
        m->lookup_wakes = w;
}

void vm_wake_free_all(VmManager *m) {
        while (m->sleepers) {
                VmSleeper *z = m->sleepers;
                m->sleepers = z->next;
                sleeper_free(z);
        }
}
