/* SPDX-License-Identifier: MIT */
/* Statement plumbing and error mapping shared by the store files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "error.h"
#include "store-internal.h"
#include "string-util.h"

static int constraint_errno(int rc) {
        switch (rc) {
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY:
                return -EEXIST;
        case SQLITE_CONSTRAINT_FOREIGNKEY:
        case SQLITE_CONSTRAINT_TRIGGER: /* how ON DELETE RESTRICT reports; the schema has no triggers */
                return -EBUSY;
        default:
                return -EINVAL;
        }
}

int store_errno_from_sqlite(sqlite3 *db, int rc) {
        int sys = db ? sqlite3_system_errno(db) : 0;

        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EAGAIN;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
                return -EINVAL;
        case SQLITE_INTERRUPT:
                return -EINTR;
        case SQLITE_CONSTRAINT:
                return constraint_errno(rc);
        case SQLITE_CANTOPEN:
                return sys > 0 ? -sys : -ENOENT;
        default: /* SQLITE_IOERR and anything unexpected */
                return sys > 0 ? -sys : -EIO;
        }
}

int store_error(Store *s, int rc, const char *what) {
        int r = store_errno_from_sqlite(s->db, rc);
        if ((rc & 0xff) != SQLITE_CONSTRAINT) /* a refused write leaves the connection as it was */
                s->failed = true;
        if (r == 0) /* a caller-side surprise such as SQLITE_ROW where none was expected */
                r = -EIO;
        return error_setf(r, "%s: %s", what, sqlite3_errmsg(s->db));
}

const char *store_failed_column(Store *s) {
        const char *m = sqlite3_errmsg(s->db);
        const char *p = m ? strstr(m, "constraint failed: ") : NULL;
        if (!p)
                return "";
        p += strlen("constraint failed: ");
        /* "table.column"; composite keys list several, the first is enough. */
        const char *dot = strchr(p, '.');
        return dot ? dot + 1 : p;
}

int store_prepare(Store *s, const char *sql, sqlite3_stmt **ret) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_error(s, rc, "preparing statement");
        *ret = st;
        return 0;
}

int store_bind_text(Store *s, sqlite3_stmt *st, int idx, const char *v) {
        int rc = v ? sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, idx);
        return rc == SQLITE_OK ? 0 : store_error(s, rc, "binding value");
}

int store_bind_int64(Store *s, sqlite3_stmt *st, int idx, int64_t v) {
        int rc = sqlite3_bind_int64(st, idx, v);
        return rc == SQLITE_OK ? 0 : store_error(s, rc, "binding value");
}

int store_bind_int64_or_null(Store *s, sqlite3_stmt *st, int idx, int64_t v) {
        if (v != 0)
                return store_bind_int64(s, st, idx, v);
        int rc = sqlite3_bind_null(st, idx);
        return rc == SQLITE_OK ? 0 : store_error(s, rc, "binding value");
}

int store_column_strdup(sqlite3_stmt *st, int col, char **ret) {
        const unsigned char *t = sqlite3_column_text(st, col);
        if (!t) {
                if (sqlite3_column_type(st, col) != SQLITE_NULL)
                        return -ENOMEM;
                *ret = NULL;
                return 0;
        }
        char *c = strdup((const char *) t);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

/* Read text columns 0..n-1 into the given fields (NULL slots skipped). */
int store_columns_strdup(sqlite3_stmt *st, char **const *fields, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (fields[i] && store_column_strdup(st, (int) i, fields[i]) < 0)
                        return -ENOMEM;
        return 0;
}

/* Bind parameters 1..n from strings (NULL slots left unbound for numbers). */
int store_bind_texts(Store *s, sqlite3_stmt *st, const char *const *v, const bool *is_text, size_t n) {
        int q = 0;
        for (size_t i = 0; q >= 0 && i < n; i++)
                if (is_text[i])
                        q = store_bind_text(s, st, (int) i + 1, v[i]);
        return q;
}

int store_step_done(Store *s, sqlite3_stmt *st, const char *what) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return 0;
        return store_error(s, rc, what);
}

int store_exec(Store *s, const char *sql, const char *what) {
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : store_error(s, rc, what);
}

