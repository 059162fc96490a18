/* SPDX-License-Identifier: MIT */
#pragma once

/* Command groups (vm, image, kernel): a table of verbs per group, used for
 * dispatch, for the group's --help and for the shell completion scripts. */

#include "cli.h"

typedef struct CliVerb {
        const char *name;
        const char *alias; /* other names, space separated, or NULL */
        CliCommandFn fn;   /* argv[0] is the verb */
        const char *summary;
        /* For completion: the verb's options, space separated; a trailing
         * '=' marks one that takes a value. */
        const char *options;
        /* For completion: what the operands are: "vm", "image", "kernel",
         * "file", "shell", "port" (the vm port verbs) or "" for none. */
        const char *operands;
} CliVerb;

extern const CliVerb cli_vm_verbs[];
extern const CliVerb cli_vm_port_verbs[]; /* banger vm port VERB */
extern const CliVerb cli_image_verbs[];
extern const CliVerb cli_kernel_verbs[];
extern const CliVerb cli_snapshot_verbs[];
extern const CliVerb cli_daemon_verbs[];
extern const CliVerb cli_catalog_verbs[];
extern const CliVerb cli_operations_verbs[];

/* True when word is the verb's name or one of its aliases. */
bool cli_verb_matches(const CliVerb *v, const char *word);

/* Run "banger GROUP [--json] VERB ARGS...": group options before the verb,
 * help when none is given (exit 2) or asked for (exit 0). */
int cli_group_run(Cli *cli, const char *group, const char *intro, const CliVerb *verbs, int argc, char **argv);

/* Options every verb takes, for getopt_long tables. */
enum { CLI_OPT_JSON = 0x1000, CLI_OPT_FIRST_PRIVATE };
#define CLI_COMMON_LONG_OPTIONS                        \
        { "json", no_argument, NULL, CLI_OPT_JSON }, { \
                "help", no_argument, NULL, 'h'         \
        }

/* Report a getopt failure (call it on '?' or ':') naming the command (NULL:
 * banger's global options) and the offending argument; returns EXIT_USAGE. */
int cli_option_error(const char *cmd, char **argv);

/* A usage error with a message: "banger vm create: MESSAGE" and a hint. */
int cli_usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);

/* Parse a verb that takes only --json/--help and between min and max
 * operands (max < 0: no limit), left at argv[optind...]. Returns 0, -1 when
 * help was printed (exit 0), or EXIT_USAGE after printing the error. */
int cli_parse_simple(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, int min_operands,
                     int max_operands);

/* "<group> VERB" without operands: one call of method, its result printed
 * as JSON or by print; with --names only the names in it (for completion:
 * never starts the daemon). */
int cli_list(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, const char *method,
             void (*print)(json_t *));

/* One call of method with params (stolen), its result printed as JSON or by
 * print: EXIT_OK, or EXIT_FAIL after the reason was printed. */
int cli_call_and_print(Cli *cli, const char *method, json_t *params, void (*print)(json_t *));

/* "<group> VERB OPERAND": one call of method {key: OPERAND}, its result
 * printed as JSON or by print. */
int cli_show_one(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, const char *method,
                 const char *key, void (*print)(json_t *));

/* "<group> VERB NAME...": method {name} for each operand, reporting each as
 * "<done> <what> NAME" (or a JSON line); exit 1 when any failed. */
int cli_for_each_named(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, const char *method,
                       const char *done, const char *what);
/* The same with -f/--force when allow_force: then "force": true is sent. */
int cli_for_each_named_force(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, const char *method,
                             const char *done, const char *what, bool allow_force);

/* The usage error for a name that is not name_is_valid(): returns
 * EXIT_USAGE. */
int cli_invalid_name(const char *cmd, const char *name);

/* Resolve a host path argument to an absolute one (the daemon reads it, not
 * from our cwd); a missing file is a usage error. */
int cli_absolute_path(const char *cmd, const char *what, const char *arg, char **ret);
