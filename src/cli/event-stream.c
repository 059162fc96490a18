/* SPDX-License-Identifier: MIT */
#include "event-stream.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "output.h"
#include "string-util.h"

struct EventStream {
        const char *command; /* for messages: "events", "vm list" */
        RpcClient *client;
        int signal_fd;
        EventFn fn;
        void *userdata;
        unsigned n_events; /* handed to fn by the last read */
        char dropped[200]; /* events.dropped's reason, when it came */
        bool was_dropped;
};

EventStream *event_stream_free(EventStream *s) {
        if (!s)
                return NULL;
        rpc_client_free(s->client);
        safe_close(s->signal_fd);
        free(s);
        return NULL;
}

static int stream_block_signals(EventStream *s) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return -errno;
        s->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        return s->signal_fd < 0 ? -errno : 0;
}

int event_stream_open(Cli *cli, const char *vm, EventStream **ret) {
        _cleanup_event_stream_ EventStream *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->command = cli->command ? cli->command : "events";
        s->signal_fd = -EBADF;
        int r = cli_connect(cli, &s->client);
        if (r < 0)
                return r;
        json_t *res = NULL;
        r = cli_call(cli, s->client, "events.subscribe", vm ? json_pack("{s:s}", "vm", vm) : NULL, &res);
        json_decref(res);
        if (r < 0)
                return r;
        r = stream_block_signals(s);
        if (r < 0) {
                fprintf(stderr, "banger %s: cannot watch for Ctrl-C: %s\n", s->command, strerror(-r));
                return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static void on_notification(const char *method, json_t *params, void *userdata) {
        EventStream *s = userdata;
        if (streq(method, "event") && json_is_object(params) && !s->was_dropped) {
                s->fn(params, s->userdata);
                s->n_events++;
        } else if (streq(method, "events.dropped")) {
                s->was_dropped = true;
                snprintf(s->dropped, sizeof(s->dropped), "%s", json_str(params, "reason", "no reason given"));
                string_make_printable(s->dropped, false);
        }
}

static bool stream_signalled(EventStream *s) {
        struct signalfd_siginfo si;
        return read(s->signal_fd, &si, sizeof(si)) == (ssize_t) sizeof(si);
}

/* How many events were handed to fn, or -errno after saying why the
 * stream ended. */
static int stream_read(EventStream *s, EventFn fn, void *userdata) {
        s->fn = fn;
        s->userdata = userdata;
        s->n_events = 0;
        int r = rpc_client_read_notifications(s->client, on_notification, s);
        if (s->was_dropped) {
                fprintf(stderr, "banger %s: the daemon ended this event stream: %s; run it again\n", s->command,
                        s->dropped);
                return -ENOBUFS;
        }
        if (r == -ECONNRESET)
                fprintf(stderr,
                        "banger %s: the daemon closed the connection (it stopped or restarted); run it again when "
                        "the daemon is back\n",
                        s->command);
        else if (r < 0)
                fprintf(stderr, "banger %s: cannot read events from the daemon: %s\n", s->command, strerror(-r));
        return r < 0 ? r : (int) MIN(s->n_events, (unsigned) INT_MAX);
}

int event_stream_wait(EventStream *s, usec_t timeout, EventFn fn, void *userdata) {
        usec_t deadline = deadline_from_timeout(timeout);
        for (;;) {
                /* Read before any wait: what the last read left buffered (or
                 * the subscribe reply brought along) counts as come, and the
                 * caller decides on it before waiting again. */
                int r = stream_read(s, fn, userdata);
                if (r != 0)
                        return MIN(r, 0);
                struct pollfd p[] = {
                        { .fd = rpc_client_fd(s->client), .events = POLLIN },
                        { .fd = s->signal_fd, .events = POLLIN },
                };
                int n = poll(p, ELEMENTSOF(p), deadline_poll_ms(deadline));
                if (n < 0 && errno != EINTR)
                        return -errno;
                if (n > 0 && p[1].revents && stream_signalled(s)) {
                        /* The terminal echoed "^C": the shell's prompt
                         * goes on a line of its own. */
                        if (isatty(STDOUT_FILENO))
                                (void) fputs("\n", stdout);
                        return EVENT_STREAM_STOPPED;
                }
                if (n == 0 && deadline != USEC_INFINITY && now_monotonic() >= deadline)
                        return -ETIMEDOUT;
        }
}
