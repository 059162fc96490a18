/* SPDX-License-Identifier: MIT */
#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "string-util.h"

static bool strbuf_reserve(StrBuf *b, size_t extra) {
        if (b->oom)
                return false;
        if (b->len + extra + 1 <= b->cap)
                return true;
        size_t cap = MAX(b->cap * 2, b->len + extra + 1);
        cap = MAX(cap, (size_t) 256);
        char *n = realloc(b->data, cap);
        if (!n) {
                b->oom = true;
                return false;
        }
        b->data = n;
        b->cap = cap;
        return true;
}

void strbuf_append(StrBuf *b, const char *s, size_t len) {
        if (!strbuf_reserve(b, len))
                return;
        memcpy(b->data + b->len, s, len);
        b->len += len;
        b->data[b->len] = 0;
}

void strbuf_puts(StrBuf *b, const char *s) {
        strbuf_append(b, s, strlen(s));
}

void strbuf_printf(StrBuf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0 || !strbuf_reserve(b, (size_t) n))
                return;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
}

void strbuf_json_string(StrBuf *b, const char *s) {
        /* Process names and such are arbitrary bytes; JSON needs valid UTF-8,
         * so anything that is not is escaped byte by byte. */
        bool valid = utf8_is_valid_n(s, strlen(s));
        strbuf_puts(b, "\"");
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        strbuf_printf(b, "\\%c", *p);
                else if (*p < 0x20 || *p == 0x7f || (!valid && *p >= 0x80))
                        strbuf_printf(b, "\\u%04x", *p);
                else
                        strbuf_append(b, (const char *) p, 1);
        }
        strbuf_puts(b, "\"");
}

int strbuf_finish(StrBuf *b, char **ret, size_t *ret_len) {
        if (!strbuf_reserve(b, 0)) {
                strbuf_done(b);
                return -ENOMEM;
        }
        *ret = b->data;
        if (ret_len)
                *ret_len = b->len;
        *b = (StrBuf){};
        return 0;
}

void strbuf_done(StrBuf *b) {
        free(b->data);
        *b = (StrBuf){};
}
