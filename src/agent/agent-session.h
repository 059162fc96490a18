/* SPDX-License-Identifier: MIT */
#pragma once

/* One protocol session on one transport: a vsock/Unix connection (the
 * session ends with the connection; framing errors close it) or a
 * virtio-serial byte stream (no connection boundaries: framing errors make
 * the agent discard input until the next hello frame, and a hello always
 * starts a fresh session). Many streams run in a session at once; the
 * session owns the transport and its output queue, agent-stream.c the
 * streams. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent-protocol.h"
#include "macro.h"
#include "time-util.h"

typedef struct SessionOptions {
        bool stream;         /* virtio-serial (or tty) transport */
        bool allow_poweroff; /* false in --listen-unix mode unless PID 1 of a PID namespace */
        /* A real guest (not --listen-unix, which runs on a host's kernel and
         * files): an identity may step the clock and write guest files. */
        bool guest;
        const char *root; /* guest files live beneath it ("/") */
        const char *proc_root;
} SessionOptions;

typedef struct Stream Stream;

typedef struct Session {
        int fd;
        SessionOptions opt;
        uint8_t *in;
        size_t in_len;
        uint8_t *out; /* frames waiting for the transport: [out_off, out_len) */
        size_t out_off, out_len, out_cap;
        usec_t partial_since;
        bool hello_done, resync;
        bool peer_gone;  /* writing failed */
        bool input_done; /* reading saw the end */
        Stream *streams;
        unsigned n_streams;
        usec_t poweroff_at; /* != 0: power off then (sooner once the host closed the stream) */
        uint32_t poweroff_stream;
        bool out_failed;
} Session;

/* Stop producing output for streams while this much waits for the transport. */
#define SESSION_OUT_HIGH (256U * 1024U)

/* Queue a frame for the transport; an allocation failure ends the session. */
void session_send(Session *s, const AgentStreamFrame *f);
/* Room for a DATA frame of up to max bytes at the end of the queue: returns
 * where the data goes; session_commit_data() finishes it with the length read. */
uint8_t *session_data_begin(Session *s, uint32_t id, uint8_t channel, size_t max);
void session_commit_data(Session *s, size_t len);
/* A connection-level ERROR frame (the session carries on). */
void session_error(Session *s, int err, const char *fmt, ...) _printf_(3, 4);
static inline size_t session_backlog(const Session *s) {
        return s->out_len - s->out_off;
}

/* Serve until the peer goes away. Returns 0 on a clean end, -errno on a
 * connection that had to be closed for a protocol error. */
int agent_session_run(int fd, const SessionOptions *o);

/* Serve a stream transport forever, waiting out host disconnects. */
int agent_stream_serve(int fd, const SessionOptions *o);
