/* SPDX-License-Identifier: MIT */
#include "ws-report.h"

#include <stdarg.h>
#include <stdio.h>

static void say(const WsReport *rep, bool failure, const char *fmt, va_list ap) {
        char text[2048];
        vsnprintf(text, sizeof(text), fmt, ap);
        if (rep && rep->say)
                rep->say(rep->userdata, failure, text);
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
