/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef uint64_t usec_t;
#define USEC_PER_SEC ((usec_t) 1000000ULL)
#define USEC_PER_MSEC ((usec_t) 1000ULL)
#define USEC_INFINITY ((usec_t) UINT64_MAX)

usec_t now_monotonic(void);
usec_t now_realtime(void);

/* The monotonic deadline timeout from now; USEC_INFINITY (or a sum that
 * would overflow) stays USEC_INFINITY. */
usec_t deadline_from_timeout(usec_t timeout);
/* The timeout poll() takes to wait until deadline: -1 for USEC_INFINITY, 0
 * once it has passed, otherwise the milliseconds left rounded up (so a poll
 * never wakes just before the deadline), at most INT_MAX. */
int deadline_poll_ms(usec_t deadline);
/* Sleep ms milliseconds; a signal does not cut the sleep short. */
void sleep_ms(unsigned ms);
/* RFC 3339 UTC timestamp, second precision, into buf (>= 21 bytes). */
char *format_timestamp(char *buf, size_t len, usec_t realtime);
/* A duration in seconds: "90", "90s", "15m", "2h", "1d", or several ("1h30m");
 * "0" and "off" give 0. -EINVAL when it is none of these, -ERANGE past max. */
int parse_duration_sec(const char *s, uint64_t max, uint64_t *ret);
