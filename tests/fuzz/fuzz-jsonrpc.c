/* SPDX-License-Identifier: MIT */
/* Fuzz the RPC framing and request parsing exactly as the server uses them:
 * bytes arrive in arbitrary chunks, lines are split, parsed and validated. */
#include <stdint.h>
#include <string.h>

#include "jsonrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        JsonRpcReader r;
        jsonrpc_reader_init(&r, 4096);
        /* The first byte picks a chunk size so partial lines get exercised. */
        size_t chunk = size > 0 ? (size_t) (data[0] % 64) + 1 : 1;
        for (size_t off = size > 0 ? 1 : 0; off < size; off += chunk) {
                size_t n = size - off < chunk ? size - off : chunk;
                if (jsonrpc_reader_feed(&r, data + off, n) < 0)
                        break;
                const char *line;
                size_t len;
                int k;
                while ((k = jsonrpc_reader_next(&r, &line, &len)) > 0) {
                        json_t *msg = NULL;
                        const char *why;
                        if (jsonrpc_parse_line(line, len, &msg, &why) < 0)
                                continue;
                        JsonRpcRequest req;
                        if (jsonrpc_request_from_json(msg, &req, &why) == 0) {
                                char *out = jsonrpc_format_result(req.id, json_object());
                                free(out);
                        }
                        json_decref(msg);
                }
                if (k < 0)
                        break;
        }
        jsonrpc_reader_done(&r);
        return 0;
}
