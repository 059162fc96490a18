/* SPDX-License-Identifier: MIT */
#include "toml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "string-util.h"

/* How a table came to exist; TOML forbids defining one twice, and forbids
 * dotted keys from reopening a table that a [header] defined. */
enum {
        TABLE_IMPLICIT = 1U << 0, /* named as the parent in a header, not defined yet */
        TABLE_HEADER = 1U << 1,   /* defined by [header] (or is the root / a [[ ]] element) */
        TABLE_DOTTED = 1U << 2,   /* created by a dotted key */
        ARRAY_OF_TABLES = 1U << 3,
};

typedef struct Parser {
        const char *data;
        size_t len, pos;
        unsigned line;
        size_t line_start;
        const char *filename;
        unsigned n_values;
        TomlValue *root;
        TomlValue *current;
        size_t current_depth;
} Parser;

typedef struct Key {
        char *parts[TOML_MAX_DEPTH];
        size_t n;
        unsigned line, column;
} Key;

static void key_done(Key *k) {
        for (size_t i = 0; i < k->n; i++)
                free(k->parts[i]);
        k->n = 0;
}

static unsigned column(const Parser *p) {
        return (unsigned) (p->pos - p->line_start + 1);
}

static int parse_error_at(const Parser *p, unsigned line, unsigned col, int r, const char *fmt, ...) _printf_(5, 6);
static int parse_error_at(const Parser *p, unsigned line, unsigned col, int r, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return error_setf(r, "%s:%u:%u: %s", p->filename, line, col, msg);
}

#define parse_error(p, ...) parse_error_at((p), (p)->line, column(p), -EBADMSG, __VA_ARGS__)

static char peek_at(const Parser *p, size_t k) {
        return p->pos + k < p->len ? p->data[p->pos + k] : '\0';
}

static char peek(const Parser *p) {
        return peek_at(p, 0);
}

const char *toml_type_to_string(TomlType t) {
        static const char *const names[] = {
                [TOML_STRING] = "string", [TOML_INTEGER] = "integer", [TOML_BOOLEAN] = "boolean",
                [TOML_TABLE] = "table",   [TOML_ARRAY] = "array",
        };
        return (unsigned) t < ELEMENTSOF(names) ? names[t] : "unknown";
}

static const char *type_phrase(TomlType t) {
        switch (t) {
        case TOML_STRING:
                return "a string";
        case TOML_INTEGER:
                return "an integer";
        case TOML_BOOLEAN:
                return "a boolean";
        case TOML_TABLE:
                return "a table";
        case TOML_ARRAY:
                return "an array";
        }
        return "a value";
}

TomlValue *toml_free(TomlValue *v) {
        if (!v)
                return NULL;
        if (v->type == TOML_STRING)
                free(v->string);
        else if (v->type == TOML_TABLE) {
                for (size_t i = 0; i < v->table.n; i++) {
                        free(v->table.entries[i].key);
                        toml_free(v->table.entries[i].value);
                }
                free(v->table.entries);
        } else if (v->type == TOML_ARRAY) {
                for (size_t i = 0; i < v->array.n; i++)
                        toml_free(v->array.items[i]);
                free(v->array.items);
        }
        free(v);
        return NULL;
}

const TomlValue *toml_table_get(const TomlValue *table, const char *key) {
        if (!table || table->type != TOML_TABLE)
                return NULL;
        for (size_t i = 0; i < table->table.n; i++)
                if (streq(table->table.entries[i].key, key))
                        return table->table.entries[i].value;
        return NULL;
}

bool toml_array_is_table_array(const TomlValue *v) {
        return v && v->type == TOML_ARRAY && (v->flags & ARRAY_OF_TABLES);
}

static TomlValue *table_find(TomlValue *t, const char *key) {
        return (TomlValue *) toml_table_get(t, key);
}

static int value_new(Parser *p, TomlType type, unsigned line, unsigned col, TomlValue **ret) {
        if (p->n_values >= TOML_MAX_VALUES)
                return parse_error_at(p, line, col, -E2BIG, "too many values (limit %u)", TOML_MAX_VALUES);
        TomlValue *v = calloc(1, sizeof(TomlValue));
        if (!v)
                return -ENOMEM;
        p->n_values++;
        v->type = type;
        v->line = line;
        v->column = col;
        *ret = v;
        return 0;
}

/* Room for one more after n items of size bytes: refused past
 * TOML_MAX_ENTRIES ("too many <what>"), else grown in powers of two (n is a
 * power of two exactly when the array is full). */
