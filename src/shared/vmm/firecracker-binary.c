/* SPDX-License-Identifier: MIT */
/* Firecracker's binary and its version. Apart from the driver
 * (firecracker.c) so that a program asking only this (banger doctor) does not
 * link the REST client and libcurl. */
#include "firecracker.h"

#include <errno.h>

#include "error.h"
#include "spawn.h"
#include "string-util.h"

static int parse_uint_part(const char **p, unsigned *ret) {
        unsigned long v = 0;
        const char *s = *p;
        if (*s < '0' || *s > '9')
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
                v = v * 10 + (unsigned long) (*s - '0');
                if (v > 100000)
                        return -ERANGE;
        }
        *ret = (unsigned) v;
        *p = s;
        return 0;
}

int fc_parse_version(const char *output, FcVersion *ret) {
        FcVersion v;
        const char *p = output ? startswith(output, "Firecracker v") : NULL;
        if (!p)
                return -EINVAL;
        if (parse_uint_part(&p, &v.major) < 0 || *p++ != '.' || parse_uint_part(&p, &v.minor) < 0 || *p++ != '.' ||
            parse_uint_part(&p, &v.patch) < 0)
                return -EINVAL;
        /* "-dev", "-rc1" and the end of the line are fine; "1.5.0x" is not. */
        if (*p && *p != '-' && *p != '\n' && *p != ' ' && *p != '\r')
                return -EINVAL;
        *ret = v;
        return 0;
}

int fc_version_check(const FcVersion *v) {
#define FC_VERSION_KEY(a, b, c) (((unsigned long long) (a) << 40) | ((unsigned long long) (b) << 20) | (c))
        if (FC_VERSION_KEY(v->major, v->minor, v->patch) < FC_VERSION_KEY(FC_MIN_MAJOR, FC_MIN_MINOR, FC_MIN_PATCH))
                return error_setf(-EPROTONOSUPPORT, "Firecracker %u.%u.%u is too old: banger needs %u.%u.%u or newer",
                                  v->major, v->minor, v->patch, FC_MIN_MAJOR, FC_MIN_MINOR, FC_MIN_PATCH);
        return 0;
}

char *fc_resolve_binary(const char *configured) {
        const char *name = configured && *configured ? configured : FC_COMM;
        char *p = find_executable(name);
        if (!p)
                (void) error_setf(
                        -ENOENT,
                        configured && *configured
                                ? "Firecracker binary %s (firecracker_bin) is missing or not executable"
                                : "Firecracker binary %s not found in PATH; install it or set firecracker_bin",
                        name);
        return p;
}
