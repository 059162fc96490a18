/* SPDX-License-Identifier: MIT */
/* Reaching the daemon: connect, start it on demand in user mode, and replace
 * it when it is a different build. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "banger-build.h"
#include "call-error.h"
#include "cli.h"
#include "error.h"
#include "fs-util.h"
#include "json-text.h"
#include "macro.h"
#include "spawn.h"
#include "string-util.h"

#define DAEMON_START_TIMEOUT (15 * USEC_PER_SEC)
#define DAEMON_STOP_TIMEOUT (15 * USEC_PER_SEC)

void cli_print_json(json_t *j) {
        /* Straight to stdout: a listing of hundreds of records is not first
         * grown into one string. */
        if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) == 0)
                putchar('\n');
}

int cli_print_deleted(Cli *cli, json_t *res) {
        if (cli->json)
                cli_print_json(res);
        else {
                size_t i;
                json_t *n;
                json_array_foreach (json_object_get(res, "deleted"), i, n)
                        printf("deleted %s\n", json_string_value(n));
        }
        json_decref(res);
        return EXIT_OK;
}

int cli_common_option(Cli *cli, const char *arg, void (*help)(void), bool *ret_help) {
        if (streq(arg, "--json")) {
                cli->json = true;
                return 1;
        }
        if (streq(arg, "-h") || streq(arg, "--help")) {
                help();
                *ret_help = true;
                return 1;
        }
        return 0;
}

char *cli_find_bangerd(void) {
        const char *e = getenv("BANGER_BANGERD");
        if (e && e[0] == '/')
                return strdup(e);
        static const char *const rel[] = { "bangerd", "../daemon/bangerd", "../libexec/banger/bangerd" };
        char *p = find_program_beside_self(rel, ELEMENTSOF(rel));
        return p ? p : find_executable("bangerd");
}

static char **daemon_env(void) {
        static const char *const keep[] = { "HOME",           "XDG_CONFIG_HOME",  "XDG_STATE_HOME",
                                            "XDG_CACHE_HOME", "XDG_RUNTIME_DIR",  "BANGER_LOG_LEVEL",
                                            "PATH",           "BANGER_TEST_CACHE" };
        char **env = calloc(ELEMENTSOF(keep) + 1, sizeof(char *));
        size_t n = 0;
        if (!env)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(keep); i++) {
                const char *v = getenv(keep[i]);
                if (v && asprintf(&env[n], "%s=%s", keep[i], v) >= 0)
                        n++;
        }
        return env;
}

static int start_daemon(Cli *cli, Process *ret) {
        _cleanup_free_ char *bin = cli_find_bangerd();
        if (!bin) {
                fprintf(stderr, "banger: cannot find bangerd (looked next to banger and in PATH)\n");
                return -ENOENT;
        }
        _cleanup_strv_free_ char **env = daemon_env();
        char *argv[] = { bin, NULL };
        SpawnOptions o;
        spawn_options_init(&o);
        o.new_session = true;
        o.env = env;
        int r = spawn_process(argv, &o, ret);
        if (r < 0)
                fprintf(stderr, "banger: cannot start %s: %s\n", bin, strerror(-r));
        return r;
}

static void print_daemon_log_tail(Cli *cli) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        if (read_file_at(AT_FDCWD, cli->paths.log_path, 16 << 20, &buf, &len) < 0 || len == 0)
                return;
        /* Last few lines. */
        size_t lines = 0, i = len;
        while (i > 0 && lines < 6)
                if (buf[--i] == '\n')
                        lines++;
        fprintf(stderr, "banger: last lines of %s:\n%s", cli->paths.log_path, buf + (i ? i + 1 : 0));
}

/* Retry connecting until the daemon answers, it exits, or the deadline
 * passes: a new client in *ret, or *ret connected again when it is one. */
