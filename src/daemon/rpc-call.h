/* SPDX-License-Identifier: MIT */
#pragma once

/* One JSON-RPC call being answered, as a method sees it. A method either
 * answers on the loop at once (rpc_call_reply*) or names work that runs in a
 * worker thread (RpcMethod.work in rpc-method.h); a worker may stream
 * progress notifications with rpc_call_notify() before its result. */

#include <jansson.h>
#include <stdint.h>

#include "macro.h"

typedef struct Daemon Daemon;
typedef struct RpcCall RpcCall;

Daemon *rpc_call_daemon(RpcCall *call);
/* The method's constant data (RpcMethod.data). */
const void *rpc_call_method_data(RpcCall *call);

/* From the loop: answer now. */
void rpc_call_reply(RpcCall *call, json_t *result); /* steals */
/* ... with the result as compact JSON text (jsonrpc_format_result_text()):
 * -ENOMEM or -EINVAL (a newline in it) and no reply when it cannot be sent. */
int rpc_call_reply_text(RpcCall *call, const char *result, size_t len);
void rpc_call_reply_error(RpcCall *call, int code, const char *fmt, ...) _printf_(3, 4);
/* From the loop: -32602 for one param, with data {"param": key, "expected":
 * what it must be, in words}, so a client can name its own option for it:
 * "\"key\" must be <expected>[, got 'got']". */
void rpc_call_reply_invalid_param(RpcCall *call, const char *key, const char *expected, const char *got);
/* Reply with the JSON-RPC code for -errno r and error_last_message() (or strerror). */
void rpc_call_reply_errno(RpcCall *call, int r);

/* Thread-safe: from a worker, queue a notification to the caller (steals params). */
void rpc_call_notify(RpcCall *call, const char *method, json_t *params);
/* Thread-safe: a "progress" notification with a stage, a message and byte
 * counts (done of total; 0 when unknown), as image and kernel work send. */
void rpc_call_progress(RpcCall *call, const char *stage, const char *message, uint64_t done, uint64_t total);
/* From a worker: extra "data" for the error reply if the work fails (steals). */
void rpc_call_set_error_data(RpcCall *call, json_t *data);

/* The JSON-RPC error code for -errno r (docs/protocol.md). */
int rpc_errno_to_code(int r);
