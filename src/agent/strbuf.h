/* SPDX-License-Identifier: MIT */
#pragma once

/* A growable byte buffer for building JSON replies in the agent (which has
 * no JSON library). Allocation failures are sticky: once one happens every
 * later append is a no-op and strbuf_finish() reports -ENOMEM. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

typedef struct StrBuf {
        char *data;
        size_t len, cap;
        bool oom;
} StrBuf;

void strbuf_append(StrBuf *b, const char *s, size_t len);
void strbuf_puts(StrBuf *b, const char *s);
void strbuf_printf(StrBuf *b, const char *fmt, ...) _printf_(2, 3);
/* Append s as a quoted JSON string (control bytes and non-UTF-8 escaped as \u00XX). */
void strbuf_json_string(StrBuf *b, const char *s);
/* 0 with the NUL-terminated text moved to *ret, or -ENOMEM. */
int strbuf_finish(StrBuf *b, char **ret, size_t *ret_len);
void strbuf_done(StrBuf *b);