static int make_room(Parser *p, void **items, size_t n, size_t size, const TomlValue *value, const char *what) {
        if (n >= TOML_MAX_ENTRIES)
                return parse_error_at(p, value->line, value->column, -E2BIG, "too many %s (limit %u)", what,
                                      TOML_MAX_ENTRIES);
        if ((n & (n - 1)) != 0)
                return 0;
        void *a = reallocarray(*items, n ? n * 2 : 4, size);
        if (!a)
                return -ENOMEM;
        *items = a;
        return 0;
}

/* Takes ownership of key and value, also on failure. */
static int table_add(Parser *p, TomlValue *t, char *key, TomlValue *value) {
        int r = make_room(p, (void **) &t->table.entries, t->table.n, sizeof(TomlEntry), value, "keys in one table");
        if (r < 0) {
                free(key);
                toml_free(value);
                return r;
        }
        t->table.entries[t->table.n++] = (TomlEntry){ .key = key, .value = value };
        return 0;
}

/* Takes ownership of value, also on failure. */
static int array_append(Parser *p, TomlValue *a, TomlValue *value) {
        int r = make_room(p, (void **) &a->array.items, a->array.n, sizeof(TomlValue *), value, "array items");
        if (r < 0) {
                toml_free(value);
                return r;
        }
        a->array.items[a->array.n++] = value;
        return 0;
}

