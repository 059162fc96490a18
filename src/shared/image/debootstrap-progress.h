/* SPDX-License-Identifier: MIT */
#pragma once

/* debootstrap's output as progress: it prints a line per package and step
 * ("I: Retrieving adduser 3.134", "I: Unpacking adduser...", some 300 of
 * them); a user wants one moving stage with counts, the full text goes to a
 * log. */

#include <stdbool.h>
#include <stddef.h>

typedef enum DebootstrapStep {
        DEBOOTSTRAP_RETRIEVING,
        DEBOOTSTRAP_VALIDATING,
        DEBOOTSTRAP_EXTRACTING,
        DEBOOTSTRAP_UNPACKING,
        DEBOOTSTRAP_CONFIGURING,
        DEBOOTSTRAP_N_STEPS,
} DebootstrapStep;

typedef struct DebootstrapProgress {
        unsigned count[DEBOOTSTRAP_N_STEPS]; /* packages each step has reached */
} DebootstrapProgress;

/* The progress message for one line of output, into buf: a per-package line
 * becomes its step's count ("retrieving packages: 12"), any other line
 * (phases, warnings, errors) is passed on as it is. False for an empty line. */
bool debootstrap_progress_line(DebootstrapProgress *p, const char *line, char *buf, size_t len);
