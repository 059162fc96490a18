/* SPDX-License-Identifier: MIT */
/* Process exits on the event loop: see exit-watch.h. */
#include "exit-watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"

typedef struct ExitWatch {
        ExitWatches *owner;
        int pidfd;
        sd_event_source *source;
        ExitFn fn;
        void *userdata;
        void (*free_userdata)(void *);
        struct ExitWatch *next, *prev;
} ExitWatch;

struct ExitWatches {
        sd_event *event;
        Workers *workers;
        ExitWatch *watches; /* armed on the loop; loop only */
};

static void watch_free(ExitWatch *w, bool fired) {
        sd_event_source_disable_unref(w->source);
        safe_close(w->pidfd);
        if (!fired && w->free_userdata)
                w->free_userdata(w->userdata);
        free(w);
}

static void watch_unlink(ExitWatch *w) {
        ExitWatches *x = w->owner;
        if (w->prev)
                w->prev->next = w->next;
        else if (x->watches == w)
                x->watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->next = w->prev = NULL;
}

static int on_process_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ExitWatch *w = userdata;
        watch_unlink(w);
        ExitFn fn = w->fn;
        void *data = w->userdata;
        watch_free(w, true);
        fn(data);
        return 0;
}

/* On the loop: add the source. */
static void watch_arm(void *p) {
        ExitWatch *w = p;
        ExitWatches *x = w->owner;
        int r = sd_event_add_io(x->event, &w->source, w->pidfd, EPOLLIN, on_process_exit, w);
        if (r < 0) {
                log_warning_errno(r, "cannot watch a VMM process for its exit: %m");
                watch_free(w, false);
                return;
        }
        w->next = x->watches;
        if (x->watches)
                x->watches->prev = w;
        x->watches = w;
}

int exit_watch_add(ExitWatches *x, int pidfd, ExitFn fn, void *userdata, void (*free_userdata)(void *)) {
        ExitWatch *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (ExitWatch){ .owner = x, .fn = fn, .userdata = userdata, .free_userdata = free_userdata };
        w->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
        int r = w->pidfd < 0 ? -errno : workers_post(x->workers, watch_arm, w);
        if (r < 0) {
                safe_close(w->pidfd);
                free(w);
        }
        return r;
}

int exit_watches_new(sd_event *event, Workers *workers, ExitWatches **ret) {
        ExitWatches *x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        *x = (ExitWatches){ .event = event, .workers = workers };
        *ret = x;
        return 0;
}

ExitWatches *exit_watches_free(ExitWatches *x) {
        if (!x)
                return NULL;
        while (x->watches) {
                ExitWatch *w = x->watches;
                watch_unlink(w);
                watch_free(w, false);
        }
        free(x);
        return NULL;
}
