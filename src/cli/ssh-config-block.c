/* SPDX-License-Identifier: MIT */
#include "ssh-config-block.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define BEGIN_PREFIX "# BEGIN banger ssh-config"
#define END_LINE "# END banger ssh-config"
#define INCLUDE_PREFIX "Include \""
#define PATH_MAX_LEN 1024

static const char *const begin_lines[_SSH_BLOCK_ORIGIN_MAX] = {
        [SSH_BLOCK_FILE_EXISTED] = BEGIN_PREFIX " (do not edit; 'banger ssh-config uninstall' removes it)",
        [SSH_BLOCK_CREATED_FILE] = BEGIN_PREFIX " (do not edit; 'banger ssh-config uninstall' removes it and"
                                                " this file)",
        [SSH_BLOCK_CREATED_DIR] = BEGIN_PREFIX " (do not edit; 'banger ssh-config uninstall' removes it, this"
                                               " file and ~/.ssh)",
};

void ssh_block_done(SshBlock *b) {
        free(b->include);
        b->include = NULL;
}

/* One line: text [start, start + len) without its ending; next is where the
 * following line starts (past "\n"), or the buffer's end. */
typedef struct Line {
        size_t start, len, next;
} Line;

static bool next_line(const char *buf, size_t size, size_t at, Line *l) {
        if (at >= size)
                return false;
        const char *nl = memchr(buf + at, '\n', size - at);
        size_t end = nl ? (size_t) (nl - buf) : size;
        l->start = at;
        l->next = nl ? end + 1 : size;
        l->len = end - at;
        if (nl && l->len > 0 && buf[end - 1] == '\r')
                l->len--;
        return true;
}

static bool line_is(const char *buf, const Line *l, const char *text) {
        return l->len == strlen(text) && memcmp(buf + l->start, text, l->len) == 0;
}

static bool line_starts(const char *buf, const Line *l, const char *prefix) {
        size_t n = strlen(prefix);
        return l->len >= n && memcmp(buf + l->start, prefix, n) == 0;
}

static int parse_include(const char *buf, const Line *l, char **ret) {
        size_t n = strlen(INCLUDE_PREFIX);
        if (!line_starts(buf, l, INCLUDE_PREFIX) || l->len < n + 2 || buf[l->start + l->len - 1] != '"')
                return -EBADMSG;
        char *p = strndup(buf + l->start + n, l->len - n - 1);
        if (!p)
                return -ENOMEM;
        if (strlen(p) != l->len - n - 1 || !ssh_path_is_safe(p)) {
                free(p);
                return -EBADMSG;
        }
        *ret = p;
        return 0;
}

/* The three lines from the BEGIN line at l, exactly as written. */
static int parse_block(const char *buf, size_t len, const Line *begin, SshBlock *ret, const char **why) {
        SshBlock b = { .start = begin->start, .origin = _SSH_BLOCK_ORIGIN_MAX };
        for (int o = 0; o < _SSH_BLOCK_ORIGIN_MAX; o++)
                if (line_is(buf, begin, begin_lines[o]))
                        b.origin = (SshBlockOrigin) o;
        Line inc, end;
        if (b.origin == _SSH_BLOCK_ORIGIN_MAX) {
                *why = "its first line was changed";
                return -EBADMSG;
        }
        if (!next_line(buf, len, begin->next, &inc)) {
                *why = "it ends after its first line";
                return -EBADMSG;
        }
        int r = parse_include(buf, &inc, &b.include);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                *why = "its Include line was changed";
                return r;
        }
        if (!next_line(buf, len, inc.next, &end) || !line_is(buf, &end, END_LINE)) {
                free(b.include);
                *why = "its END line is missing or was changed";
                return -EBADMSG;
        }
        b.end = end.next;
        *ret = b;
        return 0;
}

int ssh_block_find(const char *buf, size_t len, SshBlock *ret, const char **ret_why) {
        SshBlock found = { .origin = _SSH_BLOCK_ORIGIN_MAX };
        const char *why = NULL;
        Line l;
        int r = 0;
        for (size_t at = 0; next_line(buf, len, at, &l); at = l.next) {
                bool begin = line_starts(buf, &l, BEGIN_PREFIX), end = line_starts(buf, &l, END_LINE);
                if (!begin && !end)
                        continue;
                if (end || found.include) {
                        why = end ? "an END line stands outside the block" : "it appears twice";
                        r = -EBADMSG;
                        break;
                }
                r = parse_block(buf, len, &l, &found, &why);
                if (r < 0)
                        break;
                r = 1;
                l.next = found.end;
        }
        if (r < 0) {
                ssh_block_done(&found);
                if (ret_why)
                        *ret_why = why;
                return r;
        }
        if (!found.include)
                return 0;
        *ret = found;
        return 1;
}

int ssh_block_render(const char *include, SshBlockOrigin origin, bool crlf, char **ret, size_t *ret_len) {
        if (!ssh_path_is_safe(include) || origin < 0 || origin >= _SSH_BLOCK_ORIGIN_MAX)
                return -EINVAL;
        const char *eol = crlf ? "\r\n" : "\n";
        char *s = NULL;
        int n = asprintf(&s, "%s%s" INCLUDE_PREFIX "%s\"%s" END_LINE "%s", begin_lines[origin], eol, include, eol, eol);
        if (n < 0)
                return -ENOMEM;
        *ret = s;
        *ret_len = (size_t) n;
        return 0;
}

bool ssh_config_uses_crlf(const char *buf, size_t len) {
        const char *nl = memchr(buf, '\n', len);
        return nl && nl > buf && nl[-1] == '\r';
}

int ssh_config_splice(const char *buf, size_t len, size_t start, size_t end, const char *block, size_t block_len,
                      char **ret, size_t *ret_len) {
        if (start > end || end > len)
                return -EINVAL;
        size_t n = len - (end - start) + (block ? block_len : 0);
        char *s = malloc(n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, buf, start);
        if (block)
                memcpy(s + start, block, block_len);
        memcpy(s + start + (block ? block_len : 0), buf + end, len - end);
        s[n] = '\0';
        *ret = s;
        *ret_len = n;
        return 0;
}

bool ssh_path_is_safe(const char *path) {
        static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 /._-+,@=:";
        size_t n = path ? strlen(path) : 0;
        return n > 1 && n <= PATH_MAX_LEN && path[0] == '/' && strspn(path, ok) == n;
}
