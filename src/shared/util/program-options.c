/* SPDX-License-Identifier: MIT */
#include "program-options.h"

#include <errno.h>
#include <stdio.h>

#include "banger-build.h"
#include "log.h"

int program_common_option(const ProgramInfo *p, int c, const char *arg, int *log_level) {
        switch (c) {
        case PROGRAM_OPTION_LOG_LEVEL:
                *log_level = log_level_from_string(arg);
                if (*log_level < 0) {
                        fprintf(stderr, "%s: invalid log level '%s'\n", p->name, arg);
                        return -EINVAL;
                }
                return 1;
        case PROGRAM_OPTION_VERSION:
                printf("%s %s (%s)\n", p->name, BANGER_VERSION, BANGER_COMMIT);
                return 0;
        case 'h':
                p->help();
                return 0;
        default:
                return -EINVAL;
        }
}

int program_no_operands(const ProgramInfo *p, int argc, char **argv) {
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", p->name, argv[optind]);
                return -EINVAL;
        }
        return 1;
}
