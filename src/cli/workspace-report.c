/* SPDX-License-Identifier: MIT */
#include "workspace-report.h"

#include <stdio.h>
#include <unistd.h>

#include "macro.h"
#include "output.h"

#define PROGRESS_AFTER (1 * USEC_PER_SEC)

static void report_say(void *userdata, bool failure, const char *text) {
        const CliReport *c = userdata;
        if (failure)
                fprintf(stderr, "banger: %s: %s\n", c->cmd, text);
        else
                fprintf(stderr, "%s\n", text);
}

static void report_progress(void *userdata, uint64_t bytes, usec_t elapsed) {
        CliReport *c = userdata;
        usec_t now = now_monotonic();
        if (!c->tty || elapsed < PROGRESS_AFTER || now - c->last < 200 * USEC_PER_MSEC)
                return;
        char size[16], rate[16];
        double secs = (double) elapsed / USEC_PER_SEC;
        fprintf(stderr, "\r\033[Kcopying: %s (%s/s)", format_size(size, sizeof(size), bytes),
                format_size(rate, sizeof(rate), (uint64_t) ((double) bytes / secs)));
        c->last = now;
        c->shown = true;
}

static void report_progress_end(void *userdata) {
        CliReport *c = userdata;
        if (c->shown)
                fprintf(stderr, "\r\033[K");
        c->shown = false;
}

const WsReport *cli_report(CliReport *c, const char *cmd) {
        *c = (CliReport){ .rep = { .say = report_say,
                                   .progress = report_progress,
                                   .progress_end = report_progress_end,
                                   .stderr_fd = STDERR_FILENO,
                                   .userdata = c },
                          .cmd = cmd,
                          .tty = isatty(STDERR_FILENO) };
        return &c->rep;
}
