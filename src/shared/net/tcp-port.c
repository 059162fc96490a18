/* SPDX-License-Identifier: MIT */
#include "tcp-port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "macro.h"

#define PAUSE_FIRST (50 * USEC_PER_MSEC)
#define PAUSE_MAX USEC_PER_SEC
#define ATTEMPT_MAX USEC_PER_SEC

/* Wait for fd to be ready for events (fd < 0: for nothing) or cancel_fd to
 * become readable, at most until deadline. 1 ready, 0 timeout, -ECANCELED. */
static int wait_ready(int fd, short events, int cancel_fd, usec_t deadline) {
        for (;;) {
                struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = cancel_fd, .events = POLLIN } };
                int n = poll(p, 2, deadline_poll_ms(deadline));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (p[1].revents)
                        return -ECANCELED;
                return n > 0 ? 1 : 0;
        }
}

/* One attempt: 1 connected, 0 not (refused, unreachable, too slow). */
static int try_connect(const struct sockaddr_in *sa, int cancel_fd, usec_t deadline) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) == 0)
                return 1;
        if (errno != EINPROGRESS)
                return 0;
        usec_t now = now_monotonic();
        int r = wait_ready(fd, POLLOUT, cancel_fd, MIN(deadline, now + ATTEMPT_MAX));
        if (r <= 0)
                return r;
        int err = 0;
        socklen_t l = sizeof(err);
        return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err == 0;
}

int tcp_port_open(const char *ip, unsigned port, usec_t deadline, int cancel_fd) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        if (!ip || port == 0 || port > 65535 || inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
                return -EINVAL;
        usec_t pause = PAUSE_FIRST;
        while (now_monotonic() < deadline) {
                int r = try_connect(&sa, cancel_fd, deadline);
                if (r != 0)
                        return r;
                r = wait_ready(-EBADF, 0, cancel_fd, MIN(deadline, now_monotonic() + pause));
                if (r < 0)
                        return r;
                pause = MIN(pause * 2, PAUSE_MAX);
        }
        return 0;
}
