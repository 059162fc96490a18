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

/* Called for each notification received while waiting for a reply. */
typedef void (*RpcNotifyFn)(const char *method, json_t *params, void *userdata);

/* Send one request and wait for its reply (deadline for the whole call;
 * USEC_INFINITY: none). Steals params. Returns 0 with *ret_result (new ref),
 * -EREMOTEIO with *ret_error filled when the server answered with an error,
 * -ETIMEDOUT, -ECONNRESET when the server closed the connection, -EBADMSG
 * when it sent something that is not JSON-RPC. */
int rpc_client_call(RpcClient *c, const char *method, json_t *params, usec_t timeout, RpcNotifyFn notify,
                    void *userdata, json_t **ret_result, RpcError *ret_error);

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
