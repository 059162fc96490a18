/* SPDX-License-Identifier: MIT */
#pragma once

/* What the code here tells its caller while it works, through the caller's
 * functions: this library prints nothing. A failure is said once, where its
 * cause is known, as one sentence without a prefix (the CLI prints it as
 * "banger: CMD: text"); a note is a line of its own ("workspace: ..."); a
 * copy reports the bytes moved so far. */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "time-util.h"

typedef struct WsReport {
        void (*say)(void *userdata, bool failure, const char *text);
        /* NULL: no progress. elapsed: since this copy started. */
        void (*progress)(void *userdata, uint64_t bytes, usec_t elapsed);
        /* After a copy, when progress is set. */
        void (*progress_end)(void *userdata);
        int stderr_fd; /* where a guest command run for us writes its stderr */
        void *userdata;
} WsReport;

void ws_fail(const WsReport *rep, const char *fmt, ...) _printf_(2, 3);
void ws_note(const WsReport *rep, const char *fmt, ...) _printf_(2, 3);