int store_begin_immediate(Store *s) {
        /* IMMEDIATE takes the write lock up front (waiting through the busy
         * handler), so a read-then-write never fails with BUSY_SNAPSHOT. */
        return store_exec(s, "BEGIN IMMEDIATE", "starting transaction");
}

int store_commit(Store *s) {
        int r = store_exec(s, "COMMIT", "committing transaction");
        if (r < 0)
                store_rollback(s);
        return r;
}

void store_rollback(Store *s) {
        if (!sqlite3_get_autocommit(s->db))
                (void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int store_query_list(Store *s, sqlite3_stmt *st, size_t size, StoreRowFn row, StoreDoneFn done, const char *what,
                     void **ret, size_t *ret_n) {
        char *a = NULL;
        size_t n = 0, allocated = 0;
        int r = 0, rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == allocated) {
                        size_t m = allocated ? allocated * 2 : 8;
                        char *b = reallocarray(a, m, size);
                        if (!b) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        a = b;
                        allocated = m;
                }
                memset(a + n * size, 0, size);
                r = row(st, a + n * size);
                if (r < 0)
                        goto fail;
                n++;
        }
        if (rc != SQLITE_DONE) {
                r = store_error(s, rc, what);
                goto fail;
        }
        *ret = a;
        *ret_n = n;
        return 0;
fail:
        for (size_t i = 0; i < n; i++)
                done(a + i * size);
        free(a);
        return r == -ENOMEM ? error_setf(r, "%s: out of memory", what) : r;
}

int store_query_one(Store *s, sqlite3_stmt *st, StoreRowFn row, const char *what, void *ret) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return error_setf(-ENOENT, "%s not found", what);
        if (rc != SQLITE_ROW)
                return store_error(s, rc, what);
        return row(st, ret);
}

int store_query_int64(Store *s, sqlite3_stmt *st, const char *what, int64_t *ret) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return error_setf(-ENOENT, "%s: no result", what);
        if (rc != SQLITE_ROW)
                return store_error(s, rc, what);
        *ret = sqlite3_column_int64(st, 0);
        return 0;
}

int store_exists(Store *s, const char *sql, const char *arg) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_prepare(s, sql, &st);
        if (r < 0)
                return r;
        r = store_bind_text(s, st, 1, arg);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        return rc == SQLITE_DONE ? 0 : store_error(s, rc, "looking up record");
}

int store_check_changed(Store *s, const char *what) {
        return sqlite3_changes(s->db) > 0 ? 0 : error_setf(-ENOENT, "%s not found", what);
}

bool store_id_is_valid(const char *id) {
        size_t l = id ? strlen(id) : 0;
        return l >= STORE_ID_MIN && l <= STORE_ID_MAX && strspn(id, "0123456789abcdef") == l;
}

int store_id_generate(char ret[static STORE_ID_GENERATED_LEN + 1]) {
        unsigned char b[STORE_ID_GENERATED_LEN / 2];
        ssize_t n;

        do
                n = getrandom(b, sizeof(b), 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return error_setf(negative_errno(), "getrandom: %m");
        if ((size_t) n != sizeof(b))
                return error_setf(-EIO, "getrandom: short read");
        for (size_t i = 0; i < sizeof(b); i++)
                snprintf(ret + 2 * i, 3, "%02x", b[i]);
        return 0;
}

bool store_prefix_is_valid(const char *prefix) {
        size_t l = prefix ? strlen(prefix) : 0;
        if (l == 0 || l > STORE_ID_MAX)
                return false;
        return strspn(prefix, "0123456789abcdef") == l;
}

int store_check_id(const char *id, const char *what) {
        if (!store_id_is_valid(id))
                return error_setf(-EINVAL, "invalid %s id \"%s\": expected %d-%d lowercase hex characters", what,
                                  id ? id : "", STORE_ID_MIN, STORE_ID_MAX);
        return 0;
}

int store_check_name(const char *name, const char *what) {
        if (!name_is_valid(name))
                return error_setf(-EINVAL, "invalid %s name \"%s\": use " NAME_RULE, what, name ? name : "");
        return 0;
}
