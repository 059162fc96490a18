/* SPDX-License-Identifier: MIT */
/* A multiplexer on a thread and an sd-event loop of its own. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent-mux.h"

struct AgentMuxThread {
        sd_event *event;
        AgentMux *mux;
        int stop_fd;
        sd_event_source *stop_src;
        pthread_t thread;
        bool running;
};

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *thread_main(void *p) {
        AgentMuxThread *t = p;
        (void) sd_event_loop(t->event);
        return NULL;
}

static void thread_free(AgentMuxThread *t) {
        t->mux = agent_mux_free(t->mux);
        t->stop_src = sd_event_source_disable_unref(t->stop_src);
        safe_close(t->stop_fd);
        sd_event_unref(t->event);
        free(t);
}

int agent_mux_thread_start(const AgentMuxOptions *o, AgentMuxThread **ret) {
        AgentMuxThread *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int r = t->stop_fd < 0 ? -errno : sd_event_new(&t->event);
        if (r >= 0)
                r = sd_event_add_io(t->event, &t->stop_src, t->stop_fd, EPOLLIN, on_stop, t);
        if (r >= 0)
                r = agent_mux_new(t->event, o, &t->mux);
        if (r >= 0)
                r = -pthread_create(&t->thread, NULL, thread_main, t);
        if (r < 0) {
                thread_free(t);
                return r;
        }
        t->running = true;
        *ret = t;
        return 0;
}

void agent_mux_thread_usage(AgentMuxThread *t, unsigned *ret_clients, usec_t *ret_last) {
        agent_mux_usage(t->mux, ret_clients, ret_last);
}

void agent_mux_thread_stop(AgentMuxThread *t) {
        if (!t)
                return;
        if (t->running) {
                uint64_t one = 1;
                (void) !write(t->stop_fd, &one, sizeof(one));
                (void) pthread_join(t->thread, NULL);
        }
        thread_free(t);
}
