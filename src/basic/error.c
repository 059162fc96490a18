/* SPDX-License-Identifier: MIT */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "string-util.h"

static _Thread_local char last_error[1024];
static _Thread_local int have_error;

int error_setf(int r, const char *fmt, ...) {
        int saved = errno;
        va_list ap;
        va_start(ap, fmt);
        errno = r < 0 ? -r : saved;
        /* Format into a scratch buffer: an argument may be error_last_message() itself. */
        char tmp[sizeof(last_error)];
        int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        /* Truncation must not split a UTF-8 sequence: the text ends up in JSON. */
        if (n >= (int) sizeof(tmp)) {
                size_t l = sizeof(tmp) - 1;
                while (l > 0 && ((unsigned char) tmp[l - 1] & 0xC0) == 0x80)
                        l--;
                if (l > 0 && ((unsigned char) tmp[l - 1] & 0xC0) == 0xC0)
                        l--;
                tmp[l] = '\0';
        }
        /* Messages quote what guests, images and registries sent (names,
         * texts): valid UTF-8 without escape sequences, whatever the caller
         * passed, so they can go into JSON, a log line or a terminal. */
        string_make_printable(tmp, true);
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
