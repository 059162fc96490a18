/* SPDX-License-Identifier: MIT */
#pragma once

#include "time-util.h"

/* Wait until fd reports one of events (POLLIN, POLLOUT, ...) or deadline (a
 * now_monotonic() time; USEC_INFINITY waits for ever) passes. Signals do not
 * end the wait early. Returns the revents seen (> 0), -ETIMEDOUT once the
 * deadline passed, or -errno from poll(). */
int fd_wait_until(int fd, short events, usec_t deadline);
