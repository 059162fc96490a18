/* SPDX-License-Identifier: MIT */
#pragma once

/* JSON text handled as text, never as values: where a member of a message
 * lies, and a document written in jansson's indented layout. For a large
 * reply the CLI prints as it came (vm list --json), where a parse into a
 * jansson tree and a dump of it cost more than the whole rest of the
 * command. Neither decodes a string or a number: they are copied byte for
 * byte, escapes included. */

#include <stddef.h>
#include <stdio.h>

/* The value of the top-level object member key in the JSON text s: its
 * bytes are s[*ret_start, *ret_end). A key written with escapes is not
 * recognised. -ENOENT when s has no such member, -EBADMSG when s ends
 * inside a string or a value. */
int json_text_member_span(const char *s, size_t len, const char *key, size_t *ret_start, size_t *ret_end);

/* Write the JSON text s to f (NULL: check only) as jansson's
 * json_dumpf(JSON_INDENT(2)) writes the same document when s is what
 * jansson wrote (compact or indented): one member or element a line, two
 * spaces a level, ": " after a key, "{}" and "[]" when empty. Whitespace
 * outside strings is dropped. -EBADMSG, before anything is written when f
 * is NULL, when s is not of JSON's shape: brackets that do not match, a
 * string not closed, a control character or invalid UTF-8 in a string,
 * characters outside strings that no JSON literal or number holds, nesting
 * deeper than 64. Check first, then write: a text that fails the check
 * writes nothing. */
int json_text_write_indented(const char *s, size_t len, FILE *f);
