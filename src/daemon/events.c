/* SPDX-License-Identifier: MIT */
/* The event bus: subscribers on the loop, events from any thread through the
 * workers' mailbox, a bounded queue per subscriber. */
#include "events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "jsonrpc.h"
#include "log.h"
#include "macro.h"
#include "server-internal.h"
#include "string-util.h"
#include "time-util.h"
#include "worker.h"

typedef struct Subscriber {
        Connection *conn; /* held as a call until dropped */
        char *vm;         /* NULL: every event */
        unsigned max_queue;
        /* Lengths of the last lines queued on the connection, oldest first:
         * those the connection has not sent yet are the queue. */
        size_t *lens;
        unsigned n_lens, first;
        struct Subscriber *next;
} Subscriber;

struct EventBus {
        Daemon *d;
        Subscriber *subscribers;
        unsigned n_subscribers;
        uint64_t seq;
};

typedef struct Delivery {
        EventBus *bus;
        json_t *fields;
} Delivery;

int event_bus_new(Daemon *d, EventBus **ret) {
        EventBus *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->d = d;
        *ret = b;
        return 0;
}

static Subscriber *subscriber_free(Subscriber *s) {
        Subscriber *next = s->next;
        connection_remove_call(s->conn);
        free(s->vm);
        free(s->lens);
        free(s);
        return next;
}

EventBus *event_bus_free(EventBus *b) {
        if (!b)
                return NULL;
        for (Subscriber *s = b->subscribers; s;)
                s = subscriber_free(s);
        free(b);
        return NULL;
}

static bool subscriber_wants(const Subscriber *s, json_t *fields) {
        if (!s->vm)
                return true;
        const char *kind = json_string_value(json_object_get(fields, "kind"));
        const char *name = json_string_value(json_object_get(fields, "name"));
        return kind && name && streq(kind, "vm") && streq(name, s->vm);
}

/* Forget the lines the connection has sent; true while the queue has room. */
static bool subscriber_has_room(Subscriber *s) {
        size_t pending = connection_pending(s->conn), total = 0;
        for (unsigned i = 0; i < s->n_lens; i++)
                total += s->lens[(s->first + i) % s->max_queue];
        while (s->n_lens > 0 && total - s->lens[s->first] >= pending) {
                total -= s->lens[s->first];
                s->first = (s->first + 1) % s->max_queue;
                s->n_lens--;
        }
        if (pending == 0)
                s->n_lens = 0;
        return s->n_lens < s->max_queue;
}

/* Returns false when s is to be dropped. */
static bool subscriber_send(Subscriber *s, const char *line) {
        if (!connection_is_open(s->conn))
                return false;
        if (!subscriber_has_room(s)) {
                log_warning("an event subscriber is not reading: dropping it after %u queued events", s->max_queue);
                _cleanup_free_ char *bye = jsonrpc_format_notification(
                        "events.dropped",
                        json_pack("{s:s, s:I}", "reason", "too many events waiting: the subscriber was not reading",
                                  "queue", (json_int_t) s->max_queue));
                connection_send(s->conn, bye);
                connection_end(s->conn);
                return false;
        }
        connection_send(s->conn, line);
        s->lens[(s->first + s->n_lens) % s->max_queue] = strlen(line);
        s->n_lens++;
        return true;
}

static void deliver(void *p) {
        Delivery *dl = p;
        EventBus *b = dl->bus;
        if (json_object_set_new(dl->fields, "seq", json_integer((json_int_t) ++b->seq)) >= 0) {
                _cleanup_free_ char *line = NULL;
                for (Subscriber **sp = &b->subscribers; *sp;) {
                        Subscriber *s = *sp;
                        bool keep = true;
                        if (subscriber_wants(s, dl->fields)) {
                                if (!line)
                                        line = jsonrpc_format_notification("event", json_incref(dl->fields));
                                keep = line && subscriber_send(s, line);
                        } else
                                keep = connection_is_open(s->conn);
                        if (keep) {
                                sp = &s->next;
                                continue;
                        }
                        *sp = subscriber_free(s);
                        b->n_subscribers--;
                }
        }
        json_decref(dl->fields);
        free(dl);
}

