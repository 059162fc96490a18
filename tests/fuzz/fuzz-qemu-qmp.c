/* SPDX-License-Identifier: MIT */
/* The QMP client reading whatever a (possibly broken or hostile) process on
 * the QMP socket sends: greeting, capability reply, a command's reply with
 * events around it. The input is the whole byte stream from the peer, which
 * then closes; the client must fail cleanly or succeed, never crash, leak or
 * read past its cap. */
#include <assert.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fs-util.h"
#include "qemu-qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        int sv[2];
        /* A socketpair buffers this much without a reader. */
        if (size > 100 * 1024)
                return 0;
        signal(SIGPIPE, SIG_IGN);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 0;
        int sndbuf = 1024 * 1024;
        (void) setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        if (loop_write(sv[1], data, size) < 0) {
                close(sv[0]);
                close(sv[1]);
                return 0;
        }
        close(sv[1]);

        QmpClient *c = NULL;
        /* The peer has closed: every read returns at once, so no timeout fires. */
        if (qmp_client_new_from_fd(sv[0], 5 * USEC_PER_SEC, &c) == 0) {
                json_t *ret = NULL;
                if (qmp_client_execute(c, "query-status", NULL, 5 * USEC_PER_SEC, &ret) == 0) {
                        assert(ret);
                        json_decref(ret);
                }
                qmp_client_free(c);
        }
        return 0;
}
