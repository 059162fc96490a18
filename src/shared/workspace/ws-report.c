/* SPDX-License-Identifier: MIT */
#include "ws-report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The text is formatted whole, however long (two paths and git's stderr
 * can make it long): it was never cut when the CLI printed it itself. */
static void say(const WsReport *rep, bool failure, char *text) {
        if (text && rep && rep->say)
                rep->say(rep->userdata, failure, text);
        free(text);
}

void ws_fail(const WsReport *rep, const char *fmt, ...) {
        char *text = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        say(rep, true, text);
}

void ws_note(const WsReport *rep, const char *fmt, ...) {
        char *text = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        say(rep, false, text);
}
