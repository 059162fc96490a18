/* SPDX-License-Identifier: MIT */
#pragma once

/* A strict parser for the subset of TOML 1.0 that banger's config uses:
 * comments, bare and quoted keys, dotted keys, basic strings (escapes
 * \b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX) and literal strings, integers
 * (decimal with optional sign and _ separators, 0x/0o/0b), booleans,
 * [tables], [[arrays of tables]] and inline arrays of scalars (which may span
 * lines). Everything else (floats, dates, multi-line strings, inline tables,
 * nested arrays) is refused with a "not supported" error rather than guessed
 * at. Duplicate keys and redefined tables are errors, as TOML requires.
 *
 * Errors return -EBADMSG (or -ENOMEM, -E2BIG for limits) and record
 * "FILE:LINE:COLUMN: message" with error_setf(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define TOML_MAX_SIZE (1024U * 1024U) /* bytes of input */
#define TOML_MAX_KEY_LEN 256U         /* bytes of one key component */
#define TOML_MAX_DEPTH 16U            /* components of a table path + dotted key */
#define TOML_MAX_ENTRIES 1024U        /* keys in one table, items in one array */
#define TOML_MAX_VALUES 65536U        /* values in one document */

typedef enum TomlType {
        TOML_STRING,
        TOML_INTEGER,
        TOML_BOOLEAN,
        TOML_TABLE,
        TOML_ARRAY,
} TomlType;

typedef struct TomlValue TomlValue;

typedef struct TomlEntry {
        char *key;
        TomlValue *value;
} TomlEntry;

struct TomlValue {
        TomlType type;
        /* Where the value starts; for a table, the header that defined it (or
         * first named it); for an array-of-tables element, its [[header]]. */
        unsigned line, column;
        unsigned flags; /* parser bookkeeping (how a table was defined) */
        union {
                char *string;     /* valid UTF-8, no NUL */
                struct {
                        int64_t value;
                        unsigned radix; /* as written: 2, 8, 10 or 16 */
                } integer;
                bool boolean;
                struct {
                        TomlEntry *entries; /* in document order */
                        size_t n;
                } table;
                struct {
                        TomlValue **items;
                        size_t n;
                } array;
        };
};

/* Parse len bytes (NUL not required; embedded NULs are an error). filename
 * only prefixes error messages. On success *ret is the root table. */
int toml_parse(const char *data, size_t len, const char *filename, TomlValue **ret);

TomlValue *toml_free(TomlValue *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(TomlValue *, toml_free);
#define _cleanup_toml_free_ _cleanup_(toml_freep)

/* The value under key in a table, or NULL. */
const TomlValue *toml_table_get(const TomlValue *table, const char *key);

/* "string", "integer", "boolean", "table", "array". */
const char *toml_type_to_string(TomlType t);

/* Whether an array value came from [[header]]s rather than an inline [...]. */
bool toml_array_is_table_array(const TomlValue *v);
