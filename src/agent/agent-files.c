/* SPDX-License-Identifier: MIT */
/* What files get and files put share (agent-files.h). */
#include "agent-files.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int files_fail(int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return r < 0 ? r : -EIO;
}
