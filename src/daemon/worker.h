/* SPDX-License-Identifier: MIT */
#pragma once

/* Worker threads and the way back to the event loop. Slow work (disks,
 * VMMs, the privileged helper, the guest agent) runs in a thread of its
 * own; whatever must happen on the loop afterwards is posted to the loop's
 * mailbox (an eventfd) and runs there in the order it was posted. The loop
 * never waits for a worker, except once at exit (workers_drain). */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "time-util.h"

typedef struct Workers Workers;
typedef void (*WorkerFn)(void *userdata);

typedef enum WorkerFlags {
        /* Not counted against the limit and never refused for it: work the
         * daemon itself must do (a VMM exited), not a client's request. */
        WORKER_UNLIMITED = 1 << 0,
} WorkerFlags;

int workers_new(sd_event *event, unsigned max_running, Workers **ret);
/* After workers_drain(): what still runs keeps its task (and leaks it). */
Workers *workers_free(Workers *w);

/* Thread-safe: run fn(userdata) on the loop soon, after what was posted
 * before. -ENOMEM when it could not be queued (fn is then not called). */
int workers_post(Workers *w, WorkerFn fn, void *userdata);

/* Run fn(userdata) in a new thread, then done(userdata) (may be NULL) on the
 * loop. -EBUSY when the limit is reached, -errno when no thread starts; on
 * failure neither fn nor done is called. From the loop only. */
int workers_start(Workers *w, WorkerFn fn, WorkerFn done, void *userdata, WorkerFlags flags);

/* No worker of any kind runs. */
bool workers_idle(Workers *w);

/* After the loop ended: let running workers finish, running what they post,
 * for at most timeout. A half-made VM or image is worse than a slow exit. */
void workers_drain(Workers *w, usec_t timeout);
