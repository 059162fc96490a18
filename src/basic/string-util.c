/* SPDX-License-Identifier: MIT */
#include "string-util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

bool endswith(const char *s, const char *suffix) {
        size_t ls = strlen(s), lx = strlen(suffix);
        return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

size_t utf8_encode_unichar(uint32_t cp, char out[static 4]) {
        if (cp < 0x80) {
                out[0] = (char) cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char) (0xC0 | (cp >> 6));
                out[1] = (char) (0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char) (0xE0 | (cp >> 12));
                out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
                out[2] = (char) (0x80 | (cp & 0x3F));
                return 3;
        }
        out[0] = (char) (0xF0 | (cp >> 18));
        out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char) (0x80 | (cp & 0x3F));
        return 4;
}

/* Length of the valid UTF-8 sequence at s (at most len bytes), 0 when the
 * bytes there are not one (overlong, surrogate, past U+10FFFF, cut short). */
size_t utf8_sequence_len(const char *str, size_t len) {
        const unsigned char *s = (const unsigned char *) str;
        if (len == 0)
                return 0;
        unsigned char c = s[0];
        if (c < 0x80)
                return 1;
        size_t n;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
                n = 2;
                cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
                n = 3;
                cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
                n = 4;
                cp = c & 0x07;
        } else
                return 0;
        if (n > len)
                return 0;
        for (size_t k = 1; k < n; k++) {
                if ((s[k] & 0xC0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[k] & 0x3F);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
                return 0;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        return n;
}

bool utf8_is_valid_n(const char *s, size_t len) {
        for (size_t i = 0; i < len;) {
                size_t n = utf8_sequence_len(s + i, len - i);
                if (n == 0)
                        return false;
                i += n;
        }
        return true;
}

size_t utf8_truncate_len(const char *s, size_t len, size_t max) {
        if (len <= max)
                return len;
        size_t l = max;
        /* Back up over continuation bytes to the start of the cut sequence. */
        while (l > 0 && ((unsigned char) s[l] & 0xC0) == 0x80 && max - l < 4)
                l--;
        return l;
}

/* A C0 or C1 control, or DEL: what a terminal acts on instead of showing. */
static bool is_control(uint32_t cp) {
        return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

static uint32_t utf8_decode(const char *str, size_t n) {
        const unsigned char *s = (const unsigned char *) str;
        static const unsigned char lead_mask[] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
        uint32_t cp = s[0] & lead_mask[n];
        for (size_t k = 1; k < n; k++)
                cp = (cp << 6) | (s[k] & 0x3F);
        return cp;
}

char *string_make_printable(char *s, bool keep_newlines) {
        if (!s)
                return NULL;
        size_t len = strlen(s), o = 0;
        for (size_t i = 0; i < len;) {
                size_t n = utf8_sequence_len(s + i, len - i);
                uint32_t cp = n ? utf8_decode(s + i, n) : 0xFFFD;
                /* A serial console ends its lines with "\r\n": keep that pair. */
                bool keep = keep_newlines && (cp == '\n' || cp == '\t' || (cp == '\r' && s[i + 1] == '\n'));
                if (n == 0 || (is_control(cp) && !keep)) {
                        s[o++] = '?';
                        i += n ? n : 1;
                        continue;
                }
                memmove(s + o, s + i, n);
                o += n;
                i += n;
        }
        s[o] = '\0';
        return s;
}

char *printable_strndup(const char *s, size_t len) {
        size_t l;
        char *out = utf8_strndup_valid(s, len, &l);
        if (!out)
                return NULL;
        /* NUL is a control too: '?' like the others, not the end. */
        for (size_t i = 0; i < l; i++)
                if (out[i] == '\0')
                        out[i] = '?';
        return string_make_printable(out, false);
}

char *utf8_strndup_valid(const char *s, size_t len, size_t *ret_len) {
        if (len > (SIZE_MAX - 1) / 3)
                return NULL;
        char *out = malloc(len * 3 + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        for (size_t i = 0; i < len;) {
                size_t n = utf8_sequence_len(s + i, len - i);
                if (n == 0) {
                        o += utf8_encode_unichar(0xFFFD, out + o);
                        i++;
                        continue;
                }
                memcpy(out + o, s + i, n);
                o += n;
                i += n;
        }
        out[o] = '\0';
        *ret_len = o;
        return out;
}

bool name_is_valid(const char *s) {
        if (!s || !*s)
                return false;
        size_t l = strlen(s);
        if (l > 63)
                return false;
        if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
                return false;
        for (size_t i = 1; i < l; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return s[l - 1] != '-';
}

/* The decimal number s starts with (no sign, no space): *ret and *ret_end
 * past its digits. */
static int parse_u64_prefix(const char *s, unsigned long long *ret, const char **ret_end) {
        if (!s || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno)
                return -errno;
        *ret = v;
        *ret_end = end;
        return 0;
}

int safe_atou64(const char *s, unsigned long long *ret) {
        unsigned long long v;
        const char *end;
        int r = parse_u64_prefix(s, &v, &end);
        if (r < 0)
                return r;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int safe_atoi(const char *s, int *ret) {
        if (!s || !*s)
                return -EINVAL;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno)
                return -errno;
        if (*end || v < INT_MIN || v > INT_MAX)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

int parse_size(const char *s, unsigned long long *ret) {
        unsigned long long v;
        const char *end;
        int r = parse_u64_prefix(s, &v, &end);
        if (r < 0)
                return r;
        unsigned shift = 0;
        switch (*end) {
        case '\0':
                break;
        case 'k':
        case 'K':
                shift = 10;
                break;
        case 'm':
        case 'M':
                shift = 20;
                break;
        case 'g':
        case 'G':
                shift = 30;
                break;
        case 't':
        case 'T':
                shift = 40;
                break;
        default:
                return -EINVAL;
        }
        if (*end) {
                end++;
                if (*end == 'i')
                        end++;
                if (*end == 'B' || *end == 'b')
                        end++;
                if (*end)
                        return -EINVAL;
        }
        if (shift && v > (ULLONG_MAX >> shift))
                return -ERANGE;
        *ret = v << shift;
        return 0;
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        if (l)
                while (l[n])
                        n++;
        return n;
}

char *shell_quote_argv(char *const *argv) {
        size_t len = 1;
        for (char *const *a = argv; a && *a; a++)
                for (const char *c = *a;; c++) {
                        len += *c == '\'' ? 4 : 1;
                        if (!*c) {
                                len += 3; /* quotes and a space */
                                break;
                        }
                }
        char *out = malloc(len), *o = out;
        if (!out)
                return NULL;
        for (char *const *a = argv; a && *a; a++) {
                if (a != argv)
                        *o++ = ' ';
                *o++ = '\'';
                for (const char *c = *a; *c; c++) {
                        if (*c == '\'') {
                                memcpy(o, "'\\''", 4);
                                o += 4;
                        } else
                                *o++ = *c;
                }
                *o++ = '\'';
        }
        *o = '\0';
        return out;
}
