/* SPDX-License-Identifier: MIT */
/* The agent protocol parsers, as the agent and the host client run them on
 * untrusted bytes: frame splitting, hello resync scanning, and each
 * payload parser; an exec request that parses must re-encode to the same
 * bytes. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent-protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_exec(const AgentFrame *f) {
        AgentExecSpec spec;
        if (agent_exec_spec_parse(f->payload, f->len, &spec) < 0)
                return;
        uint8_t *enc = NULL;
        size_t len = 0;
        int r = agent_exec_spec_encode(&spec, &enc, &len);
        assert(r == 0);
        assert(len == f->len && memcmp(enc, f->payload, len) == 0);
        free(enc);
        agent_exec_spec_done(&spec);
}

static void check_payload(const AgentFrame *f) {
        uint32_t v, n;
        int e, code;
        char *text = NULL;
        AgentExitKind kind;
        switch (f->type) {
        case AGENT_MSG_HELLO:
                (void) agent_hello_parse(f->payload, f->len, &v, &n);
                break;
        case AGENT_MSG_ERROR:
                if (agent_error_parse(f->payload, f->len, &e, &text) == 0) {
                        assert(e > 0 && e <= 4095);
                        free(text);
                }
                break;
        case AGENT_MSG_EXEC_EXIT:
                (void) agent_exit_parse(f->payload, f->len, &kind, &code);
                break;
        case AGENT_MSG_EXEC_START:
                check_exec(f);
                break;
        default:
                (void) agent_msg_to_string(f->type);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t off = 0;
        while (off < size) {
                AgentFrame f;
                long n = agent_frame_parse(data + off, size - off, &f);
                if (n == 0)
                        break;
                if (n < 0) {
                        /* What a stream transport does: skip to the next hello. */
                        size_t skip = agent_stream_find_hello(data + off + 1, size - off - 1);
                        assert(skip <= size - off - 1);
                        off += 1 + skip;
                        continue;
                }
                assert((size_t) n <= size - off && (size_t) n == AGENT_FRAME_HEADER_SIZE + f.len);
                check_payload(&f);
                off += (size_t) n;
        }
        return 0;
}
