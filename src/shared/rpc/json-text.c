/* SPDX-License-Identifier: MIT */
/* JSON text as text: a member's span, the indented layout (json-text.h). */
#include "json-text.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "macro.h"
#include "string-util.h"

#define JSON_TEXT_MAX_DEPTH 64

static bool is_ws(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* What true, false, null and numbers are made of. */
static bool is_literal(char c) {
        return c != '\0' && strchr("0123456789+-.eEtruefalsn", c);
}

static size_t skip_ws(const char *s, size_t len, size_t i) {
        while (i < len && is_ws(s[i]))
                i++;
        return i;
}

/* Index just past the string that opens at s[i] ('"'); 0 when it is not
 * closed before len. */
static size_t string_end(const char *s, size_t len, size_t i) {
        for (i++; i < len; i++) {
                if (s[i] == '\\')
                        i++;
                else if (s[i] == '"')
                        return i + 1;
        }
        return 0;
}

int json_text_member_span(const char *s, size_t len, const char *key, size_t *ret_start, size_t *ret_end) {
        size_t klen = strlen(key), depth = 0, start = 0;
        bool found = false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c == '"') {
                        size_t e = string_end(s, len, i);
                        if (e == 0)
                                return -EBADMSG;
                        size_t colon = skip_ws(s, len, e);
                        /* A string at depth 1 followed by ':' is a member's key. */
                        if (depth == 1 && !found && colon < len && s[colon] == ':' && e - i - 2 == klen &&
                            memcmp(s + i + 1, key, klen) == 0) {
                                found = true;
                                start = skip_ws(s, len, colon + 1);
                        }
                        i = e - 1;
                } else if (c == '{' || c == '[')
                        depth++;
                else if ((c == ',' || c == '}' || c == ']') && depth == 1 && found && i >= start) {
                        size_t end = i;
                        while (end > start && is_ws(s[end - 1]))
                                end--;
                        if (end == start)
                                return -EBADMSG;
                        *ret_start = start;
                        *ret_end = end;
                        return 0;
                }
                if ((c == '}' || c == ']') && depth > 0)
                        depth--;
        }
        return found ? -EBADMSG : -ENOENT;
}

typedef struct Writer {
        FILE *f;
        unsigned depth;
        uint64_t objects; /* bit k: level k+1 is an object (else an array) */
} Writer;

static void put_newline(Writer *w) {
        static const char spaces[2 * JSON_TEXT_MAX_DEPTH] = { [0 ... 2 * JSON_TEXT_MAX_DEPTH - 1] = ' ' };
        if (!w->f)
                return;
        putc_unlocked('\n', w->f);
        fwrite_unlocked(spaces, 1, 2 * w->depth, w->f);
}

static void put(Writer *w, const char *s, size_t n) {
        if (w->f)
                fwrite_unlocked(s, 1, n, w->f);
}

/* A string s[i, e): copied as it is, after checking that it holds no
 * control character and is valid UTF-8 (what a terminal would act on). */
static int put_string(Writer *w, const char *s, size_t i, size_t e) {
        for (size_t k = i; k < e; k++)
                if ((unsigned char) s[k] < 0x20)
                        return -EBADMSG;
        if (!utf8_is_valid_n(s + i, e - i))
                return -EBADMSG;
        put(w, s + i, e - i);
        return 0;
}

/* '{' or '[' at s[i]: opened, or written as "{}" / "[]" when empty. Returns
 * the index of its last character. */
static int put_open(Writer *w, const char *s, size_t len, size_t i, size_t *ret_last) {
        char close = s[i] == '{' ? '}' : ']';
        size_t next = skip_ws(s, len, i + 1);
        if (next < len && s[next] == close) {
                put(w, s[i] == '{' ? "{}" : "[]", 2);
                *ret_last = next;
                return 0;
        }
        if (w->depth >= JSON_TEXT_MAX_DEPTH)
                return -EBADMSG;
        if (s[i] == '{')
                w->objects |= UINT64_C(1) << w->depth;
        else
                w->objects &= ~(UINT64_C(1) << w->depth);
        w->depth++;
        put(w, s + i, 1);
        put_newline(w);
        *ret_last = i;
        return 0;
}

static int put_close(Writer *w, char c) {
        if (w->depth == 0 || ((w->objects >> (w->depth - 1)) & 1) != (c == '}'))
                return -EBADMSG;
        w->depth--;
        put_newline(w);
        put(w, &c, 1);
        return 0;
}

static int write_text(const char *s, size_t len, FILE *f) {
        Writer w = { .f = f };
        int r = 0;
        for (size_t i = 0; r >= 0 && i < len; i++) {
                char c = s[i];
                if (is_ws(c))
                        continue;
                if (c == '"') {
                        size_t e = string_end(s, len, i);
                        r = e == 0 ? -EBADMSG : put_string(&w, s, i, e);
                        i = e - 1;
                } else if (c == '{' || c == '[')
                        r = put_open(&w, s, len, i, &i);
                else if (c == '}' || c == ']')
                        r = put_close(&w, c);
                else if (c == ',') {
                        put(&w, ",", 1);
                        put_newline(&w);
                } else if (c == ':')
                        put(&w, ": ", 2);
                else if (is_literal(c)) {
                        size_t e = i + 1;
                        while (e < len && is_literal(s[e]))
                                e++;
                        put(&w, s + i, e - i);
                        i = e - 1;
                } else
                        r = -EBADMSG;
        }
        if (r >= 0 && w.depth != 0)
                r = -EBADMSG;
        return r;
}

int json_text_write_indented(const char *s, size_t len, FILE *f) {
        int r = write_text(s, len, NULL);
        if (r < 0 || !f)
                return r;
        return write_text(s, len, f);
}
