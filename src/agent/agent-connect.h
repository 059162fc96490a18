/* SPDX-License-Identifier: MIT */
#pragma once

/* The guest end of a connect stream: a TCP connection to 127.0.0.1:port,
 * opened without blocking the agent's loop. */

#include <stdbool.h>
#include <stdint.h>

/* A non-blocking socket connecting to 127.0.0.1:port; *ret_pending when the
 * connection is still in progress (wait for POLLOUT, then
 * agent_connect_finish()). -ECONNREFUSED when nothing listens. */
int agent_connect_open(uint16_t port, bool *ret_pending);

/* After POLLOUT: 0 when connected, else the connection's -errno. */
int agent_connect_finish(int fd);
