/* SPDX-License-Identifier: MIT */
#pragma once

/* The JSON-RPC server (docs/protocol.md): the listening socket (ours, or the
 * one systemd passed), peer checks, connections, line framing, limits, and
 * dispatch to the method tables it is given. Runs on the event loop and
 * never blocks. */

#include <stdbool.h>

#include "rpc-method.h"

typedef struct Server Server;

/* Listen and serve the methods of tables (a NULL-terminated list of
 * {NULL}-terminated tables). */
int server_new(Daemon *d, const RpcMethod *const *tables, Server **ret);
/* Flush what can be flushed, close every connection and the listening
 * socket, and remove the socket file when this server made it. */
Server *server_free(Server *s);

unsigned server_connections(Server *s);
bool server_socket_activated(Server *s);
