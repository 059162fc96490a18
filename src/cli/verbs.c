/* SPDX-License-Identifier: MIT */
/* Dispatch for command groups and shared option error reporting. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "string-util.h"
#include "output.h"
#include "verbs.h"

bool cli_verb_matches(const CliVerb *v, const char *word) {
        if (streq(v->name, word))
                return true;
        size_t l = strlen(word);
        for (const char *a = v->alias; a && *a; a += strcspn(a, " "), a += strspn(a, " "))
                if (strncmp(a, word, l) == 0 && (a[l] == ' ' || a[l] == '\0'))
                        return true;
        return false;
}

static bool verb_takes_json(const CliVerb *v) {
        const char *o = v->options;
        for (const char *p = o ? strstr(o, "--json") : NULL; p; p = strstr(p + 1, "--json"))
                if ((p == o || p[-1] == ' ') && (p[6] == ' ' || p[6] == '\0'))
                        return true;
        return false;
}

/* Which verbs take --json, from the same table the completion uses. */
static void print_json_note(const CliVerb *verbs) {
        size_t without = 0, seen = 0;
        for (const CliVerb *v = verbs; v->name; v++)
                without += !verb_takes_json(v);
        if (without == 0) {
                printf("\nEvery command takes --json (machine-readable output) and -h/--help.\n");
                return;
        }
        printf("\nEvery command takes -h/--help, and all but ");
        for (const CliVerb *v = verbs; v->name; v++) {
                if (verb_takes_json(v))
                        continue;
                seen++;
                printf("%s%s", v->name, seen == without ? "" : seen + 1 == without ? " and " : ", ");
        }
        printf(" take --json\n(machine-readable output).\n");
}

static void group_help(const char *group, const char *intro, const CliVerb *verbs) {
        printf("Usage: banger %s COMMAND [OPTIONS] [ARGS...]\n\n%s\n\nCommands:\n", group, intro);
        for (const CliVerb *v = verbs; v->name; v++) {
                char name[64];
                size_t n = (size_t) snprintf(name, sizeof(name), "%s", v->name);
                for (const char *a = v->alias; a && *a && n + 3 < sizeof(name); a++) {
                        if (a == v->alias || *a == ' ')
                                n += (size_t) snprintf(name + n, sizeof(name) - n, ", ");
                        if (*a != ' ')
                                name[n++] = *a;
                        name[n] = '\0';
                }
                printf("  %-14s %s\n", name, v->summary);
        }
        print_json_note(verbs);
        printf("Run 'banger %s COMMAND --help' for its options.\n", group);
}

int cli_group_run(Cli *cli, const char *group, const char *intro, const CliVerb *verbs, int argc, char **argv) {
        int i = 1;
        for (; i < argc && argv[i][0] == '-'; i++) {
                if (streq(argv[i], "--json"))
                        cli->json = true;
                else if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
                        group_help(group, intro, verbs);
                        return EXIT_OK;
                } else {
                        fprintf(stderr, "banger %s: unknown option '%s'. Try 'banger %s --help'.\n", group, argv[i],
                                group);
                        return EXIT_USAGE;
                }
        }
        if (i >= argc) {
                group_help(group, intro, verbs);
                return EXIT_USAGE;
        }
        if (streq(argv[i], "help")) {
                group_help(group, intro, verbs);
                return EXIT_OK;
        }
        for (const CliVerb *v = verbs; v->name; v++)
                if (cli_verb_matches(v, argv[i])) {
                        char command[64];
                        snprintf(command, sizeof(command), "%s %s", group, v->name);
                        cli->command = command;
                        optind = 0;
                        opterr = 0;
                        int r = v->fn(cli, argc - i, argv + i);
                        cli->command = NULL;
                        return r;
                }
        fprintf(stderr, "banger %s: unknown command '%s'. Try 'banger %s --help'.\n", group, argv[i], group);
        return EXIT_USAGE;
}

int cli_option_error(const char *cmd, char **argv) {
        /* getopt leaves optind past the bad element (or at it for a missing
         * argument to the last element). */
        const char *bad = optind > 0 ? argv[optind - 1] : "?";
        const char *sp = cmd ? " " : "";
        if (!cmd)
                cmd = "";
        if (optopt && optopt < 0x100 && !(bad[0] == '-' && bad[1] == '-'))
                fprintf(stderr, "banger%s%s: unknown option or missing value: -%c\n", sp, cmd, optopt);
        else
                fprintf(stderr, "banger%s%s: unknown option or missing value: %s\n", sp, cmd, bad);
        fprintf(stderr, "Try 'banger%s%s --help'.\n", sp, cmd);
        return EXIT_USAGE;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
        va_list ap;
        fprintf(stderr, "banger %s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'banger %s --help'.\n", cmd);
        return EXIT_USAGE;
}

