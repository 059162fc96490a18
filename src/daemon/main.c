/* SPDX-License-Identifier: MIT */
/* bangerd: parses its arguments and runs the daemon (daemon.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "daemon.h"
#include "log.h"
#include "program-options.h"

static void help(void) {
        printf("Usage: bangerd [OPTIONS]\n"
               "\n"
               "The banger daemon: keeps banger's VMs, images and host resources, and\n"
               "serves the banger CLI over JSON-RPC on <runtime dir>/bangerd.sock.\n"
               "The banger CLI starts it on demand in user mode; under systemd it can be\n"
               "socket activated.\n"
               "\n"
               "Options:\n"
               "  --system             use the system paths (/etc, /var/lib, /run/banger)\n"
               "  --log-level LEVEL    error, warning, notice, info or debug\n"
               "                       (also BANGER_LOG_LEVEL and config log_level)\n"
               "  --check-migrations   report the database schema and exit: 0 compatible,\n"
               "                       1 migrations pending, 2 database newer than this build\n"
               "  --version            print version and exit\n"
               "  -h, --help           show this help\n");
}

static const ProgramInfo program = { .name = "bangerd", .help = help };

/* 1: run, 0: done (--help, --version), -EINVAL: usage error. */
static int parse_args(int argc, char **argv, DaemonOptions *o, bool *check_migrations) {
        enum { ARG_SYSTEM = 0x100, ARG_CHECK };
        static const struct option opts[] = {
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "check-migrations", no_argument, NULL, ARG_CHECK },
                PROGRAM_COMMON_OPTIONS,
                {},
        };
        *o = (DaemonOptions){ .log_level = -1 };
        int c, r;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                if (c == ARG_SYSTEM)
                        o->system = true;
                else if (c == ARG_CHECK)
                        *check_migrations = true;
                else if ((r = program_common_option(&program, c, optarg, &o->log_level)) <= 0)
                        return r;
        }
        return program_no_operands(&program, argc, argv);
}

int main(int argc, char **argv) {
        DaemonOptions o;
        bool check = false;
        log_set_program(program.name);
        int r = parse_args(argc, argv, &o, &check);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        return check ? daemon_check_migrations(o.system) : daemon_run(&o);
}
