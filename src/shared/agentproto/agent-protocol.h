/* SPDX-License-Identifier: MIT */
#pragma once

/* The wire contract between banger (host) and banger-agent (guest), protocol
 * version 2; see docs/agent-protocol.md. Many streams share one transport:
 * each exec, query or file transfer is a stream with its own id and its own
 * credit window per direction. This file and agent-protocol.c use nothing
 * but libc, because the statically linked agent compiles them in directly:
 * one definition of the format serves both ends, the daemon's multiplexer
 * and the fuzz target. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_VSOCK_PORT 10789U
#define AGENT_SERIAL_PORT_NAME "org.banger.agent"
#define AGENT_PROTOCOL_VERSION 2U

#define AGENT_FRAME_HEADER_SIZE 5U /* u8 type, u32 payload length */
/* Largest payload either side accepts; bigger frames are a protocol error. */
#define AGENT_FRAME_MAX (1024U * 1024U)
/* Largest data chunk in one DATA frame. */
#define AGENT_DATA_CHUNK (64U * 1024U)
/* The per-stream receive window each side grants unless it says otherwise,
 * and the most a window may ever reach (what a receiver must be ready to
 * buffer for one stream). */
#define AGENT_WINDOW_DEFAULT (256U * 1024U)
#define AGENT_WINDOW_MAX (16U * 1024U * 1024U)
/* Streams open at once on one transport connection. */
#define AGENT_MAX_STREAMS 64U
#define AGENT_EXEC_MAX_ARGS 1024U
#define AGENT_EXEC_MAX_ENV 1024U
#define AGENT_EXEC_MAX_STRING (128U * 1024U)
#define AGENT_ERROR_MAX_TEXT 1024U
#define AGENT_PATH_MAX 4096U
#define AGENT_CAPS_MAX 256U

#define AGENT_HELLO_MAGIC "BNGR"
#define AGENT_HELLO_PAYLOAD_SIZE 12U /* magic[4] version[u32] nonce[u32] */
#define AGENT_HELLO_FRAME_SIZE (AGENT_FRAME_HEADER_SIZE + AGENT_HELLO_PAYLOAD_SIZE)
/* The agent's hello adds u32 max_frame, u32 window, u32 max_streams and its
 * capability names (space-separated ASCII). */
#define AGENT_HELLO_V2_FIXED (AGENT_HELLO_PAYLOAD_SIZE + 12U)
/* A hello frame starts with these 9 bytes (header + magic); stream
 * transports resynchronise by scanning for them. */
#define AGENT_HELLO_SYNC_SIZE 9U

typedef enum AgentMsg {
        AGENT_MSG_HELLO = 0x01,  /* both ways: magic, version, nonce (+ agent limits and capabilities) */
        AGENT_MSG_ERROR = 0x02,  /* both: connection-level error, u32 errno, text */
        AGENT_MSG_OPEN = 0x30,   /* host: id, u8 kind, u32 window, request */
        AGENT_MSG_OPENED = 0x31, /* agent: id, u32 pid (0 when no process) */
        AGENT_MSG_DATA = 0x32,   /* both: id, u8 channel, bytes (counted against the window) */
        AGENT_MSG_EOF = 0x33,    /* host: id, u8 channel (stdin: no more input) */
        AGENT_MSG_WINDOW = 0x34, /* both: id, u32 increment */
        AGENT_MSG_SIGNAL = 0x35, /* host: id, u32 signal number */
        AGENT_MSG_RESIZE = 0x36, /* host: id, u16 rows, u16 cols */
        AGENT_MSG_EXIT = 0x37,   /* agent: id, u8 kind, u32 code */
        AGENT_MSG_CLOSE = 0x38,  /* both: id, u32 errno (0: done), text */
} AgentMsg;

