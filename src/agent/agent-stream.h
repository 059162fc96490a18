/* SPDX-License-Identifier: MIT */
#pragma once

/* The streams of a session: exec (pipes or a PTY), queries, poweroff and
 * file transfers, each with its credit windows (docs/agent-protocol.md). */

#include <poll.h>

#include "agent-session.h"

/* Handle a stream frame from the host. */
void stream_frame(Session *s, const AgentStreamFrame *f);

/* The poll set: stream_poll_count() entries after the session's own. */
size_t stream_poll_count(const Session *s);
void stream_poll_fill(Session *s, struct pollfd *p);
/* After poll: handle events, move data, send exits and closes. */
void stream_poll_handle(Session *s, const struct pollfd *p);
/* Send what credit allows (replies, queued output) and finish streams. */
void stream_pump(Session *s);

/* Kill every stream (the session ends or starts over). */
void stream_close_all(Session *s);
