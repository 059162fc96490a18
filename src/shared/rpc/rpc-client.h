/* SPDX-License-Identifier: MIT */
#pragma once

/* Client side of banger's JSON-RPC over a Unix stream socket. */

#include <jansson.h>
#include <stdint.h>

#include "jsonrpc.h"
#include "macro.h"
#include "time-util.h"

typedef struct RpcClient RpcClient;

typedef struct RpcError {
        int code;
        char *message;
        json_t *data;
} RpcError;

void rpc_error_done(RpcError *e);

/* Connect; -ENOENT / -ECONNREFUSED mean "no daemon there". A path too long
 * for sun_path is -ENAMETOOLONG. */
int rpc_client_connect(const char *socket_path, RpcClient **ret);
void rpc_client_free(RpcClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(RpcClient *, rpc_client_free);
#define _cleanup_rpc_client_ _cleanup_(rpc_client_freep)

/* Connect c again, to socket_path (a server that replaced the one it was
 * connected to): the old connection is closed once the new one is up. */
int rpc_client_reconnect(RpcClient *c, const char *socket_path);

/* A server of another build refused a call (err: JSONRPC_OTHER_BUILD, or
 * JSONRPC_INVALID_REQUEST from a server that predates the "build" member and
 * closed the connection). The check is off by then; fn may reconnect c
 * (rpc_client_reconnect) and calls on it. 0: the call is sent again, without
 * a build; < 0: the call fails with that error (and err). */
typedef int (*RpcOtherBuildFn)(RpcClient *c, const RpcError *err, void *userdata);

/* Send build (docs/protocol.md: "VERSION COMMIT") with each request, so a
 * server of another build refuses it without running it, and let fn decide
 * what then (at most once: the check is off after). NULL build: none. */
int rpc_client_set_build(RpcClient *c, const char *build, RpcOtherBuildFn fn, void *userdata);

/* Called for each notification received while waiting for a reply. */
typedef void (*RpcNotifyFn)(const char *method, json_t *params, void *userdata);

/* Send one request and wait for its reply (deadline for the whole call;
 * USEC_INFINITY: none). Steals params. Returns 0 with *ret_result (new ref),
 * -EREMOTEIO with *ret_error filled when the server answered with an error,
 * -ETIMEDOUT, -ECONNRESET when the server closed the connection, -EBADMSG
 * when it sent something that is not JSON-RPC. */
int rpc_client_call(RpcClient *c, const char *method, json_t *params, usec_t timeout, RpcNotifyFn notify,
                    void *userdata, json_t **ret_result, RpcError *ret_error);

/* The same, with the result handed over as the JSON text the server sent
 * (*ret_text, NUL-terminated, *ret_len bytes; free() it), not parsed: only
 * the reply's envelope goes through jansson. For a large result printed as
 * it came (json-text.h checks and indents it). -EBADMSG when the reply has
 * no "result" member to cut out. */
int rpc_client_call_text(RpcClient *c, const char *method, json_t *params, usec_t timeout, RpcNotifyFn notify,
                         void *userdata, char **ret_text, size_t *ret_len, RpcError *ret_error);

/* After a call, for a connection that receives notifications unasked (a
 * subscription): hand every complete notification already received to
 * notify, then read once without blocking and hand over what came. Poll
 * rpc_client_fd() for POLLIN between calls. Returns 0 (nothing more for
 * now), -ECONNRESET when the server closed the connection, -EBADMSG when
 * it sent something that is not JSON-RPC. Replies are skipped. */
int rpc_client_read_notifications(RpcClient *c, RpcNotifyFn notify, void *userdata);

/* While a call waits for its reply: when fd becomes readable, fn(userdata)
 * runs (it must make fd unreadable again, e.g. drain a pipe) and the wait
 * goes on. The CLI turns Ctrl-C into a cancel this way. fn NULL: none. */
typedef void (*RpcInterruptFn)(void *userdata);
void rpc_client_set_interrupt(RpcClient *c, int fd, RpcInterruptFn fn, void *userdata);

/* The raw fd, for tests that want to misbehave (and for polling). */
int rpc_client_fd(RpcClient *c);