/* A new table or array under name in parent, at the key's position. */
static int add_container(Parser *p, TomlValue *parent, const char *name, TomlType type, unsigned flags, const Key *k,
                         TomlValue **ret) {
        char *key = strdup(name);
        TomlValue *v = NULL;
        int r = key ? value_new(p, type, k->line, k->column, &v) : -ENOMEM;
        if (r < 0) {
                free(key);
                return r;
        }
        v->flags = flags;
        r = table_add(p, parent, key, v);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

/* Reject what the parser cannot handle safely before it runs: control
 * characters (TOML allows only tab, LF and CRLF), NUL bytes (strings are
 * C strings) and invalid UTF-8. Reporting the exact line beats a vague
 * error later. */
static int check_bytes(Parser *p) {
        const unsigned char *s = (const unsigned char *) p->data;
        unsigned line = 1;
        size_t line_start = 0;
        for (size_t i = 0; i < p->len;) {
                unsigned char c = s[i];
                unsigned col = (unsigned) (i - line_start + 1);
                size_t n = 1;
                if (c == '\n') {
                        line++;
                        line_start = i + 1;
                } else if (c == '\r') {
                        if (i + 1 >= p->len || s[i + 1] != '\n')
                                return parse_error_at(p, line, col, -EBADMSG,
                                                      "carriage return not followed by newline");
                } else if (c == 0x7f || (c < 0x20 && c != '\t'))
                        return parse_error_at(p, line, col, -EBADMSG, "control character U+%04X not allowed", c);
                else if (c >= 0x80) {
                        n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
                        if (c < 0xC2 || c > 0xF4 || i + n > p->len || !utf8_is_valid_n((const char *) s + i, n))
                                return parse_error_at(p, line, col, -EBADMSG, "invalid UTF-8");
                }
                i += n;
        }
        return 0;
}

static void skip_ws(Parser *p) {
        while (peek(p) == ' ' || peek(p) == '\t')
                p->pos++;
}

static void skip_comment(Parser *p) {
        if (peek(p) != '#')
                return;
        while (p->pos < p->len && peek(p) != '\n' && peek(p) != '\r')
                p->pos++;
}

static bool at_eol(const Parser *p) {
        return p->pos >= p->len || peek(p) == '\n' || peek(p) == '\r';
}

static void eat_eol(Parser *p) {
        if (peek(p) == '\r')
                p->pos++;
        if (peek(p) == '\n') {
                p->pos++;
                p->line++;
                p->line_start = p->pos;
        }
}

/* Whitespace, comments and newlines: allowed between inline array items. */
static void skip_blank(Parser *p) {
        for (;;) {
                skip_ws(p);
                skip_comment(p);
                if (p->pos >= p->len || !at_eol(p))
                        return;
                eat_eol(p);
        }
}

static int expect_eol(Parser *p, const char *after) {
        skip_ws(p);
        skip_comment(p);
        if (!at_eol(p))
                return parse_error(p, "unexpected '%c' after %s, expected end of line", peek(p), after);
        eat_eol(p);
        return 0;
}

typedef struct Buf {
        char *s;
        size_t n, cap;
} Buf;

static void buf_done(Buf *b) {
        free(b->s);
}

static int buf_put(Buf *b, const char *s, size_t n) {
        if (b->n + n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, b->n + n + 1);
                cap = MAX(cap, (size_t) 32);
                char *t = realloc(b->s, cap);
                if (!t)
                        return -ENOMEM;
                b->s = t;
                b->cap = cap;
        }
        memcpy(b->s + b->n, s, n);
        b->n += n;
        b->s[b->n] = '\0';
        return 0;
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* At the character after "\u" or "\U". */
static int parse_unicode_escape(Parser *p, size_t digits, Buf *b) {
        unsigned col = column(p) - 2;
        uint32_t cp = 0;
        for (size_t i = 0; i < digits; i++) {
                int h = hex_value(peek(p));
                if (h < 0)
                        return parse_error_at(p, p->line, col, -EBADMSG, "\\%c escape needs %zu hex digits",
                                              digits == 4 ? 'u' : 'U', digits);
                cp = (cp << 4) | (uint32_t) h;
                p->pos++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return parse_error_at(p, p->line, col, -EBADMSG, "escape \\U%08X is not a Unicode scalar value",
                                      (unsigned) cp);
        if (cp == 0)
                return parse_error_at(p, p->line, col, -EBADMSG, "NUL characters in strings are not supported");
        char out[4];
        return buf_put(b, out, utf8_encode_unichar(cp, out));
}

static int parse_escape(Parser *p, Buf *b) {
        static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
        p->pos++; /* the backslash */
        char c = peek(p);
        const char *k = c ? strchr(from, c) : NULL;
        if (k) {
                p->pos++;
                return buf_put(b, &to[k - from], 1);
        }
        if (c == 'u' || c == 'U') {
                p->pos++;
                return parse_unicode_escape(p, c == 'u' ? 4 : 8, b);
        }
        if (at_eol(p))
                return parse_error(p, "unterminated string");
        return parse_error_at(p, p->line, column(p) - 1, -EBADMSG, "invalid escape sequence '\\%c'", c);
}

/* A basic "string" or a literal 'string', on one line. */
static int parse_string(Parser *p, size_t max, char **ret) {
        char quote = peek(p);
        unsigned col = column(p);
        if (peek_at(p, 1) == quote && peek_at(p, 2) == quote)
                return parse_error(p, "multi-line strings are not supported");
        p->pos++;
        _cleanup_(buf_done) Buf b = {};
        int r = buf_put(&b, "", 0);
        if (r < 0)
                return r;
        for (;;) {
                char c = peek(p);
                if (at_eol(p))
                        return parse_error_at(p, p->line, col, -EBADMSG, "unterminated string");
                if (c == quote) {
                        p->pos++;
                        break;
                }
                if (c == '\\' && quote == '"')
                        r = parse_escape(p, &b);
                else {
                        r = buf_put(&b, &c, 1);
                        p->pos++;
                }
                if (r < 0)
                        return r;
                if (b.n > max)
                        return parse_error_at(p, p->line, col, -E2BIG, "string longer than %zu bytes", max);
        }
        /* Escapes can only produce valid UTF-8 and the input was checked. */
        *ret = TAKE_PTR(b.s);
        return 0;
}

static bool is_bare_key_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int parse_simple_key(Parser *p, char **ret) {
        char c = peek(p);
        if (c == '"' || c == '\'')
                return parse_string(p, TOML_MAX_KEY_LEN, ret);
        size_t start = p->pos;
        while (is_bare_key_char(peek(p)))
                p->pos++;
        size_t n = p->pos - start;
        if (n == 0) {
                if (at_eol(p))
                        return parse_error(p, "expected a key");
                return parse_error(p, "unexpected '%c', expected a key", c);
        }
        if (n > TOML_MAX_KEY_LEN)
                return parse_error_at(p, p->line, column(p) - (unsigned) n, -E2BIG, "key longer than %u bytes",
                                      TOML_MAX_KEY_LEN);
        char *s = strndup(p->data + start, n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* key ( '.' key )*, with optional whitespace around the dots. */
static int parse_key(Parser *p, size_t max_parts, Key *k) {
        k->line = p->line;
        k->column = column(p);
        for (;;) {
                skip_ws(p);
                if (k->n >= max_parts)
                        return parse_error_at(p, p->line, column(p), -E2BIG, "key nested deeper than %u levels",
                                              TOML_MAX_DEPTH);
                int r = parse_simple_key(p, &k->parts[k->n]);
                if (r < 0)
                        return r;
                k->n++;
                skip_ws(p);
                if (peek(p) != '.')
                        return 0;
                p->pos++;
        }
}

static int digit_value(char c, unsigned radix) {
        int v = hex_value(c);
        return v >= 0 && (unsigned) v < radix ? v : -1;
}

/* After the digits: a '.', exponent, or date/time separator means a type we
 * do not support; say so instead of "invalid integer". */
static int check_integer_end(Parser *p, unsigned col) {
        char c = peek(p);
        if (c == '.' || c == 'e' || c == 'E')
                return parse_error_at(p, p->line, col, -EBADMSG, "floating-point numbers are not supported");
        if (c == '-' || c == ':')
                return parse_error_at(p, p->line, col, -EBADMSG, "dates and times are not supported");
        if (is_bare_key_char(c))
                return parse_error_at(p, p->line, col, -EBADMSG, "invalid integer");
        return 0;
}

/* Digits in radix with single '_' separators between digits. */
static int parse_digits(Parser *p, unsigned radix, uint64_t limit, unsigned col, uint64_t *ret) {
        uint64_t acc = 0;
        bool any = false;
        for (;;) {
                char c = peek(p);
                if (c == '_') {
                        if (!any || digit_value(peek_at(p, 1), radix) < 0)
                                return parse_error(p, "'_' must sit between two digits");
                        p->pos++;
                        continue;
                }
                int d = digit_value(c, radix);
                if (d < 0)
                        break;
                if (acc > (limit - (uint64_t) d) / radix)
                        return parse_error_at(p, p->line, col, -ERANGE, "integer out of range");
                acc = acc * radix + (uint64_t) d;
                any = true;
                p->pos++;
        }
        if (!any)
                return parse_error_at(p, p->line, col, -EBADMSG, "invalid integer");
        *ret = acc;
        return 0;
}

static int parse_integer(Parser *p, TomlValue **ret) {
        unsigned col = column(p);
        char sign = 0;
        if (peek(p) == '+' || peek(p) == '-')
                sign = p->data[p->pos++];
        if (peek(p) == 'i' || peek(p) == 'n')
                return parse_error_at(p, p->line, col, -EBADMSG, "floating-point numbers are not supported");

        unsigned radix = 10;
        char prefix = peek(p) == '0' ? peek_at(p, 1) : 0;
        if (prefix == 'x' || prefix == 'o' || prefix == 'b') {
                if (sign)
                        return parse_error_at(p, p->line, col, -EBADMSG, "hex, octal and binary integers take no sign");
                radix = prefix == 'x' ? 16 : prefix == 'o' ? 8 : 2;
                p->pos += 2;
        } else if (peek(p) == '0' && (peek_at(p, 1) >= '0' && peek_at(p, 1) <= '9')) {
                /* Could be a date or time; otherwise a leading zero. */
                size_t save = p->pos;
                while (peek(p) >= '0' && peek(p) <= '9')
                        p->pos++;
                int r = check_integer_end(p, col);
                p->pos = save;
                return r < 0 ? r : parse_error_at(p, p->line, col, -EBADMSG, "leading zeros are not allowed");
        }

        uint64_t limit = sign == '-' ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
        uint64_t acc = 0;
        int r = parse_digits(p, radix, limit, col, &acc);
        if (r < 0)
                return r;
        r = check_integer_end(p, col);
        if (r < 0)
                return r;

        TomlValue *v;
        r = value_new(p, TOML_INTEGER, p->line, col, &v);
        if (r < 0)
                return r;
        if (sign == '-')
                v->integer.value = acc == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) acc;
        else
                v->integer.value = (int64_t) acc;
        v->integer.radix = radix;
        *ret = v;
        return 0;
}

static bool at_word(const Parser *p, const char *w) {
        size_t n = strlen(w);
        if (p->pos + n > p->len || memcmp(p->data + p->pos, w, n) != 0)
                return false;
        return !is_bare_key_char(peek_at(p, n));
}

static int parse_boolean(Parser *p, TomlValue **ret) {
        bool b;
        if (at_word(p, "true"))
                b = true;
        else if (at_word(p, "false"))
                b = false;
        else
                return parse_error(p, "invalid value");
        int r = value_new(p, TOML_BOOLEAN, p->line, column(p), ret);
        if (r < 0)
                return r;
        (*ret)->boolean = b;
        p->pos += b ? 4 : 5;
        return 0;
}

static int parse_value(Parser *p, bool in_array, TomlValue **ret);

/* An inline array of scalars; may span lines and hold comments. */
static int parse_array(Parser *p, TomlValue **ret) {
        unsigned line = p->line, col = column(p);
        _cleanup_toml_free_ TomlValue *a = NULL;
        int r = value_new(p, TOML_ARRAY, line, col, &a);
        if (r < 0)
                return r;
        p->pos++;
        for (;;) {
                skip_blank(p);
                if (p->pos >= p->len)
                        return parse_error_at(p, line, col, -EBADMSG, "unterminated array");
                if (peek(p) == ']')
                        break;
                TomlValue *item;
                r = parse_value(p, true, &item);
                if (r < 0)
                        return r;
                r = array_append(p, a, item);
                if (r < 0)
                        return r;
                skip_blank(p);
                if (peek(p) == ',') {
                        p->pos++;
                        continue;
                }
                if (peek(p) == ']')
                        break;
                if (p->pos >= p->len)
                        return parse_error_at(p, line, col, -EBADMSG, "unterminated array");
                return parse_error(p, "unexpected '%c' in array, expected ',' or ']'", peek(p));
        }
        p->pos++;
        *ret = TAKE_PTR(a);
        return 0;
}

static int parse_value(Parser *p, bool in_array, TomlValue **ret) {
        char c = peek(p);
        if (c == '"' || c == '\'') {
                unsigned line = p->line, col = column(p);
                _cleanup_free_ char *s = NULL;
                int r = parse_string(p, TOML_MAX_SIZE, &s);
                if (r < 0)
                        return r;
                r = value_new(p, TOML_STRING, line, col, ret);
                if (r < 0)
                        return r;
                (*ret)->string = TAKE_PTR(s);
                return 0;
        }
        if (c == '[')
                return in_array ? parse_error(p, "nested arrays are not supported") : parse_array(p, ret);
        if (c == '{')
                return parse_error(p, "inline tables are not supported");
        if (c == '+' || c == '-' || (c >= '0' && c <= '9') || at_word(p, "inf") || at_word(p, "nan"))
                return parse_integer(p, ret);
        if (at_eol(p))
                return parse_error(p, "missing value");
        return parse_boolean(p, ret);
}

static int new_table(Parser *p, unsigned flags, unsigned line, unsigned col, TomlValue **ret) {
        int r = value_new(p, TOML_TABLE, line, col, ret);
        if (r < 0)
                return r;
        (*ret)->flags = flags;
        return 0;
}

/* Walk a key's leading parts from t to the table that holds its last part,
 * creating the tables missing on the way. A [header] walks from the root,
 * creates implicit tables and descends into an array of tables' last
 * element; a dotted key walks from the current table and may only extend
 * tables that dotted keys created. */
static int key_parent(Parser *p, TomlValue *t, const Key *k, bool dotted, TomlValue **ret) {
        for (size_t i = 0; i + 1 < k->n; i++) {
                TomlValue *v = table_find(t, k->parts[i]);
                if (!v) {
                        int r = add_container(p, t, k->parts[i], TOML_TABLE, dotted ? TABLE_DOTTED : TABLE_IMPLICIT, k,
                                              &v);
                        if (r < 0)
                                return r;
                } else if (dotted && (v->type != TOML_TABLE || !(v->flags & TABLE_DOTTED)))
                        return parse_error_at(p, k->line, k->column, -EBADMSG,
                                              "cannot add keys to '%s' with a dotted key: it is defined on line %u",
                                              k->parts[i], v->line);
                else if (!dotted && toml_array_is_table_array(v))
                        v = v->array.items[v->array.n - 1];
                else if (v->type != TOML_TABLE)
                        return parse_error_at(p, k->line, k->column, -EBADMSG,
                                              "key '%s' is already %s (line %u), not a table", k->parts[i],
                                              type_phrase(v->type), v->line);
                t = v;
        }
        *ret = t;
        return 0;
}

static int define_table(Parser *p, TomlValue *parent, const Key *k) {
        const char *name = k->parts[k->n - 1];
        TomlValue *v = table_find(parent, name);
        if (v) {
                if (v->type != TOML_TABLE || !(v->flags & TABLE_IMPLICIT))
                        return parse_error_at(p, k->line, k->column, -EBADMSG, "'%s' is already defined (line %u)",
                                              name, v->line);
                v->flags = TABLE_HEADER;
                v->line = k->line;
                v->column = k->column;
                p->current = v;
                return 0;
        }
        int r = add_container(p, parent, name, TOML_TABLE, TABLE_HEADER, k, &v);
        if (r < 0)
                return r;
        p->current = v;
        return 0;
}

static int append_table(Parser *p, TomlValue *parent, const Key *k) {
        const char *name = k->parts[k->n - 1];
        TomlValue *a = table_find(parent, name);
        if (a && !toml_array_is_table_array(a))
                return parse_error_at(p, k->line, k->column, -EBADMSG, "'%s' is already defined as %s (line %u)", name,
                                      type_phrase(a->type), a->line);
        if (!a) {
                int r = add_container(p, parent, name, TOML_ARRAY, ARRAY_OF_TABLES, k, &a);
                if (r < 0)
                        return r;
        }
        TomlValue *t;
        int r = new_table(p, TABLE_HEADER, k->line, k->column, &t);
        if (r < 0)
                return r;
        r = array_append(p, a, t);
        if (r < 0)
                return r;
        p->current = t;
        return 0;
}

/* [a.b] or [[a.b]] */
static int parse_header(Parser *p) {
        bool is_array = peek_at(p, 1) == '[';
        p->pos += is_array ? 2 : 1;
        _cleanup_(key_done) Key k = {};
        int r = parse_key(p, TOML_MAX_DEPTH, &k);
        if (r < 0)
                return r;
        if (peek(p) != ']' || (is_array && peek_at(p, 1) != ']'))
                return parse_error(p, "expected '%s' to close the table header", is_array ? "]]" : "]");
        p->pos += is_array ? 2 : 1;

        TomlValue *parent = NULL;
        r = key_parent(p, p->root, &k, false, &parent);
        if (r < 0)
                return r;
        r = is_array ? append_table(p, parent, &k) : define_table(p, parent, &k);
        if (r < 0)
                return r;
        p->current_depth = k.n;
        return expect_eol(p, "table header");
}

static int parse_keyval(Parser *p) {
        _cleanup_(key_done) Key k = {};
        int r = parse_key(p, TOML_MAX_DEPTH - p->current_depth, &k);
        if (r < 0)
                return r;
        if (peek(p) != '=') {
                if (at_eol(p) || peek(p) == '#')
                        return parse_error(p, "expected '=' after key");
                return parse_error(p, "unexpected '%c' after key, expected '='", peek(p));
        }
        p->pos++;
        skip_ws(p);

        TomlValue *parent = NULL;
        r = key_parent(p, p->current, &k, true, &parent);
        if (r < 0)
                return r;
        const char *name = k.parts[k.n - 1];
        const TomlValue *old = table_find(parent, name);
        if (old)
                return parse_error_at(p, k.line, k.column, -EBADMSG, "duplicate key '%s' (first defined on line %u)",
                                      name, old->line);

        TomlValue *v;
        r = parse_value(p, false, &v);
        if (r < 0)
                return r;
        /* Report the key's position for values too: it is what the user wrote first. */
        v->line = k.line;
        v->column = k.column;
        r = table_add(p, parent, TAKE_PTR(k.parts[k.n - 1]), v);
        k.n--;
        if (r < 0)
                return r;
        return expect_eol(p, "value");
}

int toml_parse(const char *data, size_t len, const char *filename, TomlValue **ret) {
        Parser p = { .data = data, .len = len, .line = 1, .filename = filename ?: "<input>" };
        if (len > TOML_MAX_SIZE)
                return error_setf(-E2BIG, "%s: larger than %u bytes", p.filename, TOML_MAX_SIZE);
        if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
                p.pos = p.line_start = 3;
        int r = check_bytes(&p);
        if (r < 0)
                return r;

        _cleanup_toml_free_ TomlValue *root = NULL;
        r = new_table(&p, TABLE_HEADER, 1, 1, &root);
        if (r < 0)
                return r;
        p.root = p.current = root;
        while (p.pos < p.len) {
                skip_ws(&p);
                skip_comment(&p);
                if (at_eol(&p)) {
                        eat_eol(&p);
                        continue;
                }
                r = peek(&p) == '[' ? parse_header(&p) : parse_keyval(&p);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(root);
        return 0;
}
