/* SPDX-License-Identifier: MIT */
#pragma once

/* The event bus (docs/protocol.md, "Events"): VM, image, kernel and snapshot
 * rows that appear, change state or go away, and the progress of long
 * operations, sent live as "event" notifications to the connections that
 * called events.subscribe. Events are made in any thread and delivered from
 * the loop through the workers' mailbox. A subscriber that does not read
 * has a bounded queue; when it overflows it is told and dropped, and the
 * daemon goes on. Nothing is kept: a subscriber sees what happens after it
 * subscribed. */

#include <jansson.h>

#include "store.h"

typedef struct Daemon Daemon;
typedef struct EventBus EventBus;
typedef struct Connection Connection;

#define EVENTS_MAX_QUEUE 1024u /* events waiting for one subscriber */
#define EVENTS_MAX_SUBSCRIBERS 64u

int event_bus_new(Daemon *d, EventBus **ret);
EventBus *event_bus_free(EventBus *b);

/* A StoreObserver (store_observe) with the bus as userdata: any thread. */
void event_bus_store_observer(void *userdata, const StoreEvent *e);
/* Any thread: publish fields (steals; "kind" and "event" set) to every
 * subscriber whose filter it passes. */
void event_bus_publish(EventBus *b, json_t *fields);

/* Any thread: a copy of a method's "progress" notification params, as an
 * event of the kind the method name starts with ("image.import": image). */
void event_bus_progress(EventBus *b, const char *method, json_t *params);

/* Loop only: c receives events from now on, those of VM vm only when vm is
 * not NULL, with at most queue of them waiting. -EUSERS at the limit. */
int event_bus_subscribe(EventBus *b, Connection *c, const char *vm, unsigned queue);