typedef enum AgentStreamKind {
        AGENT_STREAM_EXEC = 1,      /* run a command (pipes or a PTY) */
        AGENT_STREAM_HEALTH = 2,    /* JSON reply */
        AGENT_STREAM_PORTS = 3,     /* JSON reply */
        AGENT_STREAM_STATS = 4,     /* JSON reply */
        AGENT_STREAM_POWEROFF = 5,  /* sync, acknowledge, power off */
        AGENT_STREAM_FILES_PUT = 6, /* host sends a tar stream, the agent extracts it */
        AGENT_STREAM_FILES_GET = 7, /* the agent sends a tar stream of a guest path */
        AGENT_STREAM_IDENTITY = 8,  /* a restored clone takes its own identity (request: text) */
        AGENT_STREAM_CONNECT = 9, /* a TCP connection to a guest port, both ways */
        _AGENT_STREAM_KIND_MAX,
} AgentStreamKind;

typedef enum AgentChannel {
        AGENT_CHANNEL_STDIN = 0,  /* host to agent */
        AGENT_CHANNEL_STDOUT = 1, /* agent to host */
        AGENT_CHANNEL_STDERR = 2, /* agent to host */
} AgentChannel;

typedef enum AgentExitKind {
        AGENT_EXIT_CODE = 0,   /* code is the exit status */
        AGENT_EXIT_SIGNAL = 1, /* code is the signal number */
} AgentExitKind;

#define AGENT_EXEC_FLAG_PTY 0x1U       /* a pseudo-terminal for stdin/stdout/stderr */
#define AGENT_FILES_FLAG_CONTENTS 0x1U /* GET: the tree's contents, rooted at "." */

const char *agent_msg_to_string(uint8_t type);
const char *agent_stream_kind_to_string(uint8_t kind);

static inline void agent_put_u16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}
static inline uint16_t agent_get_u16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}
static inline void agent_put_u32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}
static inline uint32_t agent_get_u32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | (uint32_t) p[3];
}

void agent_frame_header_encode(uint8_t out[AGENT_FRAME_HEADER_SIZE], uint8_t type, uint32_t len);

typedef struct AgentFrame {
        uint8_t type;
        uint32_t len;
        const uint8_t *payload; /* points into the parsed buffer */
} AgentFrame;

/* Parse one frame from the start of buf. Returns the bytes it occupies (> 0)
 * with *ret filled, 0 when more bytes are needed, -EMSGSIZE when the header
 * announces more than AGENT_FRAME_MAX (the stream cannot be trusted after). */
long agent_frame_parse(const uint8_t *buf, size_t len, AgentFrame *ret);

/* Scan a byte stream for the start of a hello frame. Returns the offset of a
 * full sync pattern, or of a partial one at the very end (the caller keeps
 * those bytes and reads more), or len when nothing can match. */
size_t agent_stream_find_hello(const uint8_t *buf, size_t len);

typedef struct AgentHello {
        uint32_t version;
        uint32_t nonce;
        /* Only in an agent's version 2 reply (zero otherwise): */
        uint32_t max_frame;        /* largest payload it accepts */
        uint32_t window;           /* initial receive window it grants each stream */
        uint32_t max_streams;      /* streams it serves at once */
        char caps[AGENT_CAPS_MAX]; /* space-separated capability names */
} AgentHello;

/* The 17-byte hello a host sends (the layout of version 1, so an old agent
 * can still answer with its version). */
void agent_hello_encode(uint8_t out[AGENT_HELLO_FRAME_SIZE], uint32_t version, uint32_t nonce);
/* A whole hello frame with the agent's limits and capabilities; returns its
 * size, or 0 when out is too small or caps is too long. */
size_t agent_hello_reply_encode(const AgentHello *h, uint8_t *out, size_t cap);
/* Accepts the 12-byte form and the longer agent reply; -EBADMSG otherwise. */
int agent_hello_parse(const uint8_t *payload, size_t len, AgentHello *ret);
bool agent_hello_has_cap(const AgentHello *h, const char *cap);

/* ERROR and CLOSE texts: u32 errno (positive, or 0 in CLOSE) then up to
 * AGENT_ERROR_MAX_TEXT bytes. *ret_text is a newly allocated copy. */
