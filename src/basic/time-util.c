/* SPDX-License-Identifier: MIT */
#include "time-util.h"

#include <errno.h>
#include <limits.h>
#include <time.h>

#include "macro.h"
#include "string-util.h"

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

/* One number and its unit ("90", "90s", "15m", "2h", "1d"), several in a row
 * ("1h30m"); "0" and "off" are zero. */
int parse_duration_sec(const char *s, uint64_t max, uint64_t *ret) {
        if (!s || !*s)
                return -EINVAL;
        if (streq(s, "off") || streq(s, "0")) {
                *ret = 0;
                return 0;
        }
        uint64_t total = 0;
        for (const char *p = s; *p;) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                uint64_t n = 0;
                for (; *p >= '0' && *p <= '9'; p++) {
                        n = n * 10 + (uint64_t) (*p - '0');
                        if (n > max)
                                return -ERANGE;
                }
                uint64_t unit = *p == 's' || !*p ? 1 : *p == 'm' ? 60 : *p == 'h' ? 3600 : *p == 'd' ? 86400 : 0;
                if (!unit)
                        return -EINVAL;
                if (*p)
                        p++;
                if (n > (max - total) / unit)
                        return -ERANGE;
                total += n * unit;
        }
        *ret = total;
        return 0;
}
