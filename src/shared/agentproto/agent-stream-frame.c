/* SPDX-License-Identifier: MIT */
/* Stream frames: every one starts its payload with a u32 stream id; the
 * fixed part that follows depends on the type (docs/agent-protocol.md). */
#include "agent-protocol.h"

#include <errno.h>
#include <string.h>

bool agent_msg_is_stream(uint8_t type) {
        return type >= AGENT_MSG_OPEN && type <= AGENT_MSG_CLOSE;
}

/* Bytes after the id that every frame of the type carries. */
static size_t fixed_size(uint8_t type) {
        switch (type) {
        case AGENT_MSG_OPEN:
                return 5; /* kind, window */
        case AGENT_MSG_OPENED:
                return 4; /* pid */
        case AGENT_MSG_DATA:
                return 1; /* channel */
        case AGENT_MSG_EOF:
                return 1; /* channel */
        case AGENT_MSG_WINDOW:
                return 4; /* increment */
        case AGENT_MSG_SIGNAL:
                return 4; /* signal */
        case AGENT_MSG_RESIZE:
                return 4; /* rows, cols */
        case AGENT_MSG_EXIT:
                return 5; /* kind, code */
        case AGENT_MSG_CLOSE:
                return 4; /* errno */
        default:
                return 0;
        }
}

/* The most variable bytes a type may carry. */
static size_t max_tail(uint8_t type) {
        switch (type) {
        case AGENT_MSG_OPEN:
                return AGENT_FRAME_MAX - 9;
        case AGENT_MSG_DATA:
                return AGENT_DATA_CHUNK;
        case AGENT_MSG_CLOSE:
                return AGENT_ERROR_MAX_TEXT;
        default:
                return 0;
        }
}

static int check_values(const AgentStreamFrame *s) {
        switch (s->type) {
        case AGENT_MSG_OPEN:
                if (s->kind == 0 || s->kind >= _AGENT_STREAM_KIND_MAX || s->value == 0 || s->value > AGENT_WINDOW_MAX)
                        return -EBADMSG;
                return 0;
        case AGENT_MSG_DATA:
        case AGENT_MSG_EOF:
                return s->channel <= AGENT_CHANNEL_STDERR ? 0 : -EBADMSG;
        case AGENT_MSG_WINDOW:
                return s->value >= 1 && s->value <= AGENT_WINDOW_MAX ? 0 : -EBADMSG;
        case AGENT_MSG_SIGNAL:
                return s->value >= 1 && s->value < 65 ? 0 : -EBADMSG;
        case AGENT_MSG_RESIZE:
                return s->rows > 0 && s->cols > 0 ? 0 : -EBADMSG;
        case AGENT_MSG_EXIT:
                return agent_exit_check(s->exit_kind, s->value);
        case AGENT_MSG_CLOSE:
                return s->value <= 4095 ? 0 : -EBADMSG;
        default:
                return 0;
        }
}

int agent_stream_frame_parse(const AgentFrame *f, AgentStreamFrame *ret) {
        if (!agent_msg_is_stream(f->type))
                return -EBADMSG;
        size_t fixed = fixed_size(f->type);
        if (f->len < 4 + fixed || f->len - 4 - fixed > max_tail(f->type))
                return -EBADMSG;
        const uint8_t *p = f->payload + 4;
        AgentStreamFrame s = { .type = f->type, .id = agent_get_u32(f->payload) };
        if (s.id == 0)
                return -EBADMSG;
        switch (f->type) {
        case AGENT_MSG_OPEN:
                s.kind = p[0];
                s.value = agent_get_u32(p + 1);
                break;
        case AGENT_MSG_DATA:
        case AGENT_MSG_EOF:
                s.channel = p[0];
                break;
        case AGENT_MSG_RESIZE:
                s.rows = agent_get_u16(p);
                s.cols = agent_get_u16(p + 2);
                break;
        case AGENT_MSG_EXIT:
                s.exit_kind = p[0];
                s.value = agent_get_u32(p + 1);
                break;
        default:
                s.value = agent_get_u32(p);
                break;
        }
        s.data = p + fixed;
        s.len = f->len - 4 - fixed;
        int r = check_values(&s);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

size_t agent_stream_frame_size(const AgentStreamFrame *f) {
        return AGENT_FRAME_HEADER_SIZE + 4 + fixed_size(f->type) + (max_tail(f->type) ? f->len : 0);
}

size_t agent_stream_frame_encode(const AgentStreamFrame *f, uint8_t *out) {
        size_t total = agent_stream_frame_size(f);
        agent_frame_header_encode(out, f->type, (uint32_t) (total - AGENT_FRAME_HEADER_SIZE));
        agent_put_u32(out + AGENT_FRAME_HEADER_SIZE, f->id);
        uint8_t *p = out + AGENT_FRAME_HEADER_SIZE + 4;
        switch (f->type) {
        case AGENT_MSG_OPEN:
                p[0] = f->kind;
                agent_put_u32(p + 1, f->value);
                break;
        case AGENT_MSG_DATA:
        case AGENT_MSG_EOF:
                p[0] = f->channel;
                break;
        case AGENT_MSG_RESIZE:
                agent_put_u16(p, f->rows);
                agent_put_u16(p + 2, f->cols);
                break;
        case AGENT_MSG_EXIT:
                p[0] = f->exit_kind;
                agent_put_u32(p + 1, f->value);
                break;
        default:
                agent_put_u32(p, f->value);
                break;
        }
        if (max_tail(f->type) && f->len > 0)
                memcpy(p + fixed_size(f->type), f->data, f->len);
        return total;
}

void agent_stream_frame_set_id(uint8_t *frame, uint32_t id) {
        agent_put_u32(frame + AGENT_FRAME_HEADER_SIZE, id);
}
