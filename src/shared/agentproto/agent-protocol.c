/* SPDX-License-Identifier: MIT */
#include "agent-protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool agent_msg_is_known(uint8_t type) {
        return agent_msg_to_string(type) != NULL;
}

const char *agent_msg_to_string(uint8_t type) {
        switch (type) {
        case AGENT_MSG_HELLO: return "hello";
        case AGENT_MSG_ERROR: return "error";
        case AGENT_MSG_OK: return "ok";
        case AGENT_MSG_HEALTH: return "health";
        case AGENT_MSG_PORTS: return "ports";
        case AGENT_MSG_STATS: return "stats";
        case AGENT_MSG_POWEROFF: return "poweroff";
        case AGENT_MSG_EXEC_START: return "exec-start";
        case AGENT_MSG_EXEC_STDIN: return "exec-stdin";
        case AGENT_MSG_EXEC_STDIN_EOF: return "exec-stdin-eof";
        case AGENT_MSG_EXEC_SIGNAL: return "exec-signal";
        case AGENT_MSG_EXEC_STARTED: return "exec-started";
        case AGENT_MSG_EXEC_STDOUT: return "exec-stdout";
        case AGENT_MSG_EXEC_STDERR: return "exec-stderr";
        case AGENT_MSG_EXEC_EXIT: return "exec-exit";
        default: return NULL;
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

static void hello_sync_pattern(uint8_t out[AGENT_HELLO_SYNC_SIZE]) {
        agent_frame_header_encode(out, AGENT_MSG_HELLO, AGENT_HELLO_PAYLOAD_SIZE);
        memcpy(out + AGENT_FRAME_HEADER_SIZE, AGENT_HELLO_MAGIC, 4);
}

size_t agent_stream_find_hello(const uint8_t *buf, size_t len) {
        uint8_t pat[AGENT_HELLO_SYNC_SIZE];
        hello_sync_pattern(pat);
        for (size_t i = 0; i < len; i++) {
                size_t n = len - i < sizeof(pat) ? len - i : sizeof(pat);
                if (memcmp(buf + i, pat, n) == 0)
                        return i;
        }
        return len;
}

void agent_hello_encode(uint8_t out[AGENT_HELLO_FRAME_SIZE], uint32_t version, uint32_t nonce) {
        hello_sync_pattern(out);
        agent_put_u32(out + AGENT_FRAME_HEADER_SIZE + 4, version);
        agent_put_u32(out + AGENT_FRAME_HEADER_SIZE + 8, nonce);
}

int agent_hello_parse(const uint8_t *payload, size_t len, uint32_t *ret_version, uint32_t *ret_nonce) {
        if (len != AGENT_HELLO_PAYLOAD_SIZE || memcmp(payload, AGENT_HELLO_MAGIC, 4) != 0)
                return -EBADMSG;
        *ret_version = agent_get_u32(payload + 4);
        *ret_nonce = agent_get_u32(payload + 8);
        return 0;
}

int agent_error_parse(const uint8_t *payload, size_t len, int *ret_errno, char **ret_text) {
        if (len < 4 || len - 4 > AGENT_ERROR_MAX_TEXT)
                return -EBADMSG;
        uint32_t e = agent_get_u32(payload);
        char *t = strndup((const char *) payload + 4, len - 4);
        if (!t)
                return -ENOMEM;
        /* A zero or absurd errno would read as success or overflow: clamp to EPROTO. */
        *ret_errno = e == 0 || e > 4095 ? EPROTO : (int) e;
        *ret_text = t;
        return 0;
}

int agent_exit_parse(const uint8_t *payload, size_t len, AgentExitKind *ret_kind, int *ret_code) {
        if (len != 5 || payload[0] > AGENT_EXIT_SIGNAL)
                return -EBADMSG;
        uint32_t code = agent_get_u32(payload + 1);
        if (code > 255)
                return -EBADMSG;
        *ret_kind = payload[0];
        *ret_code = (int) code;
        return 0;
}

static size_t strv_count(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

int agent_exec_spec_encode(const AgentExecSpec *spec, uint8_t **ret, size_t *ret_len) {
        size_t argc = strv_count(spec->argv), envc = strv_count(spec->env);
        const char *cwd = spec->cwd ? spec->cwd : "";
        if (argc == 0 || argc > AGENT_EXEC_MAX_ARGS || envc > AGENT_EXEC_MAX_ENV)
                return -E2BIG;
        size_t total = 12 + strlen(cwd) + 1;
        for (size_t i = 0; i < argc; i++)
                total += strlen(spec->argv[i]) + 1;
        for (size_t i = 0; i < envc; i++)
                total += strlen(spec->env[i]) + 1;
        if (total > AGENT_FRAME_MAX)
                return -E2BIG;
        uint8_t *buf = malloc(total), *p = buf + 12;
        if (!buf)
                return -ENOMEM;
        agent_put_u32(buf, spec->flags);
        agent_put_u32(buf + 4, (uint32_t) argc);
        agent_put_u32(buf + 8, (uint32_t) envc);
        p = (uint8_t *) stpcpy((char *) p, cwd) + 1;
        for (size_t i = 0; i < argc; i++)
                p = (uint8_t *) stpcpy((char *) p, spec->argv[i]) + 1;
        for (size_t i = 0; i < envc; i++)
                p = (uint8_t *) stpcpy((char *) p, spec->env[i]) + 1;
        *ret = buf;
        *ret_len = total;
        return 0;
}

/* Take the next NUL-terminated string from [*p, end); -EBADMSG if unterminated or too long. */
static int next_string(const uint8_t **p, const uint8_t *end, char **ret) {
        size_t avail = (size_t) (end - *p);
        const uint8_t *nul = memchr(*p, 0, avail);
        if (!nul || (size_t) (nul - *p) > AGENT_EXEC_MAX_STRING)
                return -EBADMSG;
        *ret = (char *) *p;
        *p = nul + 1;
        return 0;
}

void agent_exec_spec_done(AgentExecSpec *spec) {
        free(spec->argv);
        free(spec->env);
        spec->argv = spec->env = NULL;
}

int agent_exec_spec_parse(const uint8_t *payload, size_t len, AgentExecSpec *ret) {
        if (len < 12)
                return -EBADMSG;
        uint32_t flags = agent_get_u32(payload), argc = agent_get_u32(payload + 4), envc = agent_get_u32(payload + 8);
        if (flags != 0)
                return -EOPNOTSUPP;
        if (argc == 0 || argc > AGENT_EXEC_MAX_ARGS || envc > AGENT_EXEC_MAX_ENV)
                return -E2BIG;
        AgentExecSpec s = { .flags = flags };
        s.argv = calloc(argc + 1, sizeof(char *));
        s.env = calloc(envc + 1, sizeof(char *));
        if (!s.argv || !s.env) {
                agent_exec_spec_done(&s);
                return -ENOMEM;
        }
        const uint8_t *p = payload + 12, *end = payload + len;
        char *cwd;
        int r = next_string(&p, end, &cwd);
        for (uint32_t i = 0; r >= 0 && i < argc; i++)
                r = next_string(&p, end, &s.argv[i]);
        for (uint32_t i = 0; r >= 0 && i < envc; i++) {
                r = next_string(&p, end, &s.env[i]);
                if (r >= 0 && (!strchr(s.env[i], '=') || s.env[i][0] == '='))
                        r = -EBADMSG;
        }
        if (r >= 0 && (p != end || s.argv[0][0] == 0 || (cwd[0] != 0 && cwd[0] != '/')))
                r = -EBADMSG;
        if (r < 0) {
                agent_exec_spec_done(&s);
                return r;
        }
        s.cwd = cwd;
        *ret = s;
        return 0;
}
