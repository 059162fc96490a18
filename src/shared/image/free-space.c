/* SPDX-License-Identifier: MIT */
#include "free-space.h"

#include <errno.h>

#include "error.h"
#include "fs-util.h"

#define MIB (1ULL << 20)

int free_space_check(int dirfd, uint64_t need, const char *what) {
        unsigned long long free_bytes;
        int r = fd_free_bytes(dirfd, &free_bytes);
        if (r < 0)
                return error_setf(r, "cannot tell the free space for %s: %m", what);
        if (free_bytes >= FREE_SPACE_RESERVE && need <= free_bytes - FREE_SPACE_RESERVE)
                return 0;
        return error_setf(-ENOSPC,
                          "not enough free space for %s: it needs %llu MiB, and %llu MiB are free of which %llu MiB "
                          "are always left",
                          what, (unsigned long long) ((need + MIB - 1) / MIB), free_bytes / MIB,
                          FREE_SPACE_RESERVE / MIB);
}
