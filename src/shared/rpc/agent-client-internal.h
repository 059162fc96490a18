/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by agent-client.c (transport, hello, queries) and
 * agent-client-stream.c (running one stream). */

#include "agent-client.h"

struct AgentClient {
        int fd;
        uint8_t *in;
        size_t in_len;
        size_t consumed; /* bytes of the frame handed out last, dropped on the next read */
        uint8_t *out;    /* frames waiting to be written: [out_off, out_len) */
        size_t out_off, out_len, out_cap;
        AgentHello info;
        bool hello_done;
        bool byte_stream; /* not a socket: a tty or char device carries stale bytes */
        uint32_t next_id;
};

/* Wait for events on fd until deadline: 0, or -ETIMEDOUT with a message. */
int agent_wait_fd(int fd, short events, usec_t deadline);
/* Queue a stream frame; write it with agent_client_flush(). */
int agent_client_queue(AgentClient *c, const AgentStreamFrame *f);
/* Write what is queued without blocking: 0, or -errno when the transport failed. */
int agent_client_flush(AgentClient *c);
/* Write everything queued before the deadline. */
int agent_client_drain(AgentClient *c, usec_t deadline);
/* One non-blocking read: 1 data, 0 nothing yet, -errno (-ECONNRESET at EOF). */
int agent_client_fill(AgentClient *c);
/* A complete frame from the buffer: 1 and *f, 0 when more bytes are needed. */
int agent_client_take_frame(AgentClient *c, AgentFrame *f);
/* An ERROR frame as -errno with its text recorded. */
int agent_client_error_frame(const AgentFrame *f);

/* Run one stream to its end (agent-client-stream.c). */
typedef struct AgentStreamIo {
        int in_fd;          /* DATA to the agent comes from here; < 0: EOF at once */
        int out_fd, err_fd; /* stdout / stderr DATA go here; < 0: discarded (or captured) */
        char **out_capture; /* out_fd < 0: collect stdout here (NUL-terminated, at most 1 MiB) */
        size_t *out_capture_len;
        char *err_capture; /* err_fd < 0: keep the first bytes of stderr here */
        size_t err_capture_size;
        AgentCapture *out_keep, *err_keep; /* out_fd / err_fd < 0: kept here, bounded */
        uint32_t window;                   /* our receive window */
        bool pty;
        int signal_fd, tty_fd;
        bool send_eof;      /* kinds that read stdin: send EOF when in_fd is done */
        bool sink_required; /* a failed write to out_fd ends the stream */
        AgentProgressFn progress;
        void *userdata;
} AgentStreamIo;

int agent_client_run(AgentClient *c, uint8_t kind, const uint8_t *req, size_t req_len, const AgentStreamIo *io,
                     usec_t deadline, AgentExecResult *ret);
