/* SPDX-License-Identifier: MIT */
/* banger operations [list|cancel|watch]: the daemon's long operations in
 * flight (operations.list, operations.cancel, and the operation events). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event-stream.h"
#include "jsonrpc.h"
#include "output.h"
#include "string-util.h"
#include "verbs.h"

static int operations_list_cmd(Cli *cli, int argc, char **argv);
static int operations_cancel_cmd(Cli *cli, int argc, char **argv);
static int operations_watch_cmd(Cli *cli, int argc, char **argv);

const CliVerb cli_operations_verbs[] = {
        { "list", "ls", operations_list_cmd, "list the long operations in flight (the default)",
          "--names --json --help", "" },
        { "cancel", NULL, operations_cancel_cmd, "cancel one: it stops at its next step and rolls back",
          "--json --help", "operation" },
        { "watch", NULL, operations_watch_cmd, "follow one until it ends, printing its stages", "--json --help",
          "operation" },
        {},
};

#define INTRO                                                                                   \
        "The long operations the daemon is running: VM create, start, restart, suspend,\n"      \
        "snapshot and restore, image build, import, promote, pull and bundle, kernel import,\n" \
        "pull and bundle. With no verb: list them.\n"                                           \
        "Each can be cancelled: it stops at its next cancellation point (between steps, in\n"   \
        "the boot wait, after a VM state save, in downloads and copies) and rolls back what\n"  \
        "it made, as a failed one does; its client gets the error \"cancelled\" (exit\n"        \
        "status 3; 130 after Ctrl-C on the client that started it, which asks for the same\n"   \
        "cancel). Past its point of no return, it finishes and the cancel says \"too late\"."

int cmd_operations(Cli *cli, int argc, char **argv) {
        int i = 1;
        while (i < argc && (streq(argv[i], "--json") || streq(argv[i], "--names")))
                i++;
        if (i >= argc) { /* banger operations [--json]: the list */
                cli->command = "operations";
                return operations_list_cmd(cli, argc, argv);
        }
        return cli_group_run(cli, "operations", INTRO, cli_operations_verbs, argc, argv);
}

static void list_help(void) {
        printf("Usage: banger operations [list] [--names] [--json]\n"
               "\n"
               "List the long operations in flight: ID, KIND (the daemon method), TARGET (what\n"
               "it acts on), STAGE with its progress (bytes done of total, where known),\n"
               "STARTED, and the CLIENT that asked (its pid and command).\n"
               "\n"
               "  --names   print the IDs only (for shell completion; never starts the daemon)\n");
}

static void print_operation_row(json_t *op) {
        char started[32] = "?", done[16] = "", total[16] = "", progress[48] = "";
        time_t t = (time_t) (json_integer_value(json_object_get(op, "started")) / 1000000);
        struct tm tm;
        if (t > 0 && localtime_r(&t, &tm))
                strftime(started, sizeof(started), "%H:%M:%S", &tm);
        if (json_integer_value(json_object_get(op, "total")) > 0) {
                format_json_size(done, sizeof(done), op, "bytes");
                format_json_size(total, sizeof(total), op, "total");
                snprintf(progress, sizeof(progress), " %s/%s", done, total);
        } else if (json_integer_value(json_object_get(op, "bytes")) > 0) {
                format_json_size(done, sizeof(done), op, "bytes");
                snprintf(progress, sizeof(progress), " %s", done);
        }
        json_t *client = json_object_get(op, "client");
        char stage[96];
        snprintf(stage, sizeof(stage), "%s%s%s", json_str(op, "stage", ""), progress,
                 json_is_true(json_object_get(op, "cancelled")) ? " (cancelling)" : "");
        printf("%-5lld %-14s %-20s %-28s %-9s %d %s\n", (long long) json_integer_value(json_object_get(op, "id")),
               json_str(op, "kind", "?"), json_str(op, "target", ""), stage[0] ? stage : "-", started,
               (int) json_integer_value(json_object_get(client, "pid")), json_str(client, "command", ""));
}

static void print_operations(json_t *res) {
        json_t *ops = json_object_get(res, "operations");
        if (json_array_size(ops) == 0) {
                printf("no operations in flight\n");
                return;
        }
        json_make_printable(ops);
        printf("%-5s %-14s %-20s %-28s %-9s %s\n", "ID", "KIND", "TARGET", "STAGE", "STARTED", "CLIENT");
        size_t i;
        json_t *op;
        json_array_foreach (ops, i, op)
                print_operation_row(op);
}

static int operations_list_cmd(Cli *cli, int argc, char **argv) {
        return cli_list(cli, "operations list", list_help, argc, argv, "operations.list", print_operations);
}

/* The ID operand: a positive integer. */
static int parse_id(const char *cmd, const char *arg, uint64_t *ret) {
        unsigned long long v;
        if (safe_atou64(arg, &v) < 0 || v == 0 || v > (1ULL << 53))
                return cli_usage_error(cmd, "invalid operation id '%s': give the ID 'banger operations' shows", arg);
        *ret = v;
        return 0;
}

