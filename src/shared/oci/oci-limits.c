/* SPDX-License-Identifier: MIT */
#include "oci-limits.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "error.h"
#include "fs-util.h"

#define MIB (1ULL << 20)

uint64_t oci_import_max(const OciImportOptions *o) {
        return o && o->max_bytes ? o->max_bytes : OCI_IMPORT_MAX_DEFAULT;
}

int oci_limit_error(uint64_t max, const char *fmt, ...) {
        char what[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        return error_setf(-EFBIG, "%s more than %llu MiB; image_import_max in config.toml sets this limit", what,
                          (unsigned long long) (max / MIB));
}

int oci_free_bytes(int dirfd, uint64_t *ret) {
        unsigned long long free_bytes;
        int r = fd_free_bytes(dirfd, &free_bytes);
        if (r < 0)
                return r;
        *ret = free_bytes > OCI_FREE_RESERVE ? free_bytes - OCI_FREE_RESERVE : 0;
        return 0;
}

int oci_check_free(int dirfd, uint64_t need, const char *what) {
        uint64_t avail;
        int r = oci_free_bytes(dirfd, &avail);
        if (r < 0)
                return error_setf(r, "cannot tell the free space for %s: %m", what);
        if (need <= avail)
                return 0;
        return error_setf(-ENOSPC,
                          "not enough free space for %s: it needs %llu MiB and %llu MiB are free beyond the "
                          "%llu MiB an import always leaves",
                          what, (unsigned long long) ((need + MIB - 1) / MIB), (unsigned long long) (avail / MIB),
                          (unsigned long long) (OCI_FREE_RESERVE / MIB));
}
