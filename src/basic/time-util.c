/* SPDX-License-Identifier: MIT */
#include "time-util.h"

#include <time.h>

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

char *format_timestamp(char *buf, size_t len, usec_t realtime) {
        time_t t = (time_t) (realtime / USEC_PER_SEC);
        struct tm tm;
        gmtime_r(&t, &tm);
        if (strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return NULL;
        return buf;
}
