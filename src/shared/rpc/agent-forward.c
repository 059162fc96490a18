/* SPDX-License-Identifier: MIT */
/* The forwarder's thread, its listening sockets and the commands other
 * threads send it (add a listener, remove one, stop). */
#include "agent-forward.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-forward-internal.h"
#include "log.h"

typedef enum FwdOp {
        FWD_ADD,
        FWD_REMOVE,
} FwdOp;

struct FwdCommand {
        FwdOp op;
        uint64_t key;
        int fd;
        uint16_t guest_port;
        int result;
        bool done;
        FwdCommand *next;
};

int agent_forward_listen(const char *address, uint16_t port) {
        struct sockaddr_storage ss = {};
        socklen_t len;
        struct sockaddr_in *in4 = (struct sockaddr_in *) &ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
        if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET;
                in4->sin_port = htons(port);
                len = sizeof(*in4);
        } else if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                len = sizeof(*in6);
        } else
                return -EINVAL;
        _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        int one = 1;
        /* A port left in TIME_WAIT by the previous daemon is free to take. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return -errno;
        if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &ss, len) < 0 || listen(fd, 64) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* ---- listeners ---- */

static void listeners_update(AgentForwarder *f) {
        bool pause = f->n_conns >= AGENT_FORWARD_MAX_CONNECTIONS;
        if (pause == f->accept_paused)
                return;
        f->accept_paused = pause;
        for (FwdListener *l = f->listeners; l; l = l->next)
                (void) sd_event_source_set_enabled(l->src, pause ? SD_EVENT_OFF : SD_EVENT_ON);
}

void fwd_conns_changed(AgentForwarder *f) {
        pthread_mutex_lock(&f->lock);
        f->n_conns_shared = f->n_conns;
        pthread_mutex_unlock(&f->lock);
        listeners_update(f);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        FwdListener *l = userdata;
        AgentForwarder *f = l->f;
        int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
                return 0;
        int r = fwd_conn_new(f, l, cfd);
        if (r < 0)
                log_warning("vm %s: cannot forward a connection to guest port %u: %s", f->name, l->guest_port,
                            strerror(-r));
        return 0;
}

static void listener_free(FwdListener *l) {
        sd_event_source_disable_unref(l->src);
        safe_close(l->fd);
        free(l);
}

static int listener_add(AgentForwarder *f, FwdCommand *cmd) {
        _cleanup_close_ int fd = TAKE_FD(cmd->fd);
        for (FwdListener *l = f->listeners; l; l = l->next)
                if (l->key == cmd->key)
                        return -EEXIST;
        if (f->n_listeners >= AGENT_FORWARD_MAX_LISTENERS)
                return -EMFILE;
        FwdListener *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        *l = (FwdListener){ .f = f, .key = cmd->key, .guest_port = cmd->guest_port, .fd = TAKE_FD(fd) };
        int r = sd_event_add_io(f->event, &l->src, l->fd, EPOLLIN, on_accept, l);
        if (r >= 0 && f->accept_paused)
                r = sd_event_source_set_enabled(l->src, SD_EVENT_OFF);
        if (r < 0) {
                listener_free(l);
                return r;
        }
        l->next = f->listeners;
        f->listeners = l;
        f->n_listeners++;
        return 0;
}

static int listener_remove(AgentForwarder *f, uint64_t key) {
        FwdListener *l = NULL;
        for (FwdListener **pp = &f->listeners; *pp; pp = &(*pp)->next)
                if ((*pp)->key == key) {
                        l = *pp;
                        *pp = l->next;
                        break;
                }
        if (!l)
                return -ENOENT;
        f->n_listeners--;
        listener_free(l);
        /* Its connections go with it: the forward no longer exists. */
        for (FwdConn *c = f->conns, *next; c; c = next) {
                next = c->next;
                if (c->key == key)
                        fwd_conn_free(c);
        }
        return 0;
}

