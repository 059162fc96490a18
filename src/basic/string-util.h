/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
/* Returns a pointer past the prefix, or NULL. */
static inline const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}
bool endswith(const char *s, const char *suffix);

/* Valid UTF-8 (no overlongs, no surrogates, max U+10FFFF), len bytes. */
bool utf8_is_valid_n(const char *s, size_t len);
/* Encode the Unicode scalar value cp (<= U+10FFFF, not a surrogate) as
 * UTF-8 into out; returns the bytes written (1-4). */
size_t utf8_encode_unichar(uint32_t cp, char out[static 4]);
/* Bytes of the valid UTF-8 sequence at s (len bytes available), or 0. */
size_t utf8_sequence_len(const char *s, size_t len);
/* The longest prefix of s (len bytes) of at most max bytes that does not
 * end inside a UTF-8 sequence. */
size_t utf8_truncate_len(const char *s, size_t len, size_t max);

/* Text from a guest, an image or a registry on its way to a terminal or a
 * log line: every C0/C1 control character, DEL and invalid UTF-8 byte
 * becomes '?' (newline, tab and "\r\n" are kept when keep_newlines), in place.
 * Returns s. The one function for this: tables, show, errors, progress. */
char *string_make_printable(char *s, bool keep_newlines);
/* A copy of len bytes of untrusted text as valid UTF-8 without control
 * characters: invalid bytes become U+FFFD, controls '?'. NULL on ENOMEM. */
char *printable_strndup(const char *s, size_t len);
/* A copy of len bytes as valid UTF-8 for a JSON string: invalid bytes become
 * U+FFFD, everything else (controls, NUL) is kept; its length in *ret_len.
 * NULL on ENOMEM. */
char *utf8_strndup_valid(const char *s, size_t len, size_t *ret_len);

/* A VM/image/kernel/snapshot name is a hostname label (a VM's name is its
 * guest's hostname and <name>.vm): the one rule, in words for messages. */
#define NAME_RULE "1 to 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
bool name_is_valid(const char *s);

/* Parse a decimal unsigned integer with optional K/M/G/T suffix (binary units). */
int parse_size(const char *s, unsigned long long *ret);
int safe_atou64(const char *s, unsigned long long *ret);
int safe_atoi(const char *s, int *ret);

size_t strv_length(char *const *l);
/* argv as one POSIX shell command line, each argument single-quoted
 * ("echo" "a  b" "it's" -> 'echo' 'a  b' 'it'\''s'), for a program that
 * always hands its command to a shell, as ssh does. NULL on ENOMEM. */
char *shell_quote_argv(char *const *argv);