/* As cli_parse_simple(), with -f/--force when ret_force is given. */
static int parse_simple_force(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, int min_operands,
                              int max_operands, bool *ret_force) {
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS, { "force", no_argument, NULL, 'f' }, {} };
        int o;
        while ((o = getopt_long(argc, argv, ret_force ? "hf" : "h", opts, NULL)) >= 0) {
                if (o == 'h') {
                        help();
                        return -1;
                }
                if (o == 'f' && ret_force)
                        *ret_force = true;
                else if (o != CLI_OPT_JSON)
                        return cli_option_error(cmd, argv);
                else
                        cli->json = true;
        }
        int n = argc - optind;
        if (n < min_operands)
                return cli_usage_error(cmd, "missing argument");
        if (max_operands >= 0 && n > max_operands)
                return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + max_operands]);
        return 0;
}

int cli_parse_simple(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, int min_operands,
                     int max_operands) {
        return parse_simple_force(cli, cmd, help, argc, argv, min_operands, max_operands, NULL);
}

/* Connect, call method (params stolen), print the result as JSON or by
 * print: the exit code. */
int cli_call_and_print(Cli *cli, const char *method, json_t *params, void (*print)(json_t *)) {
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0) {
                json_decref(params);
                return EXIT_FAIL;
        }
        json_t *res = NULL;
        if (cli_call(cli, c, method, params, &res) < 0)
                return EXIT_FAIL;
        if (cli->json)
                cli_print_json(res);
        else
                print(res);
        json_decref(res);
        return EXIT_OK;
}

/* --names: the "name" of each element of the result's list, one a line, for
 * shell completion; never starts the daemon (exit 1 when none answers). */
static int print_names(Cli *cli, const char *method) {
        _cleanup_rpc_client_ RpcClient *c = NULL;
        cli->no_autostart = true;
        if (rpc_client_connect(cli->socket_path, &c) < 0)
                return EXIT_FAIL;
        json_t *res = NULL, *list = NULL, *e;
        const char *key;
        size_t i;
        if (cli_call(cli, c, method, NULL, &res) < 0)
                return EXIT_FAIL;
        json_object_foreach (res, key, e)
                if (!list && json_is_array(e))
                        list = e;
        json_array_foreach (list, i, e) /* an operation has an id, no name */
                if (!json_object_get(e, "name") && json_is_integer(json_object_get(e, "id")))
                        printf("%lld\n", (long long) json_integer_value(json_object_get(e, "id")));
                else
                        printf("%s\n", json_str(e, "name", ""));
        json_decref(res);
        return EXIT_OK;
}

int cli_list(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, const char *method,
             void (*print)(json_t *)) {
        enum { OPT_NAMES = CLI_OPT_FIRST_PRIVATE };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS, { "names", no_argument, NULL, OPT_NAMES }, {} };
        bool names = false;
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                if (o == 'h') {
                        help();
                        return EXIT_OK;
                }
                if (o == CLI_OPT_JSON)
                        cli->json = true;
                else if (o == OPT_NAMES)
                        names = true;
                else
                        return cli_option_error(cmd, argv);
        }
        if (optind < argc)
                return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
        return names ? print_names(cli, method) : cli_call_and_print(cli, method, NULL, print);
}

int cli_show_one(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, const char *method,
                 const char *key, void (*print)(json_t *)) {
        int r = cli_parse_simple(cli, cmd, help, argc, argv, 1, 1);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        return cli_call_and_print(cli, method, json_pack("{s:s}", key, argv[optind]), print);
}

int cli_for_each_named(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, const char *method,
                       const char *done, const char *what) {
        return cli_for_each_named_force(cli, cmd, help, argc, argv, method, done, what, false);
}

int cli_for_each_named_force(Cli *cli, const char *cmd, void (*help)(void), int argc, char **argv, const char *method,
                             const char *done, const char *what, bool allow_force) {
        bool force = false;
        int r = parse_simple_force(cli, cmd, help, argc, argv, 1, -1, allow_force ? &force : NULL);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        int ret = EXIT_OK;
        for (int i = optind; i < argc; i++) {
                json_t *res = NULL;
                json_t *params = json_pack("{s:s}", "name", argv[i]);
                if (force)
                        json_object_set_new(params, "force", json_true());
                if (cli_call(cli, c, method, params, &res) < 0) {
                        ret = EXIT_FAIL;
                        continue;
                }
                if (cli->json)
                        print_json_line(res);
                else
                        printf("%s %s %s\n", done, what, argv[i]);
                json_decref(res);
        }
        return ret;
}

/* The daemon reads the path itself, so it must be absolute; resolving it
 * here also turns a typo into an error before any RPC. */
int cli_absolute_path(const char *cmd, const char *what, const char *arg, char **ret) {
        char *p = realpath(arg, NULL);
        if (!p)
                return cli_usage_error(cmd, "%s '%s': %s", what, arg, strerror(errno));
        *ret = p;
        return 0;
}

int cli_invalid_name(const char *cmd, const char *name) {
        return cli_usage_error(cmd, "invalid name '%s': use " NAME_RULE, name);
}
