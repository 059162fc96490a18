/* SPDX-License-Identifier: MIT */
/* A pool of open connections to one database, so that a worker reuses a
 * connection that has already read the schema and been set up (observer,
 * triggers) instead of opening one per call. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "store-internal.h"

struct StorePool {
        pthread_mutex_t lock; /* guards everything below but the constants */
        char *path;
        StoreOpenFlags flags;
        StorePoolSetup setup;
        void *userdata;
        unsigned max_idle;
        Store **idle; /* max_idle slots, idle[0..n_idle-1] in use */
        unsigned n_idle;
        unsigned in_use; /* handed out, not yet given back */
        unsigned opened; /* connections opened over the pool's life */
        bool freed;      /* store_pool_free() ran: the last one given back frees it */
};

static void pool_destroy(StorePool *p) {
        pthread_mutex_destroy(&p->lock);
        free(p->idle);
        free(p->path);
        free(p);
}

int store_pool_new(const char *path, StoreOpenFlags flags, StorePoolSetup setup, void *userdata, unsigned max_idle,
                   StorePool **ret) {
        if (!path || !*path || max_idle == 0 || (flags & STORE_OPEN_READONLY))
                return -EINVAL;
        StorePool *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        *p = (StorePool){ .flags = flags, .setup = setup, .userdata = userdata, .max_idle = max_idle };
        pthread_mutex_init(&p->lock, NULL);
        p->path = strdup(path);
        p->idle = calloc(max_idle, sizeof(Store *));
        if (!p->path || !p->idle) {
                pool_destroy(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

/* A new connection, set up by the pool's setup function. */
static int pool_open(StorePool *p, Store **ret) {
        _cleanup_store_close_ Store *s = NULL;
        int r = store_open(p->path, p->flags, &s);
        if (r >= 0 && p->setup)
                r = p->setup(s, p->userdata);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int store_pool_get(StorePool *p, Store **ret) {
        Store *s = NULL;
        pthread_mutex_lock(&p->lock);
        if (p->n_idle > 0)
                s = p->idle[--p->n_idle];
        p->in_use++; /* counted before the open, so a free meanwhile waits for it */
        pthread_mutex_unlock(&p->lock);
        if (!s) {
                int r = pool_open(p, &s);
                pthread_mutex_lock(&p->lock);
                if (r >= 0)
                        p->opened++;
                pthread_mutex_unlock(&p->lock);
                if (r < 0) {
                        store_pool_put(p, NULL);
                        return r;
                }
        }
        s->pool = p;
        *ret = s;
        return 0;
}

/* Fit to serve the next caller: no error that may have left it in doubt,
 * no transaction left open, no statement left unfinalized. */
static bool store_is_reusable(Store *s) {
        return !s->failed && sqlite3_get_autocommit(s->db) && !sqlite3_next_stmt(s->db, NULL);
}

void store_pool_put(StorePool *p, Store *s) {
        bool keep = false, last = false;
        if (s) {
                s->pool = NULL;
                if (!store_is_reusable(s))
                        log_debug("store %s: not reusing a connection that failed or was left mid-transaction",
                                  s->path);
        }
        pthread_mutex_lock(&p->lock);
        if (s && !p->freed && p->n_idle < p->max_idle && store_is_reusable(s)) {
                p->idle[p->n_idle++] = s;
                keep = true;
        }
        p->in_use--;
        last = p->freed && p->in_use == 0;
        pthread_mutex_unlock(&p->lock);
        if (s && !keep)
                store_close(s);
        if (last)
                pool_destroy(p);
}

unsigned store_pool_opened(StorePool *p) {
        pthread_mutex_lock(&p->lock);
        unsigned n = p->opened;
        pthread_mutex_unlock(&p->lock);
        return n;
}

StorePool *store_pool_free(StorePool *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->freed = true;
        unsigned n = p->n_idle;
        p->n_idle = 0;
        bool last = p->in_use == 0;
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < n; i++)
                store_close(p->idle[i]);
        if (last)
                pool_destroy(p);
        return NULL;
}
