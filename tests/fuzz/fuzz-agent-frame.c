/* SPDX-License-Identifier: MIT */
/* The agent protocol parsers (version 2), as the agent, the daemon's
 * multiplexer and the host client run them on untrusted bytes: frame
 * splitting, hello resync scanning, hello and error payloads, every stream
 * frame and the OPEN requests (exec, files, connect). A stream frame that parses must re-encode to
 * the same bytes, and so must an exec or file request; archive path rules
 * must never let a normalised name climb out. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent-paths.h"
#include "agent-protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_exec(const AgentStreamFrame *s) {
        AgentExecSpec spec;
        if (agent_exec_spec_parse(s->data, s->len, &spec) < 0)
                return;
        uint8_t *enc = NULL;
        size_t len = 0;
        int r = agent_exec_spec_encode(&spec, &enc, &len);
        assert(r == 0);
        assert(len == s->len && memcmp(enc, s->data, len) == 0);
        free(enc);
        agent_exec_spec_done(&spec);
}

static void check_files(const AgentStreamFrame *s) {
        AgentFilesSpec spec;
        if (agent_files_spec_parse(s->data, s->len, &spec) < 0)
                return;
        uint8_t *enc = NULL;
        size_t len = 0;
        assert(agent_files_spec_encode(&spec, &enc, &len) == 0);
        assert(len == s->len && memcmp(enc, s->data, len) == 0);
        free(enc);
        /* The path doubles as an archive name for the path rules. */
        char *n = NULL;
        if (agent_archive_path_normalize(spec.path + 1, &n) == 0) {
                assert(n[0] != '/' && strstr(n, "/../") == NULL && strncmp(n, "../", 3) != 0);
                (void) agent_symlink_escapes(n, spec.path + 1, true);
                free(n);
        }
}

static void check_connect(const AgentStreamFrame *s) {
        AgentConnectSpec spec;
        if (agent_connect_spec_parse(s->data, s->len, &spec) < 0)
                return;
        assert(spec.port > 0 && spec.flags == 0);
        uint8_t enc[AGENT_CONNECT_REQUEST_SIZE];
        agent_connect_spec_encode(&spec, enc);
        assert(s->len == sizeof(enc) && memcmp(enc, s->data, sizeof(enc)) == 0);
}

static void check_stream(const AgentFrame *f) {
        AgentStreamFrame s;
        if (agent_stream_frame_parse(f, &s) < 0)
                return;
        size_t n = agent_stream_frame_size(&s);
        assert(n == AGENT_FRAME_HEADER_SIZE + f->len);
        uint8_t *buf = malloc(n);
        assert(buf);
        assert(agent_stream_frame_encode(&s, buf) == n);
        assert(buf[0] == f->type && memcmp(buf + AGENT_FRAME_HEADER_SIZE, f->payload, f->len) == 0);
        free(buf);
        if (s.type == AGENT_MSG_OPEN && s.kind == AGENT_STREAM_EXEC)
                check_exec(&s);
        if (s.type == AGENT_MSG_OPEN && (s.kind == AGENT_STREAM_FILES_PUT || s.kind == AGENT_STREAM_FILES_GET))
                check_files(&s);
        if (s.type == AGENT_MSG_OPEN && s.kind == AGENT_STREAM_CONNECT)
                check_connect(&s);
}

static void check_payload(const AgentFrame *f) {
        AgentHello h;
        int e;
        char *text = NULL;
        switch (f->type) {
        case AGENT_MSG_HELLO:
                if (agent_hello_parse(f->payload, f->len, &h) == 0) {
                        assert(strlen(h.caps) < sizeof(h.caps));
                        (void) agent_hello_has_cap(&h, "exec");
                        uint8_t out[AGENT_FRAME_HEADER_SIZE + AGENT_HELLO_V2_FIXED + AGENT_CAPS_MAX];
                        if (f->len > AGENT_HELLO_PAYLOAD_SIZE)
                                assert(agent_hello_reply_encode(&h, out, sizeof(out)) ==
                                       AGENT_FRAME_HEADER_SIZE + f->len);
                }
                break;
        case AGENT_MSG_ERROR:
                if (agent_error_parse(f->payload, f->len, &e, &text) == 0) {
                        assert(e > 0 && e <= 4095);
                        free(text);
                }
                break;
        default:
                if (agent_msg_is_stream(f->type))
                        check_stream(f);
                else
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
