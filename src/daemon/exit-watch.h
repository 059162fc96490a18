/* SPDX-License-Identifier: MIT */
#pragma once

/* Process exits, seen on the event loop: an sd-event I/O source on a pidfd,
 * which becomes readable once the process exited. Nothing is reaped, so it
 * works as well for VMMs re-attached after a daemon restart (not our
 * children) as for the ones we started; whoever owns the process reaps it. */

#include <systemd/sd-event.h>

#include "worker.h"

typedef struct ExitWatches ExitWatches;

/* Runs on the loop once the process exited; it must not block (hand slow
 * work to a worker). It owns userdata from then on. */
typedef void (*ExitFn)(void *userdata);

int exit_watches_new(sd_event *event, Workers *workers, ExitWatches **ret);
/* At exit: drop every watch not fired (free_userdata frees its userdata). */
ExitWatches *exit_watches_free(ExitWatches *x);

/* Any thread: call fn(userdata) on the loop once the process behind pidfd
 * (duplicated; the caller keeps its own) has exited. A worker's request is
 * posted to the loop, which alone touches sd-event. */
int exit_watch_add(ExitWatches *x, int pidfd, ExitFn fn, void *userdata, void (*free_userdata)(void *));
