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
/* RFC 3339 UTC timestamp, second precision, into buf (>= 21 bytes). */
char *format_timestamp(char *buf, size_t len, usec_t realtime);
