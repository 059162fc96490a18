/* SPDX-License-Identifier: MIT */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];
static _Thread_local int have_error;

int error_setf(int r, const char *fmt, ...) {
        int saved = errno;
        va_list ap;
        va_start(ap, fmt);
        errno = r < 0 ? -r : saved;
        /* Format into a scratch buffer: an argument may be error_last_message() itself. */
        char tmp[sizeof(last_error)];
        vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        memcpy(last_error, tmp, sizeof(last_error));
        have_error = 1;
        errno = saved;
        return r;
}

const char *error_last_message(void) {
        return have_error ? last_error : NULL;
}

void error_clear(void) {
        have_error = 0;
        last_error[0] = '\0';
}
