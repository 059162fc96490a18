/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/stat.h>

/* Shared by the store-*.c files only; nothing outside the store includes this. */

#include <sqlite3.h>

#include "store.h"

/* A database file this process has a connection to (store-files.c). */
typedef struct StoreFile {
        dev_t dev;
        ino_t ino;
        bool held;
        bool checked; /* the check ran: no connection of this process had the file open */
} StoreFile;

/* Opens the file at path, checks it and fills *ret_st, and closes it again. */
typedef int (*StoreFileCheck)(const char *path, struct stat *ret_st, void *userdata);

/* Count a connection (about to be opened) to the file at path. When this
 * process has none to it yet, check() runs first, under the same lock that
 * every other hold takes: a descriptor of the file is opened and closed only
 * while no connection of this process has it (closing one would drop every
 * POSIX lock SQLite holds on it for this process). */
int store_file_hold(const char *path, StoreFileCheck check, void *userdata, StoreFile *ret);
/* After the connection is closed. */
void store_file_release(StoreFile *f);

struct Store {
        sqlite3 *db;
        char *path;
        StoreFile file;
        bool readonly;
        bool failed;     /* an SQLite error other than a constraint: not pooled again */
        StorePool *pool; /* handed out by this pool: store_close() gives it back */
};

typedef struct StoreMigration {
        const char *sql;
        bool foreign_keys_off; /* a table rebuild: see store-migrations.c */
} StoreMigration;

/* The migrations, oldest first: store_migrations[i] takes the schema from
 * version i to version i + 1. */
extern const StoreMigration store_migrations[];
extern const size_t store_migrations_count;

/* Apply list[current..target-1]; store_migrate() with the real list. Exposed
 * so tests can exercise a rebuild step against a scratch schema. */
int store_migrate_list(Store *s, const StoreMigration *list, size_t n, unsigned target);

static inline void sqlite3_finalizep(sqlite3_stmt **st) {
        if (*st) {
                int saved = errno;
                (void) sqlite3_finalize(*st);
                *st = NULL;
                errno = saved;
        }
}
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* The VMM names as the schema stores them (store-vm.c). */
const char *store_vmm_to_storage(VmmKind k);
VmmKind store_vmm_from_storage(const char *s);

/* Map an SQLite (extended) result code to -errno. Constraint failures:
 * UNIQUE/PRIMARY KEY -> -EEXIST, FOREIGN KEY -> -EBUSY, others -> -EINVAL. */
int store_errno_from_sqlite(sqlite3 *db, int rc);
/* Map rc and record "what: <sqlite message>"; returns the -errno. */
int store_error(Store *s, int rc, const char *what);
/* For a UNIQUE failure, the failed column ("name" out of
 * "UNIQUE constraint failed: vms.name"), or "" when unknown. Static storage
 * owned by SQLite: use it before the next call on this connection. */
const char *store_failed_column(Store *s);

int store_prepare(Store *s, const char *sql, sqlite3_stmt **ret);
/* Bind a string, NULL as SQL NULL; the value is copied. */
int store_bind_text(Store *s, sqlite3_stmt *st, int idx, const char *v);
/* Bind a non-zero number, 0 as SQL NULL (for "0: none" fields). */
int store_bind_int64_or_null(Store *s, sqlite3_stmt *st, int idx, int64_t v);
int store_bind_int64(Store *s, sqlite3_stmt *st, int idx, int64_t v);
/* Copy a text column; SQL NULL becomes NULL. */
int store_column_strdup(sqlite3_stmt *st, int col, char **ret);

/* Read text columns 0..n-1 into the given fields (NULL slots skipped). */
int store_columns_strdup(sqlite3_stmt *st, char **const *fields, size_t n);
/* Bind parameters 1..n from strings (slots whose is_text is false are left
 * for the caller to bind as numbers). */
int store_bind_texts(Store *s, sqlite3_stmt *st, const char *const *v, const bool *is_text, size_t n);

/* Step a statement that returns no rows; what names the operation. */
int store_step_done(Store *s, sqlite3_stmt *st, const char *what);
/* Run a constant SQL script (no values). */
int store_exec(Store *s, const char *sql, const char *what);

int store_begin_immediate(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);

typedef int (*StoreRowFn)(sqlite3_stmt *st, void *ret);
typedef void (*StoreDoneFn)(void *record);

/* Step st to the end, turning each row into a record of `size` bytes. */
int store_query_list(Store *s, sqlite3_stmt *st, size_t size, StoreRowFn row, StoreDoneFn done, const char *what,
                     void **ret, size_t *ret_n);
/* The first row; -ENOENT (message: "what not found") when there is none. */
int store_query_one(Store *s, sqlite3_stmt *st, StoreRowFn row, const char *what, void *ret);
/* One integer from a one-row query. */
int store_query_int64(Store *s, sqlite3_stmt *st, const char *what, int64_t *ret);

/* 1 if the one-parameter query sql returns a row for arg, 0 if not. */
int store_exists(Store *s, const char *sql, const char *arg);
/* sqlite3_changes() after a write: -ENOENT (message "what not found") if 0. */
int store_check_changed(Store *s, const char *what);

/* Common record checks with readable messages. */
int store_check_id(const char *id, const char *what);
int store_check_name(const char *name, const char *what);
/* A prefix that can match an id: 1..32 lowercase hex characters. */
bool store_prefix_is_valid(const char *prefix);

/* A record kind that is named, id'd, listed and deleted unless referenced
 * (images, kernels): store-entity.c does the lookups and writes for it. */
typedef struct StoreEntity {
        const char *label;  /* "image" */
        const char *select; /* "SELECT <columns> FROM <table> " */
        size_t size;        /* of the record */
        StoreRowFn row;
        StoreDoneFn done;
} StoreEntity;

/* One record by a one-parameter WHERE clause ("WHERE id = ?1"); -ENOENT
 * with "<label> \"arg\" not found" when there is none. */
int store_entity_get(Store *s, const StoreEntity *e, const char *where, const char *arg, void *ret);
/* Every record the clause selects (arg, if not NULL, binds ?1). */
int store_entity_list(Store *s, const StoreEntity *e, const char *where, const char *arg, void **ret, size_t *ret_n);
/* Records whose id starts with prefix; none for an invalid prefix. */
int store_entity_find_by_prefix(Store *s, const StoreEntity *e, const char *prefix, void **ret, size_t *ret_n);
/* Step a prepared INSERT or UPDATE, turning constraint failures into
 * sentences (name in use, id exists, kernel missing). */
int store_entity_write(Store *s, const StoreEntity *e, sqlite3_stmt *st, const char *id, const char *name, bool update);
/* Delete by id; when a RESTRICT key refuses, users_sql (id as ?1) names who
 * still uses the record. */
int store_entity_delete(Store *s, const StoreEntity *e, const char *table, const char *id, const char *users_sql);
