/* SPDX-License-Identifier: MIT */
#include "agent-protocol.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "string-util.h"

const char *agent_msg_to_string(uint8_t type) {
        switch (type) {
        case AGENT_MSG_HELLO:
                return "hello";
        case AGENT_MSG_ERROR:
                return "error";
        case AGENT_MSG_OPEN:
                return "open";
        case AGENT_MSG_OPENED:
                return "opened";
        case AGENT_MSG_DATA:
                return "data";
        case AGENT_MSG_EOF:
                return "eof";
        case AGENT_MSG_WINDOW:
                return "window";
        case AGENT_MSG_SIGNAL:
                return "signal";
        case AGENT_MSG_RESIZE:
                return "resize";
        case AGENT_MSG_EXIT:
                return "exit";
        case AGENT_MSG_CLOSE:
                return "close";
        default:
                return NULL;
        }
}

const char *agent_stream_kind_to_string(uint8_t kind) {
        switch (kind) {
        case AGENT_STREAM_EXEC:
                return "exec";
        case AGENT_STREAM_HEALTH:
                return "health";
        case AGENT_STREAM_PORTS:
                return "ports";
        case AGENT_STREAM_STATS:
                return "stats";
        case AGENT_STREAM_POWEROFF:
                return "poweroff";
        case AGENT_STREAM_FILES_PUT:
                return "files-put";
        case AGENT_STREAM_FILES_GET:
                return "files-get";
        case AGENT_STREAM_IDENTITY:
                return "identity";
        case AGENT_STREAM_CONNECT:
                return "connect";
        default:
                return NULL;
        }
}

void agent_frame_header_encode(uint8_t out[AGENT_FRAME_HEADER_SIZE], uint8_t type, uint32_t len) {
        out[0] = type;
        agent_put_u32(out + 1, len);
}

long agent_frame_parse(const uint8_t *buf, size_t len, AgentFrame *ret) {
        if (len < AGENT_FRAME_HEADER_SIZE)
                return 0;
        uint32_t plen = agent_get_u32(buf + 1);
        if (plen > AGENT_FRAME_MAX)
                return -EMSGSIZE;
        if (len - AGENT_FRAME_HEADER_SIZE < plen)
                return 0;
        *ret = (AgentFrame){ .type = buf[0], .len = plen, .payload = buf + AGENT_FRAME_HEADER_SIZE };
        return (long) (AGENT_FRAME_HEADER_SIZE + plen);
}

/* ---- hello ---- */

static void hello_sync_pattern(uint8_t out[AGENT_HELLO_SYNC_SIZE], uint32_t payload_len) {
        agent_frame_header_encode(out, AGENT_MSG_HELLO, payload_len);
        memcpy(out + AGENT_FRAME_HEADER_SIZE, AGENT_HELLO_MAGIC, 4);
}

size_t agent_stream_find_hello(const uint8_t *buf, size_t len) {
        /* Only the 12-byte hello (what hosts send) resynchronises a stream. */
        uint8_t pat[AGENT_HELLO_SYNC_SIZE];
        hello_sync_pattern(pat, AGENT_HELLO_PAYLOAD_SIZE);
        for (size_t i = 0; i < len; i++) {
                size_t n = len - i < sizeof(pat) ? len - i : sizeof(pat);
                if (memcmp(buf + i, pat, n) == 0)
                        return i;
        }
        return len;
}

void agent_hello_encode(uint8_t out[AGENT_HELLO_FRAME_SIZE], uint32_t version, uint32_t nonce) {
        hello_sync_pattern(out, AGENT_HELLO_PAYLOAD_SIZE);
        agent_put_u32(out + AGENT_FRAME_HEADER_SIZE + 4, version);
        agent_put_u32(out + AGENT_FRAME_HEADER_SIZE + 8, nonce);
}

