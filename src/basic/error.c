/* SPDX-License-Identifier: MIT */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];
static _Thread_local int have_error;

int error_setf(int r, const char *fmt, ...) {
        int saved = errno;
        va_list ap;
        va_start(ap, fmt);
        errno = r < 0 ? -r : saved;
        vsnprintf(last_error, sizeof(last_error), fmt, ap);
        va_end(ap);
        have_error = 1;
        errno = saved;
        return r;
}

const char *error_message(void) {
        return have_error ? last_error : NULL;
}

void error_clear(void) {
        have_error = 0;
        last_error[0] = '\0';
}
