/* SPDX-License-Identifier: MIT */
#pragma once

/* A small client for QEMU's machine protocol (QMP) over a Unix socket:
 * read the greeting, enter command mode (qmp_capabilities), then execute
 * commands one at a time, each with a deadline. Asynchronous events that
 * arrive in between are skipped. A command's QMP error is returned as -EIO
 * (-EOPNOTSUPP for CommandNotFound) with QEMU's "desc" recorded through
 * error_setf(). QEMU serves one QMP client per socket at a time, so callers
 * connect, run what they need and close. */

#include <jansson.h>

#include "macro.h"
#include "time-util.h"

/* Largest single QMP message accepted from QEMU; the replies we ask for are
 * a few hundred bytes. */
#define QMP_MESSAGE_MAX (256U * 1024U)
/* Events seen while waiting for a reply are kept (the newest this many) for
 * qmp_client_wait_event(). */
#define QMP_EVENTS_KEPT 32

typedef struct QmpClient QmpClient;

/* Connect to the socket at path, read the greeting and negotiate
 * capabilities, all within timeout. -ENOENT/-ECONNREFUSED when nobody
 * listens (yet). */
int qmp_client_connect(const char *path, usec_t timeout, QmpClient **ret);

/* Connect over an already connected stream socket (takes the fd). */
int qmp_client_new_from_fd(int fd, usec_t timeout, QmpClient **ret);

/* Execute command with optional arguments (borrowed; NULL for none). On
 * success *ret (optional) holds the "return" value (a new reference). */
int qmp_client_execute(QmpClient *c, const char *command, json_t *arguments, usec_t timeout, json_t **ret);

/* Hand QEMU an open file descriptor under fdname (QMP getfd: the fd travels
 * as SCM_RIGHTS with the command), for a later "fd:<fdname>" URI. fd stays
 * ours to close. */
int qmp_client_add_fd(QmpClient *c, const char *fdname, int fd, usec_t timeout);

/* Wait until the event named name arrives (or was kept while a command
 * waited), until the monotonic deadline; *ret (optional) gets its "data"
 * (a new reference, NULL when it has none). -ETIMEDOUT with error_setf(). */
int qmp_client_wait_event(QmpClient *c, const char *name, usec_t deadline, json_t **ret);

QmpClient *qmp_client_free(QmpClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(QmpClient *, qmp_client_free);

/* Named for this module so it never collides with another header's helper. */
static inline void qmp_json_decrefp(json_t **j) {
        if (*j)
                json_decref(*j);
}

/* Connect, execute one command, close. The whole exchange shares timeout. */
int qmp_execute_once(const char *path, const char *command, json_t *arguments, usec_t timeout, json_t **ret);
