/* SPDX-License-Identifier: MIT */
#pragma once

/* The command-line options every banger program takes the same way
 * (--log-level, --version, --help) and the check that no operands follow,
 * with the same messages everywhere. A program lists PROGRAM_COMMON_OPTIONS
 * in its getopt_long() table and passes every option it does not handle
 * itself to program_common_option(). */

#include <getopt.h>

enum {
        PROGRAM_OPTION_LOG_LEVEL = 0x7f00,
        PROGRAM_OPTION_VERSION,
};

/* clang-format off */
#define PROGRAM_COMMON_OPTIONS                                                  \
        { "log-level", required_argument, NULL, PROGRAM_OPTION_LOG_LEVEL },     \
        { "version", no_argument, NULL, PROGRAM_OPTION_VERSION },               \
        { "help", no_argument, NULL, 'h' }
/* clang-format on */

typedef struct ProgramInfo {
        const char *name; /* as in messages: "bangerd" */
        void (*help)(void);
} ProgramInfo;

/* Handle option c (getopt's return) with its argument arg. Returns 1 when
 * parsing goes on (--log-level stored in *log_level), 0 when the program is
 * done and exits 0 (--version, --help printed), -EINVAL for a bad value or
 * an option getopt refused (its message was printed). */
int program_common_option(const ProgramInfo *p, int c, const char *arg, int *log_level);

/* After the options: 1 when no operand is left, else -EINVAL after naming
 * the first. */
int program_no_operands(const ProgramInfo *p, int argc, char **argv);
