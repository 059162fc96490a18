/* SPDX-License-Identifier: MIT */
#pragma once

/* Is a TCP service up yet (sshd in a guest that is still booting)? */

#include "time-util.h"

/* Try to connect to ip:port until one connection is made or the deadline
 * passes. Returns 1 when a connection was made, 0 when the deadline passed,
 * -ECANCELED as soon as cancel_fd (optional, -EBADF for none: a pidfd of
 * the VM's VMM, say) becomes readable, -EINVAL for an address that is not
 * IPv4. Each attempt waits for the socket to become writable; nothing tells
 * when a refused port starts listening, so refused attempts are repeated
 * after a pause (a wait on cancel_fd) that starts at 50 ms and doubles up
 * to 1 s. */
int tcp_port_open(const char *ip, unsigned port, usec_t deadline, int cancel_fd);
