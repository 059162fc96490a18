/* SPDX-License-Identifier: MIT */
/* The request payloads of OPEN: exec and file transfers. */
#include "agent-protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_FIXED 16U /* flags, rows, cols, argc, envc */

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
        size_t total = EXEC_FIXED + strlen(cwd) + 1;
        for (size_t i = 0; i < argc; i++)
                total += strlen(spec->argv[i]) + 1;
        for (size_t i = 0; i < envc; i++)
                total += strlen(spec->env[i]) + 1;
        /* The request travels in one OPEN frame after the id, kind and window. */
        if (total > AGENT_FRAME_MAX - 9)
                return -E2BIG;
        uint8_t *buf = malloc(total), *p = buf + EXEC_FIXED;
        if (!buf)
                return -ENOMEM;
        agent_put_u32(buf, spec->flags);
        agent_put_u16(buf + 4, spec->rows);
        agent_put_u16(buf + 6, spec->cols);
        agent_put_u32(buf + 8, (uint32_t) argc);
        agent_put_u32(buf + 12, (uint32_t) envc);
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
static int next_string(const uint8_t **p, const uint8_t *end, size_t max, char **ret) {
        size_t avail = (size_t) (end - *p);
        const uint8_t *nul = memchr(*p, 0, avail);
        if (!nul || (size_t) (nul - *p) > max)
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

static int parse_strings(const uint8_t *p, const uint8_t *end, uint32_t argc, uint32_t envc, AgentExecSpec *s) {
        char *cwd;
        int r = next_string(&p, end, AGENT_PATH_MAX, &cwd);
        for (uint32_t i = 0; r >= 0 && i < argc; i++)
                r = next_string(&p, end, AGENT_EXEC_MAX_STRING, &s->argv[i]);
        for (uint32_t i = 0; r >= 0 && i < envc; i++) {
                r = next_string(&p, end, AGENT_EXEC_MAX_STRING, &s->env[i]);
                if (r >= 0 && (!strchr(s->env[i], '=') || s->env[i][0] == '='))
                        r = -EBADMSG;
        }
        if (r >= 0 && (p != end || s->argv[0][0] == 0 || (cwd[0] != 0 && cwd[0] != '/')))
                r = -EBADMSG;
        if (r >= 0)
                s->cwd = cwd;
        return r;
}

int agent_exec_spec_parse(const uint8_t *payload, size_t len, AgentExecSpec *ret) {
        if (len < EXEC_FIXED)
                return -EBADMSG;
        uint32_t flags = agent_get_u32(payload), argc = agent_get_u32(payload + 8), envc = agent_get_u32(payload + 12);
        if (flags & ~AGENT_EXEC_FLAG_PTY)
                return -EOPNOTSUPP;
        if (argc == 0 || argc > AGENT_EXEC_MAX_ARGS || envc > AGENT_EXEC_MAX_ENV)
                return -E2BIG;
        AgentExecSpec s = { .flags = flags, .rows = agent_get_u16(payload + 4), .cols = agent_get_u16(payload + 6) };
        s.argv = calloc(argc + 1, sizeof(char *));
        s.env = calloc(envc + 1, sizeof(char *));
        int r = s.argv && s.env ? parse_strings(payload + EXEC_FIXED, payload + len, argc, envc, &s) : -ENOMEM;
        if (r < 0) {
                agent_exec_spec_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

int agent_files_spec_encode(const AgentFilesSpec *spec, uint8_t **ret, size_t *ret_len) {
        size_t plen = spec->path ? strlen(spec->path) : 0;
        if (plen == 0 || spec->path[0] != '/')
                return -EINVAL;
        if (plen > AGENT_PATH_MAX)
                return -ENAMETOOLONG;
        uint8_t *buf = malloc(4 + plen + 1);
        if (!buf)
                return -ENOMEM;
        agent_put_u32(buf, spec->flags);
        memcpy(buf + 4, spec->path, plen + 1);
        *ret = buf;
        *ret_len = 4 + plen + 1;
        return 0;
}

int agent_files_spec_parse(const uint8_t *payload, size_t len, AgentFilesSpec *ret) {
        if (len < 6 || len - 5 > AGENT_PATH_MAX || payload[len - 1] != 0)
                return -EBADMSG;
        uint32_t flags = agent_get_u32(payload);
        const char *path = (const char *) payload + 4;
        if (flags & ~AGENT_FILES_FLAG_CONTENTS)
                return -EOPNOTSUPP;
        if (path[0] != '/' || strlen(path) != len - 5)
                return -EBADMSG;
        *ret = (AgentFilesSpec){ .flags = flags, .path = path };
        return 0;
}