static int wait_for_daemon(Cli *cli, Process *p, RpcClient **ret) {
        usec_t deadline = now_monotonic() + DAEMON_START_TIMEOUT;
        usec_t delay = 2 * USEC_PER_MSEC;
        for (;;) {
                int r = *ret ? rpc_client_reconnect(*ret, cli->socket_path) : rpc_client_connect(cli->socket_path, ret);
                if (r >= 0)
                        return 0;
                int status = 0;
                if (process_wait(p, 0, &status) == 0) {
                        fprintf(stderr, "banger: bangerd exited during start-up (status %d)\n",
                                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                        print_daemon_log_tail(cli);
                        return -ECHILD;
                }
                if (now_monotonic() >= deadline) {
                        fprintf(stderr, "banger: bangerd did not answer on %s within %llu s\n", cli->socket_path,
                                (unsigned long long) (DAEMON_START_TIMEOUT / USEC_PER_SEC));
                        return -ETIMEDOUT;
                }
                usleep((useconds_t) delay);
                delay = MIN(delay * 2, 50 * USEC_PER_MSEC);
        }
}

static int autostart(Cli *cli, RpcClient **ret) {
        Process p = PROCESS_NULL;
        int r = start_daemon(cli, &p);
        if (r < 0)
                return r;
        r = wait_for_daemon(cli, &p, ret);
        process_release(&p);
        return r;
}

/* The daemon answers ping with its build; a different build is replaced in
 * user mode (its state is on disk; c is connected to the new daemon) and
 * reported in system mode. */
static int check_build(Cli *cli, RpcClient *c) {
        json_t *res = NULL;
        RpcError err = {};
        int r = rpc_client_call(c, "daemon.ping", NULL, 10 * USEC_PER_SEC, NULL, NULL, &res, &err);
        rpc_error_done(&err);
        if (r < 0)
                return 0; /* let the real call report what is wrong */
        const char *jv = json_string_value(json_object_get(res, "version"));
        const char *jc = json_string_value(json_object_get(res, "commit"));
        _cleanup_free_ char *v = jv ? strndup(jv, 64) : NULL, *commit = jc ? strndup(jc, 64) : NULL;
        bool same = streq_ptr(v, BANGER_VERSION) && streq_ptr(commit, BANGER_COMMIT);
        json_decref(res);
        if (same)
                return 0;
        if (cli->system || cli->socket_override || cli->no_autostart) {
                fprintf(stderr, "banger: warning: the daemon is %s (%s), this CLI is %s (%s)\n", v ? v : "?",
                        commit ? commit : "?", BANGER_VERSION, BANGER_COMMIT);
                return 0;
        }
        fprintf(stderr, "banger: restarting bangerd %s (%s) as %s (%s)\n", v ? v : "?", commit ? commit : "?",
                BANGER_VERSION, BANGER_COMMIT);
        (void) rpc_client_call(c, "daemon.shutdown", NULL, 10 * USEC_PER_SEC, NULL, NULL, NULL, NULL);
        /* The old daemon removes its socket as it exits; wait for that. */
        usec_t deadline = now_monotonic() + DAEMON_STOP_TIMEOUT;
        while (access(cli->socket_path, F_OK) == 0 && now_monotonic() < deadline)
                usleep(10000);
        return autostart(cli, &c);
}

/* A daemon of another build refused a call (the build travels with each
 * call, docs/protocol.md): the daemon.ping check, then the call again. One
 * from before that check refused the request and closed the connection. */
static int other_build(RpcClient *c, const RpcError *err, void *userdata) {
        Cli *cli = userdata;
        if (err->code == JSONRPC_INVALID_REQUEST) {
                int r = rpc_client_reconnect(c, cli->socket_path);
                if (r < 0)
                        return r;
        }
        return check_build(cli, c);
}

int cli_connect(Cli *cli, RpcClient **ret) {
        _cleanup_rpc_client_ RpcClient *c = NULL;
        int r = rpc_client_connect(cli->socket_path, &c);
        if (r == -ENOENT || r == -ECONNREFUSED) {
                if (cli->system || cli->socket_override || cli->no_autostart) {
                        fprintf(stderr, "banger: no daemon answers on %s%s\n", cli->socket_path,
                                cli->system ? " (is the bangerd service running?)" : "");
                        return r;
                }
                r = autostart(cli, &c);
                if (r < 0)
                        return r;
        } else if (r < 0) {
                fprintf(stderr, "banger: cannot connect to %s: %s\n", cli->socket_path,
                        error_last_message() ? error_last_message() : strerror(-r));
                return r;
        } else {
                r = rpc_client_set_build(c, BANGER_VERSION " " BANGER_COMMIT, other_build, cli);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

static void print_stage(const char *method, json_t *params, void *userdata) {
        const char *stage = json_string_value(json_object_get(params, "stage"));
        const char *msg = json_string_value(json_object_get(params, "message"));
        if (streq_ptr(method, "progress") && stage && msg && !((Cli *) userdata)->json) {
                _cleanup_free_ char *clean = printable_strndup(msg, MIN(strlen(msg), 512U));
                fprintf(stderr, "%s: %s\n", stage, clean ? clean : "");
        }
}

static int call_notified(Cli *cli, RpcClient *c, const char *method, json_t *params, RpcNotifyFn notify,
                         json_t **ret_result) {
        RpcError err = {};
        int r = rpc_client_call(c, method, params, USEC_INFINITY, notify, cli, ret_result, &err);
        if (r < 0)
                cli_print_call_error(cli, method, r, &err);
        rpc_error_done(&err);
        return r;
}

int cli_call_waking(Cli *cli, RpcClient *c, const char *method, json_t *params, json_t **ret_result) {
        return call_notified(cli, c, method, params, print_stage, ret_result);
}

int cli_call(Cli *cli, RpcClient *c, const char *method, json_t *params, json_t **ret_result) {
        return call_notified(cli, c, method, params, NULL, ret_result);
}

int cli_call_print_json(Cli *cli, RpcClient *c, const char *method, json_t *params) {
        RpcError err = {};
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = rpc_client_call_text(c, method, params, USEC_INFINITY, NULL, NULL, &text, &len, &err);
        if (r < 0)
                cli_print_call_error(cli, method, r, &err);
        rpc_error_done(&err);
        if (r < 0)
                return r;
        r = json_text_write_indented(text, len, stdout);
        if (r < 0) {
                fprintf(stderr, "banger: %s: the daemon's reply is not valid JSON\n", method);
                return r;
        }
        putchar('\n');
        return 0;
}
