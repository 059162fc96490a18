/* SPDX-License-Identifier: MIT */
#pragma once

/* The CLI's end of events.subscribe (docs/protocol.md, "Events"): a
 * connection of its own that receives the daemon's events, and a wait that
 * also ends on SIGINT, SIGTERM or SIGHUP, so Ctrl-C stops a stream cleanly. */

#include <jansson.h>

#include "cli.h"
#include "time-util.h"

typedef struct EventStream EventStream;

/* Called with each event's params (borrowed). */
typedef void (*EventFn)(json_t *event, void *userdata);

/* Connect (starting the daemon as any command does) and subscribe, to the
 * events of VM vm only when vm is not NULL; from then on SIGINT, SIGTERM
 * and SIGHUP are blocked and read by the stream instead of ending the
 * program. Prints
 * the error; returns -errno. */
int event_stream_open(Cli *cli, const char *vm, EventStream **ret);

/* The signals stay blocked: a second Ctrl-C while the program winds up
 * must not turn a clean end into death by SIGINT. (Children started by the
 * spawn module get an empty mask.) */
EventStream *event_stream_free(EventStream *s);
static inline void event_stream_freep(EventStream **s) {
        event_stream_free(*s);
}
#define _cleanup_event_stream_ __attribute__((cleanup(event_stream_freep)))

/* Hand every event that came to fn, waiting up to timeout (USEC_INFINITY:
 * no limit) for one when none is there yet. Returns 0 after at least one
 * event, -ETIMEDOUT when none came in time, EVENT_STREAM_STOPPED when a
 * signal asked to stop, or another -errno after printing why the stream
 * ended (-ECONNRESET: the daemon went away; -ENOBUFS: it dropped this
 * subscriber, which read too slowly). */
#define EVENT_STREAM_STOPPED 1
int event_stream_wait(EventStream *s, usec_t timeout, EventFn fn, void *userdata);
