/* SPDX-License-Identifier: MIT */
#pragma once

/* One protocol session: a vsock/Unix connection (the session ends with the
 * connection; framing errors close it) or a virtio-serial byte stream (no
 * connection boundaries: framing errors make the agent discard input until
 * the next hello frame, and a hello always starts a fresh session). */

#include <stdbool.h>

typedef struct SessionOptions {
        bool stream;         /* virtio-serial (or tty) transport */
        bool allow_poweroff; /* false in --listen-unix mode unless PID 1 of a PID namespace */
        const char *proc_root;
} SessionOptions;

/* Serve until the peer goes away. Returns 0 on a clean end, -errno on a
 * connection that had to be closed for a protocol error. */
int agent_session_run(int fd, const SessionOptions *o);

/* Serve a stream transport forever, waiting out host disconnects. */
int agent_stream_serve(int fd, const SessionOptions *o);
