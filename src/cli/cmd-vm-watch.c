/* SPDX-License-Identifier: MIT */
/* banger vm list --watch: the list again whenever a VM appears, changes
 * state or goes away, told by the daemon's events rather than polled. */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cmd-vm.h"
#include "event-stream.h"
#include "macro.h"
#include "string-util.h"

/* Events that come together (a create is several) make one redraw, but a
 * steady flow of them does not hold it back for more than a second. */
#define WATCH_SETTLE (100 * USEC_PER_MSEC)
#define WATCH_MAX_DELAY USEC_PER_SEC

typedef struct Watch {
        Cli *cli;
        RpcClient *client; /* for vm.list: the stream's connection only receives */
        bool tty;
        unsigned n_drawn;
        bool changed;
        usec_t changed_since;
        VmListPrintFn print;
        void *userdata;
} Watch;

static void note_vm_event(json_t *e, void *userdata) {
        Watch *w = userdata;
        if (!streq(json_str(e, "kind", ""), "vm") || streq(json_str(e, "event", ""), "progress"))
                return;
        if (!w->changed)
                w->changed_since = now_monotonic();
        w->changed = true;
}

static int watch_draw(Watch *w) {
        json_t *res = NULL;
        /* The table needs only its columns (vm.list "brief"); --json prints whole records. */
        json_t *params = w->cli->json ? NULL : json_pack("{s:b}", "brief", 1);
        if (cli_call(w->cli, w->client, "vm.list", params, &res) < 0)
                return -EIO;
        if (w->tty) {
                char now[16] = "";
                time_t t = time(NULL);
                struct tm tm;
                if (localtime_r(&t, &tm))
                        (void) strftime(now, sizeof(now), "%H:%M:%S", &tm);
                /* Home and clear, not the scrollback: the last list stays
                 * on the screen when Ctrl-C ends the watch. */
                printf("\033[H\033[2J%s  banger vm list --watch (Ctrl-C to stop)\n\n", now);
        } else if (w->n_drawn > 0 && !w->cli->json)
                printf("\n");
        w->print(res, w->userdata);
        fflush(stdout);
        json_decref(res);
        w->n_drawn++;
        w->changed = false;
        return 0;
}

/* How long to wait for the next event before the redraw is due. */
static usec_t watch_timeout(const Watch *w) {
        if (!w->changed)
                return USEC_INFINITY;
        usec_t waited = now_monotonic() - w->changed_since;
        return waited >= WATCH_MAX_DELAY ? 0 : MIN(WATCH_SETTLE, WATCH_MAX_DELAY - waited);
}

int vm_list_watch(Cli *cli, VmListPrintFn print, void *userdata) {
        Watch w = {
                .cli = cli,
                .tty = !cli->json && isatty(STDOUT_FILENO),
                .print = print,
                .userdata = userdata,
        };
        /* Subscribe before the first list, so no change falls between. */
        _cleanup_event_stream_ EventStream *s = NULL;
        if (event_stream_open(cli, NULL, &s) < 0)
                return EXIT_FAIL;
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        w.client = c;
        if (watch_draw(&w) < 0)
                return EXIT_FAIL;
        for (;;) {
                int r = event_stream_wait(s, watch_timeout(&w), note_vm_event, &w);
                if (r == EVENT_STREAM_STOPPED)
                        return EXIT_OK;
                if (r < 0 && r != -ETIMEDOUT)
                        return EXIT_FAIL;
                if ((r == -ETIMEDOUT || (w.changed && watch_timeout(&w) == 0)) && watch_draw(&w) < 0)
                        return EXIT_FAIL;
        }
}