int agent_error_parse(const uint8_t *payload, size_t len, int *ret_errno, char **ret_text);
/* An ERROR frame; returns its size (text is cut at AGENT_ERROR_MAX_TEXT). */
size_t agent_error_encode(uint8_t *out, size_t cap, int err, const char *text);

/* A stream frame (types 0x30..0x38), parsed and validated. Fields not used
 * by a type are zero. */
typedef struct AgentStreamFrame {
        uint8_t type;
        uint32_t id;
        uint8_t kind;        /* OPEN: AgentStreamKind */
        uint8_t channel;     /* DATA, EOF */
        uint8_t exit_kind;   /* EXIT */
        uint16_t rows, cols; /* RESIZE */
        uint32_t value;      /* OPEN window, OPENED pid, WINDOW increment, SIGNAL signal, EXIT code, CLOSE errno */
        const uint8_t *data; /* OPEN request, DATA bytes, CLOSE text */
        size_t len;
} AgentStreamFrame;

bool agent_msg_is_stream(uint8_t type);
/* -EBADMSG for a malformed payload (wrong size, id 0, a value out of range). */
int agent_stream_frame_parse(const AgentFrame *f, AgentStreamFrame *ret);
/* Bytes agent_stream_frame_encode() writes for f (header included). */
size_t agent_stream_frame_size(const AgentStreamFrame *f);
/* Encode into out (at least agent_stream_frame_size() bytes); returns the size. */
size_t agent_stream_frame_encode(const AgentStreamFrame *f, uint8_t *out);
/* Rewrite the stream id of an encoded stream frame in place (the mux). */
void agent_stream_frame_set_id(uint8_t *frame, uint32_t id);

/* EXEC request: u32 flags, u16 rows, u16 cols, u32 argc, u32 envc, then
 * NUL-terminated strings: cwd, argv[0..argc), env[0..envc). */
typedef struct AgentExecSpec {
        uint32_t flags;      /* AGENT_EXEC_FLAG_* */
        uint16_t rows, cols; /* PTY size (0: the agent's default, 24x80) */
        const char *cwd;     /* "" means "/" */
        char **argv;         /* NULL-terminated; strings point into the payload */
        char **env;          /* NULL-terminated; strings point into the payload */
} AgentExecSpec;

int agent_exec_spec_encode(const AgentExecSpec *spec, uint8_t **ret, size_t *ret_len);
/* Validate and parse; the payload must outlive *ret. Frees with agent_exec_spec_done(). */
int agent_exec_spec_parse(const uint8_t *payload, size_t len, AgentExecSpec *ret);
void agent_exec_spec_done(AgentExecSpec *spec);

/* FILES_PUT / FILES_GET request: u32 flags, then an absolute guest path
 * (NUL-terminated, at most AGENT_PATH_MAX bytes). */
typedef struct AgentFilesSpec {
        uint32_t flags; /* AGENT_FILES_FLAG_* */
        const char *path;
} AgentFilesSpec;

int agent_files_spec_encode(const AgentFilesSpec *spec, uint8_t **ret, size_t *ret_len);
int agent_files_spec_parse(const uint8_t *payload, size_t len, AgentFilesSpec *ret);

/* CONNECT request: u32 flags (0), u16 port (1..65535). The agent connects to
 * 127.0.0.1:port in the guest and splices the connection with the stream. */
#define AGENT_CONNECT_REQUEST_SIZE 6U
typedef struct AgentConnectSpec {
        uint32_t flags;
        uint16_t port;
} AgentConnectSpec;

void agent_connect_spec_encode(const AgentConnectSpec *spec, uint8_t out[AGENT_CONNECT_REQUEST_SIZE]);
/* -EBADMSG for a wrong size, unknown flags or port 0. */
int agent_connect_spec_parse(const uint8_t *payload, size_t len, AgentConnectSpec *ret);

/* Exit payload helpers (EXIT: u8 kind, u32 code). */
int agent_exit_check(uint8_t kind, uint32_t code);
