/* SPDX-License-Identifier: MIT */
#pragma once

/* The PASS/WARN/FAIL rows that doctor and system status print: each a
 * check name and detail lines, as text ("PASS check" then indented
 * details, then "N failed, N warnings") or as a JSON array. */

#include <jansson.h>
#include <stdbool.h>

#include "macro.h"

typedef enum CheckStatus {
        CHECK_PASS,
        CHECK_WARN,
        CHECK_FAIL,
} CheckStatus;

typedef struct CheckRows {
        json_t *rows; /* [{status, check, details: [line...]}] */
        unsigned n_fail, n_warn;
} CheckRows;

void check_rows_init(CheckRows *c);
void check_rows_done(CheckRows *c);

/* One row; the formatted detail (fmt may be NULL) is split at newlines. */
void check_row(CheckRows *c, CheckStatus s, const char *check, const char *fmt, ...) _printf_(4, 5);

/* The rows as JSON, or as text ending in the totals, with note after them. */
void check_rows_print(const CheckRows *c, bool json, const char *note);
