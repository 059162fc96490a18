/* SPDX-License-Identifier: MIT */
/* banger events: the daemon's live events, one line each, until Ctrl-C. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "event-stream.h"
#include "output.h"
#include "string-util.h"
#include "verbs.h"

static void help(void) {
        printf("Usage: banger events [--vm NAME | --filter vm=NAME] [--json]\n"
               "\n"
               "Print what happens to VMs, images, kernels and snapshots as it happens, one\n"
               "line per event, until Ctrl-C: TIME KIND NAME and what changed:\n"
               "\n"
               "  12:00:01.120  vm       web              created\n"
               "  12:00:01.150  vm       web              created -> starting\n"
               "  12:00:02.410  vm       web              starting -> running\n"
               "  12:00:09.002  vm       web              running -> error: REASON\n"
               "  12:00:10.311  vm       web              deleted (was stopped)\n"
               "\n"
               "Long operations' progress comes too, named by the VM's id and the call\n"
               "('progress vm.create STAGE: MESSAGE'). Events are live only: nothing is kept\n"
               "for when nobody listens, so read the state itself with 'banger vm list'.\n"
               "The command fails (exit 1) when the daemon stops or restarts, or when it\n"
               "drops a reader that fell too far behind.\n"
               "\n"
               "Options:\n"
               "  --vm NAME     only the VM named NAME being created, changing state and\n"
               "                deleted (no progress lines; it need not exist yet)\n"
               "  --filter vm=NAME  the same\n"
               "  --json        one JSON object per line, the daemon's event as it is\n"
               "                (fields in docs/protocol.md, \"Events\")\n");
}

/* "12:00:01.120", local time, from the event's microseconds. */
static void format_event_time(json_t *e, char *buf, size_t len) {
        json_int_t us = json_integer_value(json_object_get(e, "time"));
        time_t t = (time_t) (us / 1000000);
        struct tm tm;
        if (us <= 0 || !localtime_r(&t, &tm) || strftime(buf, len, "%H:%M:%S", &tm) == 0) {
                snprintf(buf, len, "--:--:--.---");
                return;
        }
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, ".%03d", (int) (us / 1000 % 1000));
}

/* What changed (e already cleaned by json_make_printable). */
static void format_event_change(json_t *e, char *buf, size_t len) {
        const char *event = json_str(e, "event", "");
        const char *oldst = json_str(e, "old_state", "?"), *newst = json_str(e, "new_state", "?");
        if (streq(event, "state")) {
                const char *reason = json_str(e, "reason", "");
                snprintf(buf, len, "%s -> %s%s%s", oldst, newst, reason[0] ? ": " : "", reason);
        } else if (streq(event, "created") || streq(event, "deleted")) {
                /* A state at birth other than "created", the state at death. */
                bool created = streq(event, "created");
                const char *st = json_str(e, created ? "new_state" : "old_state", NULL);
                if (st && !streq(st, event))
                        snprintf(buf, len, "%s (%s%s)", event, created ? "" : "was ", st);
                else
                        snprintf(buf, len, "%s", event);
        } else if (streq(event, "progress")) {
                char size[16] = "", total[16] = "";
                if (json_is_integer(json_object_get(e, "bytes")))
                        format_json_size(size, sizeof(size), e, "bytes");
                if (json_is_integer(json_object_get(e, "total")))
                        format_json_size(total, sizeof(total), e, "total");
                snprintf(buf, len, "progress %s %s: %s%s%s%s%s", json_str(e, "method", "?"), json_str(e, "stage", "?"),
                         json_str(e, "message", ""), size[0] ? " " : "", size, total[0] ? "/" : "", total);
        } else if (streq(json_str(e, "kind", ""), "operation")) /* started, finished */
                snprintf(buf, len, "%s %lld %s%s%s", json_str(e, "method", "?"),
                         (long long) json_integer_value(json_object_get(e, "operation")), event,
                         json_str(e, "result", NULL) ? ": " : "", json_str(e, "result", ""));
        else
                snprintf(buf, len, "%s", event);
}

static void print_event(json_t *e, void *userdata) {
        bool json = *(bool *) userdata;
        if (json) {
                print_json_line(e);
                return;
        }
        /* Names, states, reasons and messages may carry a guest's or an
         * image's words: nothing in them may move the cursor. */
        json_make_printable(e);
        char when[32], change[512];
        format_event_time(e, when, sizeof(when));
        format_event_change(e, change, sizeof(change));
        /* Progress names its VM by id. */
        const char *name = json_str(e, "name", NULL) ?: json_str(e, "target", NULL); /* an operation's */
        printf("%s  %-8s %-16s %s\n", when, json_str(e, "kind", "?"), name && *name ? name : json_str(e, "vm", "-"),
               change);
        fflush(stdout);
}

int cmd_events(Cli *cli, int argc, char **argv) {
        enum { OPT_VM = CLI_OPT_FIRST_PRIVATE, OPT_FILTER };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "vm", required_argument, NULL, OPT_VM },
                                              { "filter", required_argument, NULL, OPT_FILTER },
                                              {} };
        const char *vm = NULL;
        int o;
        cli->command = "events";
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case OPT_VM:
                        vm = optarg;
                        break;
                case OPT_FILTER:
                        /* The one filter there is: vm=NAME. */
                        if (!(vm = startswith(optarg, "vm=")))
                                return cli_usage_error("events", "--filter takes vm=NAME, got '%s'", optarg);
                        break;
                default:
                        return cli_option_error("events", argv);
                }
        }
        if (optind < argc)
                return cli_usage_error("events", "unexpected argument '%s'", argv[optind]);
        if (vm && !name_is_valid(vm))
                return cli_invalid_name("events", vm);
        _cleanup_event_stream_ EventStream *s = NULL;
        if (event_stream_open(cli, vm, &s) < 0)
                return EXIT_FAIL;
        int r;
        while ((r = event_stream_wait(s, USEC_INFINITY, print_event, &cli->json)) == 0)
                ;
        return r == EVENT_STREAM_STOPPED ? EXIT_OK : EXIT_FAIL;
}
