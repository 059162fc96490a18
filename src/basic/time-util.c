/* SPDX-License-Identifier: MIT */
#include "time-util.h"

#include <errno.h>
#include <limits.h>
#include <time.h>

#include "macro.h"

static usec_t now_clock(clockid_t c) {
        struct timespec ts;
        clock_gettime(c, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

usec_t now_monotonic(void) {
        return now_clock(CLOCK_MONOTONIC);
}

usec_t now_realtime(void) {
        return now_clock(CLOCK_REALTIME);
}

usec_t deadline_from_timeout(usec_t timeout) {
        if (timeout == USEC_INFINITY)
                return USEC_INFINITY;
        usec_t now = now_monotonic();
        return timeout >= USEC_INFINITY - now ? USEC_INFINITY : now + timeout;
}

int deadline_poll_ms(usec_t deadline) {
        if (deadline == USEC_INFINITY)
                return -1;
        usec_t now = now_monotonic();
        if (now >= deadline)
                return 0;
        return (int) MIN((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (usec_t) INT_MAX);
}

void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

char *format_timestamp(char *buf, size_t len, usec_t realtime) {
        time_t t = (time_t) (realtime / USEC_PER_SEC);
        struct tm tm;
        gmtime_r(&t, &tm);
        if (strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return NULL;
        return buf;
}
