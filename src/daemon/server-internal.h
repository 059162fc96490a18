/* SPDX-License-Identifier: MIT */
#pragma once

/* What the server (connections, server.c) and the calls on them
 * (rpc-call.c) share. Loop only. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "rpc-method.h"

typedef struct Connection Connection;

/* A call on c starts or ends: each call holds c, so a reply that arrives
 * after the client left finds a closed connection and goes nowhere. */
void connection_add_call(Connection *c);
void connection_remove_call(Connection *c);
/* Queue a line (ending in '\n') and flush what the socket takes now;
 * nothing once the connection is closed. */
void connection_send(Connection *c, const char *line);
/* For the event bus (events.c): whether c is open; the bytes it has queued
 * and not sent yet; stop reading and close once what is queued is sent;
 * shrink the kernel's send buffer. */
bool connection_is_open(Connection *c);
size_t connection_pending(Connection *c);
void connection_end(Connection *c);
void connection_set_send_buffer(Connection *c, int bytes);
/* Who is at the other end (SO_PEERCRED when it connected). */
void connection_peer(Connection *c, pid_t *ret_pid, uid_t *ret_uid);
/* The connection a call came on. */
Connection *rpc_call_connection(RpcCall *call);

/* A call of method m with this id (NULL: a notification) and params. It
 * answers, or runs in a worker and answers from there; either way it frees
 * itself once answered. */
void rpc_call_run(Daemon *d, Connection *c, json_t *id, const RpcMethod *m, json_t *params);
