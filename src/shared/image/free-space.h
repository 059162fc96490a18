/* SPDX-License-Identifier: MIT */
#pragma once

/* What a kernel import or a package download leaves free: each checks,
 * before it writes, that the file system keeps FREE_SPACE_RESERVE. */

#include <stdint.h>

#define FREE_SPACE_RESERVE (64ULL << 20)

/* 0 when need bytes can be written beneath dirfd and leave the reserve,
 * else -ENOSPC with a sentence naming what. */
int free_space_check(int dirfd, uint64_t need, const char *what);
