/* SPDX-License-Identifier: MIT */
#pragma once

/* Presentation helpers for the CLI: aligned tables, human sizes and times,
 * and live progress for long daemon calls. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* "512M", "1.0G", "8.0G": binary units, one decimal from G up. */
char *format_size(char *buf, size_t len, uint64_t bytes);

/* "3m ago", "2h ago", "5d ago" for an RFC 3339 UTC timestamp; the input
 * itself when it cannot be parsed. */
char *format_ago(char *buf, size_t len, const char *rfc3339);

/* String value of key, or def when missing/null/not a string. */
const char *json_str(json_t *o, const char *key, const char *def);

/* format_size() of the integer member key of o (bytes). */
char *format_json_size(char *buf, size_t len, json_t *o, const char *key);
/* Clean every string in j, recursively, of what a terminal would act on
 * (string_make_printable): for a daemon result about to be printed as
 * text, since its strings may come from a guest, an image or a registry. */
void json_make_printable(json_t *j);

/* A table: headers, then rows of the same number of cells; columns are as
 * wide as their widest cell, separated by three spaces. */
typedef struct Table Table;
Table *table_new(size_t n_cols, const char *const *headers);
int table_add_row(Table *t, const char *const *cells);
/* Room for n_rows rows (the headers' included) before they are added. */
int table_reserve(Table *t, size_t n_rows);
void table_print(Table *t, FILE *f);
Table *table_free(Table *t);
static inline void table_freep(Table **t) {
        table_free(*t);
}
#define _cleanup_table_ __attribute__((cleanup(table_freep)))

/* Print the JSON array items as a table under headers, one row per item:
 * fill sets the n_cols cells of row from item, formatting into buf (one
 * TABLE_CELL_MAX-byte buffer per column) where a cell needs it. */
#define TABLE_COLS_MAX 16
#define TABLE_CELL_MAX 32
typedef void (*TableFillFn)(json_t *item, const char **row, char (*buf)[TABLE_CELL_MAX]);
void table_print_items(json_t *items, const char *const *headers, size_t n_cols, TableFillFn fill);

/* Live progress for a daemon call, used as its RpcNotifyFn. On a terminal
 * (stderr) one status line is redrawn with a spinner and the elapsed time
 * (and a bar with bytes, rate and time left when the event carries bytes
 * and total), finished stages are left as lines; otherwise each event is a
 * plain "stage: message" line on stderr; in JSON mode each event is one
 * JSON line on stdout. */
typedef struct Progress Progress;
int progress_new(bool json, Progress **ret);
void progress_notify(const char *method, json_t *params, void *userdata);
/* Stop redrawing and clear the status line; the last stage is printed as
 * finished when ok. Safe to call twice. */
void progress_end(Progress *p, bool ok);
/* The VM id the events named, if any (valid until progress_free). */
const char *progress_vm(Progress *p);
Progress *progress_free(Progress *p);
static inline void progress_freep(Progress **p) {
        progress_free(*p);
}
#define _cleanup_progress_ __attribute__((cleanup(progress_freep)))

/* Print one JSON value compactly on its own line (for event streams). */
void print_json_line(json_t *j);

/* Ask "prompt [y/N] " on stderr and read a line from stdin. */
bool ask_yes_no(const char *prompt);
