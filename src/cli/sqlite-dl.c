/* SPDX-License-Identifier: MIT */
/* The wrappers the store code's sqlite3_*() calls land in (sqlite-dl.h).
 * Each loads the library first (once; a no-op after), so no call depends
 * on the order the store code makes them in. Without the library:
 * sqlite3_open_v2() fails as SQLite does when it cannot open (no handle),
 * closing or finalizing NULL is a no-op, sqlite3_errmsg() names what is
 * missing, and anything else (unreachable: its argument came from SQLite)
 * returns SQLITE_ERROR or NULL. A function the shared code starts calling
 * without being listed brings libsqlite3 back into every banger start,
 * which test-cli-dl catches. */
#include "sqlite-dl.h"

#include <stdarg.h>

#include "macro.h"

SQLITE_DL_SYMBOLS(DLSYM_DEFINE)

int sqlite_dl_open(void) {
        static void *handle;
        static const DlSymbol syms[] = { SQLITE_DL_SYMBOLS(DLSYM_ENTRY) };
        /* Debian 12's libsqlite3-0. */
        return dlopen_lib(&handle, "libsqlite3.so.0", syms, ELEMENTSOF(syms));
}

#define WRAP(ret, fail, name, params, args)                             \
        ret __wrap_##name params;                                       \
        ret __wrap_##name params {                                      \
                return sqlite_dl_open() < 0 ? (fail) : sym_##name args; \
        }

int __wrap_sqlite3_open_v2(const char *path, sqlite3 **db, int flags, const char *vfs);
int __wrap_sqlite3_open_v2(const char *path, sqlite3 **db, int flags, const char *vfs) {
        if (sqlite_dl_open() < 0) {
                *db = NULL;
                return SQLITE_CANTOPEN;
        }
        return sym_sqlite3_open_v2(path, db, flags, vfs);
}

/* Only the options taking (int, int *), as the store uses. */
int __wrap_sqlite3_db_config(sqlite3 *db, int op, ...);
int __wrap_sqlite3_db_config(sqlite3 *db, int op, ...) {
        va_list ap;
        va_start(ap, op);
        int v = va_arg(ap, int);
        int *ret = va_arg(ap, int *);
        va_end(ap);
        return sqlite_dl_open() < 0 ? SQLITE_ERROR : sym_sqlite3_db_config(db, op, v, ret);
}

WRAP(int, SQLITE_OK, sqlite3_close_v2, (sqlite3 * db), (db))
WRAP(int, SQLITE_OK, sqlite3_finalize, (sqlite3_stmt * s), (s))
WRAP(const char *, "SQLite (libsqlite3.so.0) is not loaded", sqlite3_errmsg, (sqlite3 * db), (db))
WRAP(int, SQLITE_ERROR, sqlite3_bind_int64, (sqlite3_stmt * s, int i, sqlite3_int64 v), (s, i, v))
WRAP(int, SQLITE_ERROR, sqlite3_bind_null, (sqlite3_stmt * s, int i), (s, i))
WRAP(int, SQLITE_ERROR, sqlite3_bind_text, (sqlite3_stmt * s, int i, const char *t, int n, void (*d)(void *)),
     (s, i, t, n, d))
WRAP(int, SQLITE_ERROR, sqlite3_busy_timeout, (sqlite3 * db, int ms), (db, ms))
WRAP(int, 0, sqlite3_changes, (sqlite3 * db), (db))
WRAP(int, 0, sqlite3_column_bytes, (sqlite3_stmt * s, int i), (s, i))
WRAP(sqlite3_int64, 0, sqlite3_column_int64, (sqlite3_stmt * s, int i), (s, i))
WRAP(const unsigned char *, NULL, sqlite3_column_text, (sqlite3_stmt * s, int i), (s, i))
WRAP(int, SQLITE_NULL, sqlite3_column_type, (sqlite3_stmt * s, int i), (s, i))
WRAP(int, SQLITE_ERROR, sqlite3_exec,
     (sqlite3 * db, const char *sql, int (*cb)(void *, int, char **, char **), void *ud, char **err),
     (db, sql, cb, ud, err))
WRAP(int, SQLITE_ERROR, sqlite3_extended_result_codes, (sqlite3 * db, int on), (db, on))
WRAP(int, 1, sqlite3_get_autocommit, (sqlite3 * db), (db))
WRAP(sqlite3_stmt *, NULL, sqlite3_next_stmt, (sqlite3 * db, sqlite3_stmt *s), (db, s))
WRAP(int, SQLITE_ERROR, sqlite3_prepare_v2, (sqlite3 * db, const char *sql, int n, sqlite3_stmt **s, const char **tail),
     (db, sql, n, s, tail))
WRAP(int, SQLITE_ERROR, sqlite3_step, (sqlite3_stmt * s), (s))
WRAP(int, 0, sqlite3_system_errno, (sqlite3 * db), (db))
