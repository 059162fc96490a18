/* SPDX-License-Identifier: MIT */
/* Worker threads and the loop's mailbox: see worker.h. */
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io-util.h"
#include "log.h"
#include "macro.h"

typedef struct MailItem {
        WorkerFn fn;
        void *userdata;
        bool allocated; /* freed once run; a task's own item goes with the task */
        struct MailItem *next;
} MailItem;

typedef struct Task {
        /* Allocated with the task, so the end of a task always reaches the
         * loop, even when memory ran out meanwhile. */
        MailItem finished;
        Workers *w;
        WorkerFn fn, done;
        void *userdata;
        bool limited;
} Task;

struct Workers {
        sd_event_source *source;
        int efd;
        pthread_mutex_t lock; /* guards the queue */
        MailItem *head, *tail;
        unsigned max_running;
        unsigned running;           /* limited tasks (loop only) */
        unsigned running_unlimited; /* loop only */
};

static void mailbox_push(Workers *w, MailItem *m) {
        m->next = NULL;
        pthread_mutex_lock(&w->lock);
        if (w->tail)
                w->tail->next = m;
        else
                w->head = m;
        w->tail = m;
        pthread_mutex_unlock(&w->lock);
        uint64_t one = 1;
        (void) !write(w->efd, &one, sizeof(one));
}

int workers_post(Workers *w, WorkerFn fn, void *userdata) {
        MailItem *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        *m = (MailItem){ .fn = fn, .userdata = userdata, .allocated = true };
        mailbox_push(w, m);
        return 0;
}

static void mailbox_run(Workers *w) {
        uint64_t v;
        (void) !read(w->efd, &v, sizeof(v));
        pthread_mutex_lock(&w->lock);
        MailItem *m = w->head;
        w->head = w->tail = NULL;
        pthread_mutex_unlock(&w->lock);
        while (m) {
                MailItem *next = m->next;
                bool allocated = m->allocated;
                m->fn(m->userdata); /* may free a task's own item */
                if (allocated)
                        free(m);
                m = next;
        }
}

static int on_mailbox(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        mailbox_run(userdata);
        return 0;
}

static void task_finished(void *p) {
        Task *t = p;
        Workers *w = t->w;
        if (t->limited)
                w->running--;
        else
                w->running_unlimited--;
        if (t->done)
                t->done(t->userdata);
        free(t);
}

static void *task_main(void *p) {
        Task *t = p;
        t->fn(t->userdata);
        mailbox_push(t->w, &t->finished);
        return NULL;
}

int workers_start(Workers *w, WorkerFn fn, WorkerFn done, void *userdata, WorkerFlags flags) {
        bool limited = !(flags & WORKER_UNLIMITED);
        if (limited && w->running >= w->max_running)
                return -EBUSY;
        Task *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *t = (Task){ .w = w, .fn = fn, .done = done, .userdata = userdata, .limited = limited };
        t->finished = (MailItem){ .fn = task_finished, .userdata = t };
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t thread;
        int r = pthread_create(&thread, &attr, task_main, t);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                free(t);
                return -r;
        }
        if (limited)
                w->running++;
        else
                w->running_unlimited++;
        return 0;
}

bool workers_idle(Workers *w) {
        return w->running + w->running_unlimited == 0;
}

void workers_drain(Workers *w, usec_t timeout) {
        usec_t deadline = now_monotonic() + timeout;
        while (w->running + w->running_unlimited > 0 && fd_wait_until(w->efd, POLLIN, deadline) > 0)
                mailbox_run(w);
        if (w->running + w->running_unlimited > 0)
                log_warning("%u operations still running at exit", w->running + w->running_unlimited);
}

int workers_new(sd_event *event, unsigned max_running, Workers **ret) {
        Workers *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        w->max_running = max_running;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int r = w->efd < 0 ? -errno : sd_event_add_io(event, &w->source, w->efd, EPOLLIN, on_mailbox, w);
        if (r < 0) {
                workers_free(w);
                return r;
        }
        *ret = w;
        return 0;
}

Workers *workers_free(Workers *w) {
        if (!w)
                return NULL;
        if (w->running + w->running_unlimited > 0)
                return NULL; /* a thread may still post here */
        w->source = sd_event_source_disable_unref(w->source);
        safe_close(w->efd);
        for (MailItem *m = w->head, *next; m; m = next) {
                next = m->next;
                if (m->allocated)
                        free(m);
        }
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}