void event_bus_publish(EventBus *b, json_t *fields) {
        if (!b || !fields) {
                json_decref(fields);
                return;
        }
        Delivery *dl = malloc(sizeof(*dl));
        if (dl && json_object_set_new(fields, "time", json_integer((json_int_t) now_realtime())) >= 0) {
                *dl = (Delivery){ .bus = b, .fields = fields };
                if (workers_post(b->d->workers, deliver, dl) >= 0)
                        return;
        }
        free(dl);
        json_decref(fields); /* an event less: subscribers read the state from the lists */
}

static void set_string(json_t *o, const char *key, const char *v) {
        if (v)
                (void) json_object_set_new(o, key, json_string(v));
}

void event_bus_store_observer(void *userdata, const StoreEvent *e) {
        json_t *f = json_object();
        if (!f)
                return;
        set_string(f, "kind", e->kind);
        set_string(f, "event", e->event);
        set_string(f, "id", e->id);
        set_string(f, "name", e->name);
        set_string(f, "old_state", e->old_state);
        set_string(f, "new_state", e->new_state);
        set_string(f, "reason", e->reason);
        event_bus_publish(userdata, f);
}

void event_bus_progress(EventBus *b, const char *method, json_t *params) {
        json_t *f = b && json_is_object(params) ? json_deep_copy(params) : NULL;
        if (!f)
                return;
        size_t l = strcspn(method, ".");
        (void) json_object_set_new(f, "kind", json_stringn(method, l));
        (void) json_object_set_new(f, "event", json_string("progress"));
        (void) json_object_set_new(f, "method", json_string(method));
        event_bus_publish(b, f);
}

int event_bus_subscribe(EventBus *b, Connection *c, const char *vm, unsigned queue) {
        if (b->n_subscribers >= EVENTS_MAX_SUBSCRIBERS)
                return -EUSERS;
        Subscriber *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->max_queue = queue ? MIN(queue, EVENTS_MAX_QUEUE) : EVENTS_MAX_QUEUE;
        s->lens = calloc(s->max_queue, sizeof(size_t));
        if (!s->lens || (vm && !(s->vm = strdup(vm)))) {
                free(s->lens);
                free(s);
                return -ENOMEM;
        }
        s->conn = c;
        connection_add_call(c);
        s->next = b->subscribers;
        b->subscribers = s;
        b->n_subscribers++;
        return 0;
}

/* ---- events.subscribe ---- */

typedef struct SubscribeArgs {
        const char *vm;
        unsigned long long queue;
} SubscribeArgs;

static const RpcParam subscribe_params[] = {
        { "vm", RPC_PARAM_NAME, RPC_ARG(SubscribeArgs, vm) },
        { "queue", RPC_PARAM_UINT, RPC_ARG(SubscribeArgs, queue), false, 1, EVENTS_MAX_QUEUE },
        {},
};

/* The kernel's socket buffer would hide a subscriber that does not read
 * behind some hundred kilobytes of events: keep it small, the queue is ours. */
#define EVENTS_SOCKET_BUFFER (16 * 1024)

static int method_events_subscribe(Daemon *d, RpcCall *call, void *args) {
        SubscribeArgs *a = args;
        Connection *c = rpc_call_connection(call);
        int r = event_bus_subscribe(d->events, c, a->vm, (unsigned) a->queue);
        if (r == -EUSERS) {
                rpc_call_reply_error(call, JSONRPC_UNAVAILABLE, "too many event subscribers (at most %u)",
                                     EVENTS_MAX_SUBSCRIBERS);
                return 0;
        }
        if (r < 0)
                return r;
        connection_set_send_buffer(c, EVENTS_SOCKET_BUFFER);
        rpc_call_reply(call, json_pack("{s:b, s:I}", "subscribed", 1, "queue",
                                       (json_int_t) (a->queue ? a->queue : EVENTS_MAX_QUEUE)));
        return 0;
}

const RpcMethod event_methods[] = {
        { "events.subscribe", subscribe_params, sizeof(SubscribeArgs), .run = method_events_subscribe },
        {},
};
