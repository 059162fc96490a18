/* SPDX-License-Identifier: MIT */
#pragma once

/* JSON-RPC 2.0 framing: one JSON object per line ("\n"-terminated).
 * The reader accumulates bytes and hands out complete lines; a line longer
 * than the limit is an error (the connection should be closed). Parsing
 * checks, before jansson sees the text: valid UTF-8, nesting depth; then
 * jansson with duplicate keys rejected; then the request shape. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define JSONRPC_MAX_MESSAGE (1024 * 1024)
#define JSONRPC_MAX_DEPTH 64

enum {
        JSONRPC_PARSE_ERROR = -32700,
        JSONRPC_INVALID_REQUEST = -32600,
        JSONRPC_METHOD_NOT_FOUND = -32601,
        JSONRPC_INVALID_PARAMS = -32602,
        JSONRPC_INTERNAL_ERROR = -32603,
        /* Application errors (server-defined range). */
        JSONRPC_FAILED = -32000,      /* operation failed; message says why */
        JSONRPC_NOT_FOUND = -32001,   /* no such VM/image/kernel */
        JSONRPC_CONFLICT = -32002,    /* name in use, wrong state, ambiguous */
        JSONRPC_UNAVAILABLE = -32003, /* shutting down, too many connections, forbidden */
        JSONRPC_CANCELLED = -32004,   /* the operation was cancelled (operations.cancel) */
        JSONRPC_OTHER_BUILD = -32005, /* the request's "build" is not the server's: nothing ran */
};

/* A request's optional "build" member: the build of the server its sender
 * expects ("VERSION COMMIT", docs/protocol.md), at most this long. */
#define JSONRPC_BUILD_MAX 128

typedef struct JsonRpcReader {
        char *buf;
        size_t len;
        size_t cap;
        size_t max;      /* max line length, excluding the newline */
        size_t consumed; /* bytes of buf already handed out */
        size_t scanned;  /* buf[consumed..scanned) holds no newline: searched once, not at every read */
} JsonRpcReader;

void jsonrpc_reader_init(JsonRpcReader *r, size_t max_line);
void jsonrpc_reader_done(JsonRpcReader *r);

/* Append received bytes. -EMSGSIZE when a line without newline exceeds max. */
int jsonrpc_reader_feed(JsonRpcReader *r, const void *data, size_t n);

/* Take the next complete line (without the newline; NUL-terminated, valid
 * until the next feed/next call). Returns 1 with a line, 0 when none is
 * complete yet, -EMSGSIZE when a complete line is over the limit. */
int jsonrpc_reader_next(JsonRpcReader *r, const char **ret_line, size_t *ret_len);

/* Maximum nesting of arrays/objects in a JSON text, counting only brackets
 * outside strings. Cheap, and protects jansson's recursion. */
size_t json_text_depth(const char *s, size_t len);

/* Parse one message. On success *ret is a new reference to an object.
 * On failure returns the JSON-RPC error code (<0) and a message. */
int jsonrpc_parse_line(const char *line, size_t len, json_t **ret, const char **ret_message);

typedef struct JsonRpcRequest {
        const char *method; /* borrowed from msg */
        json_t *params;     /* borrowed; an object (empty when absent) */
        json_t *id;         /* borrowed; NULL for a notification */
        const char *build;  /* borrowed; NULL when the request names no build */
} JsonRpcRequest;

/* Validate the request shape. Returns 0, or JSONRPC_INVALID_REQUEST with a message. */
int jsonrpc_request_from_json(json_t *msg, JsonRpcRequest *ret, const char **ret_message);

/* Build messages. Each returns a newly allocated, "\n"-terminated line. */
char *jsonrpc_format_result(json_t *id, json_t *result); /* steals result */
/* The same with the result already JSON text (compact, one line: written by
 * SQLite's JSON functions, which escape every control character). NULL when
 * the text holds a newline, which would cut the message in two. */
char *jsonrpc_format_result_text(json_t *id, const char *result, size_t len);
/* An error message is one short printable line, whatever the request held
 * (names and paths are echoed in messages): a copy of message with control
 * characters and invalid UTF-8 as '?', cut at a character boundary to
 * JSONRPC_ERROR_MESSAGE_MAX bytes ("..." marks a cut). NULL on ENOMEM.
 * jsonrpc_format_error() applies it to its message. */
#define JSONRPC_ERROR_MESSAGE_MAX 512
char *jsonrpc_error_message_clean(const char *message);
char *jsonrpc_format_error(json_t *id, int code, const char *message, json_t *data); /* steals data */
char *jsonrpc_format_notification(const char *method, json_t *params);               /* steals params */
/* build: the request's "build" member, NULL for none. Steals params. */
char *jsonrpc_format_request(json_t *id, const char *method, json_t *params, const char *build);
