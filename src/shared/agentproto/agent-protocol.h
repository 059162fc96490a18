/* SPDX-License-Identifier: MIT */
#pragma once

/* The wire contract between banger (host) and banger-agent (guest); see
 * docs/agent-protocol.md. This file and agent-protocol.c use nothing but
 * libc, because the statically linked agent compiles them in directly:
 * one definition of the format serves both ends (and the fuzz target). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_VSOCK_PORT 10789U
#define AGENT_SERIAL_PORT_NAME "org.banger.agent"
#define AGENT_PROTOCOL_VERSION 1U

#define AGENT_FRAME_HEADER_SIZE 5U
/* Largest payload either side accepts; bigger frames are a protocol error. */
#define AGENT_FRAME_MAX (1024U * 1024U)
/* Largest stdin/stdout/stderr chunk in one frame. */
#define AGENT_DATA_CHUNK (64U * 1024U)
#define AGENT_EXEC_MAX_ARGS 1024U
#define AGENT_EXEC_MAX_ENV 1024U
#define AGENT_EXEC_MAX_STRING (128U * 1024U)
#define AGENT_ERROR_MAX_TEXT 1024U

#define AGENT_HELLO_MAGIC "BNGR"
#define AGENT_HELLO_PAYLOAD_SIZE 12U /* magic[4] version[u32] nonce[u32] */
#define AGENT_HELLO_FRAME_SIZE (AGENT_FRAME_HEADER_SIZE + AGENT_HELLO_PAYLOAD_SIZE)
/* A hello frame starts with these 9 bytes (header + magic); stream
 * transports resynchronise by scanning for them. */
#define AGENT_HELLO_SYNC_SIZE 9U

typedef enum AgentMsg {
        AGENT_MSG_HELLO = 0x01,          /* both ways: magic, version, nonce */
        AGENT_MSG_ERROR = 0x02,          /* agent: u32 errno, text */
        AGENT_MSG_OK = 0x03,             /* agent: empty acknowledgement */
        AGENT_MSG_HEALTH = 0x10,         /* host: empty; agent: JSON */
        AGENT_MSG_PORTS = 0x11,          /* host: empty; agent: JSON */
        AGENT_MSG_STATS = 0x12,          /* host: empty; agent: JSON */
        AGENT_MSG_POWEROFF = 0x13,       /* host: empty; agent: OK, then powers off */
        AGENT_MSG_EXEC_START = 0x20,     /* host: flags, argv, env, cwd */
        AGENT_MSG_EXEC_STDIN = 0x21,     /* host: bytes */
        AGENT_MSG_EXEC_STDIN_EOF = 0x22, /* host: empty */
        AGENT_MSG_EXEC_SIGNAL = 0x23,    /* host: u32 signal number */
        AGENT_MSG_EXEC_STARTED = 0x24,   /* agent: u32 pid */
        AGENT_MSG_EXEC_STDOUT = 0x25,    /* agent: bytes */
        AGENT_MSG_EXEC_STDERR = 0x26,    /* agent: bytes */
        AGENT_MSG_EXEC_EXIT = 0x27,      /* agent: u8 kind, u32 code */
} AgentMsg;

typedef enum AgentExitKind {
        AGENT_EXIT_CODE = 0,   /* code is the exit status */
        AGENT_EXIT_SIGNAL = 1, /* code is the signal number */
} AgentExitKind;

bool agent_msg_is_known(uint8_t type);
const char *agent_msg_to_string(uint8_t type);

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

void agent_hello_encode(uint8_t out[AGENT_HELLO_FRAME_SIZE], uint32_t version, uint32_t nonce);
int agent_hello_parse(const uint8_t *payload, size_t len, uint32_t *ret_version, uint32_t *ret_nonce);

/* ERROR payload: u32 errno (positive) then up to AGENT_ERROR_MAX_TEXT bytes
 * of text. *ret_text is a newly allocated NUL-terminated copy. */
int agent_error_parse(const uint8_t *payload, size_t len, int *ret_errno, char **ret_text);

int agent_exit_parse(const uint8_t *payload, size_t len, AgentExitKind *ret_kind, int *ret_code);

/* EXEC_START payload: u32 flags, u32 argc, u32 envc, then NUL-terminated
 * strings: cwd, argv[0..argc), env[0..envc). */
typedef struct AgentExecSpec {
        uint32_t flags; /* must be 0 in protocol version 1 */
        const char *cwd; /* "" means "/" */
        char **argv;     /* NULL-terminated; strings point into the payload */
        char **env;      /* NULL-terminated; strings point into the payload */
} AgentExecSpec;

int agent_exec_spec_encode(const AgentExecSpec *spec, uint8_t **ret, size_t *ret_len);
/* Validate and parse; the payload must outlive *ret. Frees with agent_exec_spec_done(). */
int agent_exec_spec_parse(const uint8_t *payload, size_t len, AgentExecSpec *ret);
void agent_exec_spec_done(AgentExecSpec *spec);
