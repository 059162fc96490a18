/* SPDX-License-Identifier: MIT */
/* Fuzz Firecracker's API replies as banger reads them (the version is
 * fuzz-fc-version's): the body of a failed request, whose fault_message goes
 * to the user, and the body of GET /, whose "state" drives pause and resume.
 * The input is the reply body. Besides memory errors: a failed request
 * always gives -EREMOTEIO with a non-empty message, which the RPC reply
 * that carries it to the user cleans into one printable line; and a state
 * is a C string of the reply. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "firecracker-api.h"
#include "jsonrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FC_API_REPLY_MAX)
                return 0;
        char *reply = malloc(size + 1);
        if (!reply)
                return 0;
        memcpy(reply, data, size);
        reply[size] = '\0';

        error_clear();
        if (fc_api_reply_error(400, "PUT", "/drives/rootfs", reply) != -EREMOTEIO)
                abort();
        const char *m = error_last_message();
        if (!m || !*m)
                abort();
        /* Firecracker's words go as they came; the edge cleans them. */
        char *clean = jsonrpc_error_message_clean(m);
        if (!clean || strlen(clean) > JSONRPC_ERROR_MESSAGE_MAX + 3)
                abort();
        for (const char *p = clean; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        abort();
        free(clean);

        char *state = NULL;
        error_clear();
        if (fc_api_reply_state(reply, &state) == 0) {
                if (strlen(state) > size)
                        abort();
                free(state);
        } else if (!error_last_message())
                abort();
        free(reply);
        return 0;
}
