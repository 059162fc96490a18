/* SPDX-License-Identifier: MIT */
#pragma once

/* The banger CLI: thin verbs over the daemon's JSON-RPC API. */

#include <jansson.h>
#include <stdbool.h>

#include "paths.h"
#include "rpc-client.h"

enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,
        EXIT_USAGE = 2,
        EXIT_CANCELLED = 3, /* the operation was cancelled (banger operations cancel) */
};

typedef struct Cli {
        bool json;
        bool system;
        bool no_autostart;
        const char *socket_override;
        BangerPaths paths;
        const char *socket_path; /* override or paths.socket_path */
        const char *argv0;
        const char *command; /* "vm create": the group and verb running, for messages */
        bool usage_failed;   /* the daemon refused a param: exit 2, not 1 */
        int exit_status;     /* not 0: the exit status of a failed command (a cancelled operation) */
} Cli;

typedef int (*CliCommandFn)(Cli *cli, int argc, char **argv);

typedef struct CliCommand {
        const char *name;
        CliCommandFn fn;
        const char *summary;
} CliCommand;

/* Connect to the daemon; in user mode start it when nobody answers (and
 * restart it when it is a different build). Prints an error and returns
 * -errno on failure. */
int cli_connect(Cli *cli, RpcClient **ret);

/* Call a method on a connected client; prints the server's error message
 * on failure. Steals params. */
int cli_call(Cli *cli, RpcClient *c, const char *method, json_t *params, json_t **ret_result);
/* The same for a call that may first resume a suspended VM: its progress
 * ("resuming: ...") is printed on stderr as stage lines. */
int cli_call_waking(Cli *cli, RpcClient *c, const char *method, json_t *params, json_t **ret_result);

/* Call method and print its result as cli_print_json() would, from the
 * JSON text the daemon sent, without a jansson tree of it (json-text.h):
 * byte for byte the same for a result jansson wrote. Prints an error and
 * returns -errno on failure (nothing printed on stdout then). Steals params. */
int cli_call_print_json(Cli *cli, RpcClient *c, const char *method, json_t *params);

/* Print a JSON value (pretty) to stdout. */
void cli_print_json(json_t *j);

/* A prune's result ({"deleted": [names]}): as JSON with --json, else one
 * "deleted NAME" line each. Takes res; returns EXIT_OK. */
int cli_print_deleted(Cli *cli, json_t *res);

/* Options every command accepts: --json and -h/--help. Returns 1 when the
 * argument was one of them (and handled), 0 otherwise. */
int cli_common_option(Cli *cli, const char *arg, void (*help)(void), bool *ret_help);

int cmd_version(Cli *cli, int argc, char **argv);
int cmd_daemon(Cli *cli, int argc, char **argv);
int cmd_doctor(Cli *cli, int argc, char **argv);
int cmd_vm(Cli *cli, int argc, char **argv);
int cmd_ps(Cli *cli, int argc, char **argv);
int cmd_events(Cli *cli, int argc, char **argv);
int cmd_image(Cli *cli, int argc, char **argv);
int cmd_snapshot(Cli *cli, int argc, char **argv);
int cmd_kernel(Cli *cli, int argc, char **argv);
int cmd_catalog(Cli *cli, int argc, char **argv);
int cmd_completion(Cli *cli, int argc, char **argv);
int cmd_system(Cli *cli, int argc, char **argv);
int cmd_operations(Cli *cli, int argc, char **argv);

/* The top-level commands (main.c), NULL-name terminated. */
extern const CliCommand cli_commands[];

/* Locate bangerd next to this binary, in the build tree, or in PATH. */
char *cli_find_bangerd(void);