size_t agent_hello_reply_encode(const AgentHello *h, uint8_t *out, size_t cap) {
        size_t clen = strnlen(h->caps, sizeof(h->caps));
        size_t plen = AGENT_HELLO_V2_FIXED + clen;
        if (clen >= sizeof(h->caps) || cap < AGENT_FRAME_HEADER_SIZE + plen)
                return 0;
        hello_sync_pattern(out, (uint32_t) plen);
        uint8_t *p = out + AGENT_FRAME_HEADER_SIZE;
        agent_put_u32(p + 4, h->version);
        agent_put_u32(p + 8, h->nonce);
        agent_put_u32(p + 12, h->max_frame);
        agent_put_u32(p + 16, h->window);
        agent_put_u32(p + 20, h->max_streams);
        memcpy(p + AGENT_HELLO_V2_FIXED, h->caps, clen);
        return AGENT_FRAME_HEADER_SIZE + plen;
}

static bool caps_valid(const uint8_t *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (s[i] != ' ' && (s[i] < 0x21 || s[i] > 0x7e))
                        return false;
        return true;
}

int agent_hello_parse(const uint8_t *payload, size_t len, AgentHello *ret) {
        if (len < AGENT_HELLO_PAYLOAD_SIZE || memcmp(payload, AGENT_HELLO_MAGIC, 4) != 0)
                return -EBADMSG;
        AgentHello h = { .version = agent_get_u32(payload + 4), .nonce = agent_get_u32(payload + 8) };
        if (len > AGENT_HELLO_PAYLOAD_SIZE) {
                size_t clen = len - AGENT_HELLO_V2_FIXED;
                if (len < AGENT_HELLO_V2_FIXED || clen >= sizeof(h.caps) ||
                    !caps_valid(payload + AGENT_HELLO_V2_FIXED, clen))
                        return -EBADMSG;
                h.max_frame = agent_get_u32(payload + 12);
                h.window = agent_get_u32(payload + 16);
                h.max_streams = agent_get_u32(payload + 20);
                memcpy(h.caps, payload + AGENT_HELLO_V2_FIXED, clen);
                if (h.max_frame < AGENT_DATA_CHUNK + 16 || h.window == 0 || h.window > AGENT_WINDOW_MAX ||
                    h.max_streams == 0)
                        return -EBADMSG;
        }
        *ret = h;
        return 0;
}

bool agent_hello_has_cap(const AgentHello *h, const char *cap) {
        size_t n = strlen(cap);
        for (const char *p = h->caps; *p;) {
                size_t w = strcspn(p, " ");
                if (w == n && strncmp(p, cap, n) == 0)
                        return true;
                p += w;
                p += strspn(p, " ");
        }
        return false;
}

/* ---- errors ---- */

int agent_error_parse(const uint8_t *payload, size_t len, int *ret_errno, char **ret_text) {
        if (len < 4 || len - 4 > AGENT_ERROR_MAX_TEXT)
                return -EBADMSG;
        uint32_t e = agent_get_u32(payload);
        /* Guest text: made valid UTF-8 without control characters here, once,
         * so it can go into a record, a JSON reply, a log line or a terminal. */
        char *t = printable_strndup((const char *) payload + 4, len - 4);
        if (!t)
                return -ENOMEM;
        /* A zero or absurd errno would read as success or overflow: clamp to EPROTO. */
        *ret_errno = e == 0 || e > 4095 ? EPROTO : (int) e;
        *ret_text = t;
        return 0;
}

size_t agent_error_encode(uint8_t *out, size_t cap, int err, const char *text) {
        size_t tlen = strnlen(text, AGENT_ERROR_MAX_TEXT);
        if (cap < AGENT_FRAME_HEADER_SIZE + 4 + tlen)
                return 0;
        agent_frame_header_encode(out, AGENT_MSG_ERROR, (uint32_t) (4 + tlen));
        agent_put_u32(out + AGENT_FRAME_HEADER_SIZE, (uint32_t) (err < 0 ? -err : err));
        memcpy(out + AGENT_FRAME_HEADER_SIZE + 4, text, tlen);
        return AGENT_FRAME_HEADER_SIZE + 4 + tlen;
}

int agent_exit_check(uint8_t kind, uint32_t code) {
        if (kind == AGENT_EXIT_CODE)
                return code <= 255 ? 0 : -EBADMSG;
        if (kind == AGENT_EXIT_SIGNAL)
                return code >= 1 && code < 65 ? 0 : -EBADMSG;
        return -EBADMSG;
}
