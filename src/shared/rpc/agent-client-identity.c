/* SPDX-License-Identifier: MIT */
/* The identity stream: a restored clone takes its own identity
 * (docs/agent-protocol.md). The agent applies it in a child of its own and
 * reports how it went through the exit status, why through stderr. */
#include <errno.h>
#include <string.h>

#include "agent-client-internal.h"
#include "error.h"
#include "log.h"
#include "string-util.h"

int agent_client_identity(AgentClient *c, const char *request, usec_t timeout) {
        if (!c || !request)
                return -EINVAL;
        if (!agent_hello_has_cap(&c->info, "identity"))
                return error_setf(-EOPNOTSUPP,
                                  "the guest agent cannot take a new identity (its image was made by an older "
                                  "banger): rebuild the image (banger image build) or import it again");
        char why[1024] = "";
        AgentStreamIo io = { .in_fd = -EBADF,
                             .out_fd = -EBADF,
                             .err_fd = -EBADF,
                             .err_capture = why,
                             .err_capture_size = sizeof(why),
                             .window = AGENT_WINDOW_DEFAULT,
                             .signal_fd = -EBADF,
                             .tty_fd = -EBADF };
        AgentExecResult res = {};
        int r = agent_client_run(c, AGENT_STREAM_IDENTITY, (const uint8_t *) request, strlen(request), &io,
                                 deadline_from_timeout(timeout), &res);
        if (r < 0)
                return r;
        if (res.kind == AGENT_EXIT_CODE && res.code == 0) {
                /* The agent's account of the steps (guest text: made printable). */
                string_make_printable(why, false);
                log_debug("the guest's identity log: %s", why);
                return 0;
        }
        /* The agent's log: the first line that says what failed. */
        const char *line = strstr(why, "identity: ");
        line = line ? line + strlen("identity: ") : why;
        return error_setf(-EIO, "the guest could not take its identity: %.*s", (int) strcspn(line, "\n"),
                          line[0] ? line : "no reason given");
}
