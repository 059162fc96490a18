/* SPDX-License-Identifier: MIT */
#include "ws-report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The text is formatted whole, however long (two paths and git's stderr
 * can make it long): it was never cut when the CLI printed it itself. */
static void say(const WsReport *rep, bool failure, const char *fmt, va_list ap) _printf_(3, 0);
static void say(const WsReport *rep, bool failure, const char *fmt, va_list ap) {
        char *text = NULL;
        if (!rep || !rep->say || vasprintf(&text, fmt, ap) < 0)
                return;
        rep->say(rep->userdata, failure, text);
        free(text);
}

void ws_fail(const WsReport *rep, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        say(rep, true, fmt, ap);
        va_end(ap);
}

void ws_note(const WsReport *rep, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        say(rep, false, fmt, ap);
        va_end(ap);
}