static void cancel_help(void) {
        printf("Usage: banger operations cancel ID [--json]\n"
               "\n"
               "Ask operation ID to stop. It stops at its next cancellation point and rolls\n"
               "back what it made, as a failure does; its client gets the error \"cancelled\".\n"
               "An operation past its point of no return (a suspend recording the VM\n"
               "suspended, a snapshot marked ready, an import registering its result)\n"
               "finishes, and the cancel fails with \"too late to cancel: ...\" (exit 1), as\n"
               "unknown IDs do.\n");
}

static void print_cancelled(json_t *op) {
        json_make_printable(op);
        printf("cancelling operation %lld (%s %s)\n", (long long) json_integer_value(json_object_get(op, "id")),
               json_str(op, "kind", "?"), json_str(op, "target", ""));
}

static int operations_cancel_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "operations cancel", cancel_help, argc, argv, 1, 1);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        uint64_t id = 0;
        if ((r = parse_id("operations cancel", argv[optind], &id)) != 0)
                return r;
        return cli_call_and_print(cli, "operations.cancel", json_pack("{s:I}", "id", (json_int_t) id), print_cancelled);
}

static void watch_help(void) {
        printf("Usage: banger operations watch ID [--json]\n"
               "\n"
               "Follow operation ID from any terminal: a line per stage (and per message\n"
               "within it) until it ends, then its result. Exit status 0 when it succeeded, 1\n"
               "when it failed, 3 when it was cancelled. With --json, the daemon's events of\n"
               "the operation, one JSON object per line (docs/protocol.md, \"Events\").\n");
}

typedef struct Watch {
        uint64_t id;
        bool json;
        bool ended;
        char result[16];
        char stage[64], message[512];
} Watch;

static bool event_of(json_t *e, uint64_t id) {
        json_t *op = json_object_get(e, "operation");
        return json_is_integer(op) && (uint64_t) json_integer_value(op) == id;
}

static void watch_event(json_t *e, void *userdata) {
        Watch *w = userdata;
        if (w->ended || !event_of(e, w->id))
                return;
        bool finished = streq(json_str(e, "kind", ""), "operation") && streq(json_str(e, "event", ""), "finished");
        if (w->json)
                print_json_line(e);
        json_make_printable(e);
        if (finished) {
                w->ended = true;
                snprintf(w->result, sizeof(w->result), "%s", json_str(e, "result", "failed"));
                if (!w->json)
                        printf("%s%s%s\n", w->result, json_str(e, "error", NULL) ? ": " : "", json_str(e, "error", ""));
                fflush(stdout);
                return;
        }
        const char *stage = json_str(e, "stage", NULL), *message = json_str(e, "message", "");
        if (w->json || !stage || (streq(stage, w->stage) && streq(message, w->message)))
                return;
        snprintf(w->stage, sizeof(w->stage), "%s", stage);
        snprintf(w->message, sizeof(w->message), "%s", message);
        printf("%s%s%s\n", stage, message[0] ? ": " : "", message);
        fflush(stdout);
}

/* The operation as listed now (NULL when it is not in flight). */
static json_t *find_operation(Cli *cli, uint64_t id) {
        _cleanup_rpc_client_ RpcClient *c = NULL;
        json_t *res = NULL, *found = NULL;
        if (cli_connect(cli, &c) < 0 || cli_call(cli, c, "operations.list", NULL, &res) < 0)
                return NULL;
        size_t i;
        json_t *op;
        json_array_foreach (json_object_get(res, "operations"), i, op)
                if ((uint64_t) json_integer_value(json_object_get(op, "id")) == id)
                        found = json_incref(op);
        json_decref(res);
        return found;
}

static int operations_watch_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "operations watch", watch_help, argc, argv, 1, 1);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        Watch w = { .json = cli->json };
        if ((r = parse_id("operations watch", argv[optind], &w.id)) != 0)
                return r;
        /* Subscribed first, so nothing between the listing and the stream is missed. */
        _cleanup_event_stream_ EventStream *s = NULL;
        if (event_stream_open(cli, NULL, &s) < 0)
                return EXIT_FAIL;
        json_t *op = find_operation(cli, w.id);
        if (!op) {
                while (!w.ended && event_stream_wait(s, 0, watch_event, &w) == 0)
                        ;
                if (!w.ended) {
                        fprintf(stderr,
                                "banger: no operation %llu is in flight ('banger operations' lists those "
                                "that are)\n",
                                (unsigned long long) w.id);
                        return EXIT_FAIL;
                }
        } else if (!w.json) {
                json_make_printable(op);
                printf("operation %llu: %s %s\n", (unsigned long long) w.id, json_str(op, "kind", "?"),
                       json_str(op, "target", ""));
                const char *stage = json_str(op, "stage", "");
                if (stage[0]) {
                        json_t *now = json_pack("{s:I, s:s, s:s}", "operation", (json_int_t) w.id, "stage", stage,
                                                "message", json_str(op, "message", ""));
                        if (now)
                                watch_event(now, &w);
                        json_decref(now);
                }
        }
        json_decref(op);
        while (!w.ended && (r = event_stream_wait(s, USEC_INFINITY, watch_event, &w)) == 0)
                ;
        if (!w.ended)
                return r == EVENT_STREAM_STOPPED ? EXIT_OK : EXIT_FAIL;
        return streq(w.result, "ok") ? EXIT_OK : streq(w.result, "cancelled") ? EXIT_CANCELLED : EXIT_FAIL;
}
