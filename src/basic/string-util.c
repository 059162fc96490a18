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

bool utf8_is_valid_n(const char *str, size_t len) {
        const unsigned char *s = (const unsigned char *) str;
        size_t i = 0;
        while (i < len) {
                unsigned char c = s[i];
                if (c < 0x80) {
                        i++;
                        continue;
                }
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
                        return false;
                if (i + n > len)
                        return false;
                for (size_t k = 1; k < n; k++) {
                        if ((s[i + k] & 0xC0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3F);
                }
                if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
                        return false;
                if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                        return false;
                i += n;
        }
        return true;
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
