/* SPDX-License-Identifier: MIT */
#pragma once

/* The CLI's WsReport (ws-report.h): failures as "banger: CMD: text" and
 * notes as lines of their own on stderr, and a copy's progress on a
 * terminal ("copying: 1.2G (310M/s)") once it has run a second. */

#include <stdbool.h>

#include "time-util.h"
#include "ws-report.h"

typedef struct CliReport {
        WsReport rep;
        const char *cmd; /* for messages: "vm run" */
        bool tty;
        usec_t last;
        bool shown;
} CliReport;

const WsReport *cli_report(CliReport *c, const char *cmd);
/* A report for cmd that lives as long as the enclosing block. */
#define CLI_REPORT(cmd) cli_report(&(CliReport){}, (cmd))
