/* SPDX-License-Identifier: MIT */
#include "io-util.h"

#include <errno.h>
#include <poll.h>

int fd_wait_until(int fd, short events, usec_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int n = poll(&p, 1, deadline_poll_ms(deadline));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n > 0)
                        return p.revents;
                /* poll() may wake a little early by its own clock: only the
                 * deadline itself ends the wait. */
                if (deadline != USEC_INFINITY && now_monotonic() >= deadline)
                        return -ETIMEDOUT;
        }
}