/* ---- commands ---- */

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AgentForwarder *f = userdata;
        uint64_t v;
        (void) !read(fd, &v, sizeof(v));
        pthread_mutex_lock(&f->lock);
        FwdCommand *list = TAKE_PTR(f->commands);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->lock);
        for (FwdCommand *cmd = list; cmd; cmd = cmd->next)
                cmd->result = cmd->op == FWD_ADD ? listener_add(f, cmd) : listener_remove(f, cmd->key);
        pthread_mutex_lock(&f->lock);
        for (FwdCommand *cmd = list, *next; cmd; cmd = next) {
                next = cmd->next;
                cmd->done = true; /* the caller owns it again */
        }
        f->n_conns_shared = f->n_conns;
        pthread_cond_broadcast(&f->done);
        pthread_mutex_unlock(&f->lock);
        listeners_update(f);
        return stop ? sd_event_exit(f->event, 0) : 0;
}

static void wake(AgentForwarder *f) {
        uint64_t one = 1;
        (void) !write(f->wake_fd, &one, sizeof(one));
}

static int command_run(AgentForwarder *f, FwdCommand *cmd) {
        pthread_mutex_lock(&f->lock);
        cmd->next = f->commands;
        f->commands = cmd;
        pthread_mutex_unlock(&f->lock);
        wake(f);
        pthread_mutex_lock(&f->lock);
        while (!cmd->done)
                pthread_cond_wait(&f->done, &f->lock);
        pthread_mutex_unlock(&f->lock);
        return cmd->result;
}

int agent_forwarder_add(AgentForwarder *f, uint64_t key, int listen_fd, uint16_t guest_port) {
        FwdCommand cmd = { .op = FWD_ADD, .key = key, .fd = listen_fd, .guest_port = guest_port };
        return command_run(f, &cmd);
}

int agent_forwarder_remove(AgentForwarder *f, uint64_t key) {
        FwdCommand cmd = { .op = FWD_REMOVE, .key = key, .fd = -EBADF };
        return command_run(f, &cmd);
}

unsigned agent_forwarder_connections(AgentForwarder *f) {
        pthread_mutex_lock(&f->lock);
        unsigned n = f->n_conns_shared;
        pthread_mutex_unlock(&f->lock);
        return n;
}

/* ---- the thread ---- */

static void *thread_main(void *p) {
        AgentForwarder *f = p;
        (void) sd_event_loop(f->event);
        return NULL;
}

static void forwarder_free(AgentForwarder *f) {
        while (f->conns)
                fwd_conn_free(f->conns);
        while (f->listeners) {
                FwdListener *l = f->listeners;
                f->listeners = l->next;
                listener_free(l);
        }
        f->wake_src = sd_event_source_disable_unref(f->wake_src);
        safe_close(f->wake_fd);
        sd_event_unref(f->event);
        pthread_cond_destroy(&f->done);
        pthread_mutex_destroy(&f->lock);
        free(f->mux_path);
        free(f->name);
        free(f);
}

int agent_forwarder_start(const char *mux_path, const char *name, AgentForwarder **ret) {
        AgentForwarder *f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        pthread_mutex_init(&f->lock, NULL);
        pthread_cond_init(&f->done, NULL);
        f->mux_path = strdup(mux_path);
        f->name = strdup(name);
        f->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int r = !f->mux_path || !f->name ? -ENOMEM : f->wake_fd < 0 ? -errno : sd_event_new(&f->event);
        if (r >= 0)
                r = sd_event_add_io(f->event, &f->wake_src, f->wake_fd, EPOLLIN, on_wake, f);
        if (r >= 0)
                r = -pthread_create(&f->thread, NULL, thread_main, f);
        if (r < 0) {
                forwarder_free(f);
                return r;
        }
        f->running = true;
        *ret = f;
        return 0;
}

void agent_forwarder_stop(AgentForwarder *f) {
        if (!f)
                return;
        if (f->running) {
                pthread_mutex_lock(&f->lock);
                f->stop = true;
                pthread_mutex_unlock(&f->lock);
                wake(f);
                (void) pthread_join(f->thread, NULL);
        }
        forwarder_free(f);
}
