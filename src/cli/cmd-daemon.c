/* SPDX-License-Identifier: MIT */
/* banger daemon status|start|stop: a verb group like vm, each verb with its own help. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"

static int daemon_status_cmd(Cli *cli, int argc, char **argv);
static int daemon_start_cmd(Cli *cli, int argc, char **argv);
static int daemon_stop_cmd(Cli *cli, int argc, char **argv);

const CliVerb cli_daemon_verbs[] = {
        { "status", NULL, daemon_status_cmd, "show the running daemon's pid, version, paths and counts",
          "--json --help", "" },
        { "start", NULL, daemon_start_cmd, "start the daemon if it is not running (user mode)", "--json --help", "" },
        { "stop", NULL, daemon_stop_cmd, "ask the daemon to stop; running VMs keep running", "--json --help", "" },
        {},
};

int cmd_daemon(Cli *cli, int argc, char **argv) {
        return cli_group_run(cli, "daemon", "Start, stop or inspect the banger daemon (bangerd).", cli_daemon_verbs,
                             argc, argv);
}

static void status_help(void) {
        printf("Usage: banger daemon status [--json]\n"
               "\n"
               "Show the running daemon: pid, version and commit, uptime, mode, socket, paths,\n"
               "database schema and counts of VMs, images and kernels. Never starts a daemon:\n"
               "exits 1 when none answers.\n");
}

static void start_help(void) {
        printf("Usage: banger daemon start [--json]\n"
               "\n"
               "Start bangerd in user mode unless one is already running (a daemon of another\n"
               "build is replaced), then print its pid and socket. Every other command starts\n"
               "it on demand too; with --system the system service must be running.\n");
}

static void stop_help(void) {
        printf("Usage: banger daemon stop [--json]\n"
               "\n"
               "Ask the daemon to stop and wait (at most 15 s) until its socket is gone.\n"
               "Running VMs keep running and are re-attached by the next daemon. Exit 0 also\n"
               "when no daemon was running.\n");
}

static void print_status(Cli *cli, json_t *s) {
        json_t *counts = json_object_get(s, "counts");
        json_t *by = json_object_get(counts, "vms_by_state");
        printf("bangerd %s (%s), pid %lld, up %.1f s, %s mode%s\n", json_string_value(json_object_get(s, "version")),
               json_string_value(json_object_get(s, "commit")), json_integer_value(json_object_get(s, "pid")),
               json_real_value(json_object_get(s, "uptime_sec")), json_string_value(json_object_get(s, "mode")),
               json_is_true(json_object_get(s, "socket_activated")) ? ", socket activated" : "");
        printf("  socket:    %s\n", json_string_value(json_object_get(s, "socket")));
        printf("  runtime:   %s\n", json_string_value(json_object_get(s, "runtime_dir")));
        printf("  state:     %s\n", json_string_value(json_object_get(s, "state_dir")));
        printf("  database:  %s (schema %lld of %lld)\n", json_string_value(json_object_get(s, "database")),
               json_integer_value(json_object_get(s, "schema_version")),
               json_integer_value(json_object_get(s, "schema_latest")));
        printf("  log:       %s\n", json_string_value(json_object_get(s, "log_file")));
        printf("  VMs:       %lld (%lld running)  images: %lld  kernels: %lld\n",
               json_integer_value(json_object_get(counts, "vms")), json_integer_value(json_object_get(by, "running")),
               json_integer_value(json_object_get(counts, "images")),
               json_integer_value(json_object_get(counts, "kernels")));
}

static void print_started(Cli *cli, json_t *res) {
        printf("bangerd is running (pid %lld) on %s\n", json_integer_value(json_object_get(res, "pid")),
               cli->socket_path);
}

/* daemon.status printed as JSON or by print; "status" never starts the
 * daemon, "start" is the same call with autostart. */
static int daemon_status(Cli *cli, bool autostart, void (*print)(Cli *, json_t *)) {
        if (!autostart)
                cli->no_autostart = true;
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        json_t *res = NULL;
        if (cli_call(cli, c, "daemon.status", NULL, &res) < 0)
                return EXIT_FAIL;
        if (cli->json)
                cli_print_json(res);
        else
                print(cli, res);
        json_decref(res);
        return EXIT_OK;
}

static int daemon_status_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "daemon status", status_help, argc, argv, 0, 0);
        return r != 0 ? (r < 0 ? EXIT_OK : r) : daemon_status(cli, false, print_status);
}

static int daemon_start_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "daemon start", start_help, argc, argv, 0, 0);
        return r != 0 ? (r < 0 ? EXIT_OK : r) : daemon_status(cli, true, print_started);
}

static int daemon_stop_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "daemon stop", stop_help, argc, argv, 0, 0);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        cli->no_autostart = true;
        RpcClient *c = NULL;
        r = rpc_client_connect(cli->socket_path, &c);
        if (r == -ENOENT || r == -ECONNREFUSED) {
                if (!cli->json)
                        printf("bangerd is not running\n");
                return EXIT_OK;
        }
        if (r < 0) {
                fprintf(stderr, "banger: cannot connect to %s: %s\n", cli->socket_path, strerror(-r));
                return EXIT_FAIL;
        }
        r = cli_call(cli, c, "daemon.shutdown", NULL, NULL);
        rpc_client_free(c);
        if (r < 0)
                return EXIT_FAIL;
        /* It removes its socket on the way out. */
        usec_t deadline = now_monotonic() + 15 * USEC_PER_SEC;
        while (access(cli->socket_path, F_OK) == 0 && now_monotonic() < deadline)
                usleep(10000);
        if (access(cli->socket_path, F_OK) == 0) {
                fprintf(stderr, "banger: bangerd did not exit within 15 s\n");
                return EXIT_FAIL;
        }
        if (!cli->json)
                printf("bangerd stopped\n");
        return EXIT_OK;
}
