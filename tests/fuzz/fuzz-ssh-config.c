/* SPDX-License-Identifier: MIT */
/* Fuzz the finder of banger's block in ~/.ssh/config. Besides memory errors:
 * a found block, once removed, is gone; a file without one gets one added at
 * its top that is found again and removed to give back the exact bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cli/ssh-config-block.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_removed(const char *buf, size_t len, const SshBlock *b, const char *want, size_t want_len) {
        char *rest = NULL;
        size_t rest_len = 0;
        SshBlock again = {};
        if (ssh_config_splice(buf, len, b->start, b->end, NULL, 0, &rest, &rest_len) < 0)
                abort();
        if (ssh_block_find(rest, rest_len, &again, NULL) != 0)
                abort();
        if (want && (rest_len != want_len || memcmp(rest, want, want_len) != 0))
                abort();
        free(rest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        SshBlock b = {};
        const char *why = NULL;
        int r = ssh_block_find(buf, size, &b, &why);
        if (r < 0 && !why)
                abort();
        if (r > 0) {
                if (b.start > b.end || b.end > size || !ssh_path_is_safe(b.include))
                        abort();
                check_removed(buf, size, &b, NULL, 0);
                ssh_block_done(&b);
                return 0;
        }
        if (r < 0)
                return 0;
        char *block = NULL, *with = NULL;
        size_t block_len = 0, with_len = 0;
        if (ssh_block_render("/home/u/.ssh/banger.conf", SSH_BLOCK_FILE_EXISTED, ssh_config_uses_crlf(buf, size),
                             &block, &block_len) < 0 ||
            ssh_config_splice(buf, size, 0, 0, block, block_len, &with, &with_len) < 0)
                abort();
        if (ssh_block_find(with, with_len, &b, NULL) != 1 || b.start != 0 || b.end != block_len)
                abort();
        check_removed(with, with_len, &b, buf, size);
        ssh_block_done(&b);
        free(block);
        free(with);
        return 0;
}
