/* SPDX-License-Identifier: MIT */
/* Opening the state database, its schema version and migrations. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "log.h"
#include "store-internal.h"
#include "string-util.h"

unsigned store_latest_version(void) {
        return (unsigned) store_migrations_count;
}

/* PRAGMA user_version is a signed 32-bit field; reading it as unsigned makes
 * a negative (foreign) value look "newer than known", which is refused. */
static int read_user_version(Store *s, unsigned *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int64_t v;
        int r = store_prepare(s, "PRAGMA user_version", &st);
        if (r < 0)
                return r;
        r = store_query_int64(s, st, "reading schema version", &v);
        if (r < 0)
                return r;
        *ret = (unsigned) (uint32_t) v;
        return 0;
}

int store_schema_version(Store *s, unsigned *ret) {
        return read_user_version(s, ret);
}

static int refuse_newer(const char *path, unsigned version) {
        return error_setf(-EPROTONOSUPPORT,
                          "database %s has schema version %u but this banger only knows up to %u; "
                          "refusing to touch it (use a newer banger)",
                          path, version, store_latest_version());
}

static int foreign_key_check(Store *s, unsigned version) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_prepare(s, "PRAGMA foreign_key_check", &st);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return error_setf(-EBADMSG, "migration to schema version %u leaves a dangling reference in table %s",
                                  version, (const char *) sqlite3_column_text(st, 0));
        return rc == SQLITE_DONE ? 0 : store_error(s, rc, "checking foreign keys");
}

/* Run one step and its version bump in a single transaction. */
static int migration_step_locked(Store *s, const StoreMigration *m, unsigned version) {
        char what[64], bump[64];
        unsigned current;
        int r = read_user_version(s, &current);
        if (r < 0)
                return r;
        if (current >= version) /* another process migrated while we waited for the lock */
                return 0;
        if (current != version - 1)
                return error_setf(-EIO, "schema version changed underneath us (%u, expected %u)", current, version - 1);

        snprintf(what, sizeof(what), "migrating to schema version %u", version);
        r = store_exec(s, m->sql, what);
        if (r < 0)
                return r;
        if (m->foreign_keys_off) {
                r = foreign_key_check(s, version);
                if (r < 0)
                        return r;
        }
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %u", version);
        return store_exec(s, bump, what);
}

static int migration_apply(Store *s, const StoreMigration *m, unsigned version) {
        int r;

        if (m->foreign_keys_off) {
                r = store_exec(s, "PRAGMA foreign_keys = OFF", "disabling foreign keys");
                if (r < 0)
                        return r;
        }
        r = store_begin_immediate(s);
        if (r >= 0) {
                r = migration_step_locked(s, m, version);
                r = r < 0 ? r : store_commit(s);
                if (r < 0)
                        store_rollback(s);
        }
        if (m->foreign_keys_off) {
                int q = store_exec(s, "PRAGMA foreign_keys = ON", "enabling foreign keys");
                if (r >= 0)
                        r = q;
        }
        if (r >= 0)
                log_debug("store %s: migrated to schema version %u", s->path, version);
        return r;
}

int store_migrate_list(Store *s, const StoreMigration *list, size_t n, unsigned target) {
        unsigned current;
        int r;

        if (s->readonly)
                return error_setf(-EROFS, "database %s is open read-only", s->path);
        if (target > n)
                return error_setf(-EINVAL, "no schema version %u (latest is %zu)", target, n);
        r = read_user_version(s, &current);
        if (r < 0)
                return r;
        if (current > n)
                return refuse_newer(s->path, current);
        for (unsigned v = current + 1; v <= target; v++) {
                r = migration_apply(s, &list[v - 1], v);
                if (r < 0)
                        return r;
        }
        return 0;
}

int store_migrate(Store *s, unsigned target) {
        return store_migrate_list(s, store_migrations, store_migrations_count, target);
}

/* Open (read-write: create with its final mode) without following symlinks
 * and make sure it is a regular file. Returns the fd. */
static int open_db_file(const char *path, bool readonly, struct stat *ret_st) {
        int flags = readonly ? O_RDONLY : O_RDWR | O_CREAT;
        _cleanup_close_ int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return error_setf(negative_errno(), "opening database %s: %m", path);
        if (fstat(fd, ret_st) < 0)
                return error_setf(negative_errno(), "stat %s: %m", path);
        if (!S_ISREG(ret_st->st_mode))
                return error_setf(-EINVAL, "database %s is not a regular file", path);
        return TAKE_FD(fd);
}

/* The connection with its per-connection settings, nothing written yet. */
static int store_connect(const char *path, bool readonly, Store **ret) {
        _cleanup_store_close_ Store *s = calloc(1, sizeof(Store));
        if (!s)
                return -ENOMEM;
        s->readonly = readonly;
        s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;

        int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOFOLLOW;
        int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
        if (!s->db)
                return -ENOMEM;
        sqlite3_extended_result_codes(s->db, 1);
        if (rc != SQLITE_OK)
                return error_setf(store_errno_from_sqlite(s->db, rc), "opening database %s: %s", path,
                                  sqlite3_errmsg(s->db));
        (void) sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
        /* No writes to sqlite_schema or other ways to corrupt the file from
         * SQL. (trusted_schema stays on: SQLite 3.40 treats json_valid() in
         * our CHECK constraints as unsafe otherwise.) */
        (void) sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        *ret = TAKE_PTR(s);
        return 0;
}

static int enable_wal(Store *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_prepare(s, "PRAGMA journal_mode = WAL", &st);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return store_error(s, rc, "enabling WAL");
        const char *mode = (const char *) sqlite3_column_text(st, 0);
        if (!mode || strcasecmp(mode, "wal") != 0)
                return error_setf(-EIO, "database %s: could not enable WAL (journal mode is %s)", s->path,
                                  mode ? mode : "unknown");
        return 0;
}

static int store_configure(Store *s) {
        int r = store_exec(s, "PRAGMA foreign_keys = ON", "enabling foreign keys");
        if (r < 0 || s->readonly)
                return r;
        r = enable_wal(s);
        if (r < 0)
                return r;
        /* With WAL, NORMAL loses at most the last commits on power loss, never consistency. */
        return store_exec(s, "PRAGMA synchronous = NORMAL", "setting synchronous mode");
}

/* Newer: refused, always. Older while read-only: refused, the schema would
 * not match our queries. Nothing has been written when this runs. */
static int check_version(Store *s) {
        unsigned v;
        int r = read_user_version(s, &v);
        if (r < 0)
                return r;
        if (v > store_latest_version())
                return refuse_newer(s->path, v);
        if (s->readonly && v != store_latest_version())
                return error_setf(-ESTALE, "database %s has schema version %u, migrations to %u are pending", s->path,
                                  v, store_latest_version());
        return 0;
}

static int header_user_version(int fd, const char *path, unsigned *ret);
static int wal_exists(const char *path);

/* Refuse a newer database before SQLite opens it at all when that can be
 * decided from the header: even opening creates -wal/-shm files. */
static int refuse_newer_early(int fd, const char *path) {
        unsigned v;
        int r = wal_exists(path);
        if (r != 0)
                return r < 0 ? r : 0; /* a live WAL: check_version() decides through SQLite */
        r = header_user_version(fd, path, &v);
        if (r < 0)
                return r;
        return v > store_latest_version() ? refuse_newer(path, v) : 0;
}

/* Before the first connection of this process to the file (store-files.c):
 * opened (created 0600 when missing) without following a symlink, a
 * regular file, not newer than this build, and a file left looser by
 * something else tightened (through the fd) before any state goes into it. */
static int check_db_file(const char *path, struct stat *ret_st, void *userdata) {
        bool readonly = *(const bool *) userdata;
        _cleanup_close_ int fd = open_db_file(path, readonly, ret_st);
        if (fd < 0)
                return fd;
        int r = refuse_newer_early(fd, path);
        if (r < 0)
                return r;
        if (!readonly && (ret_st->st_mode & 077) && fchmod(fd, ret_st->st_mode & 0600) < 0)
                return error_setf(negative_errno(), "tightening mode of %s: %m", path);
        return 0;
}

/* A connection counted in store-files.c from before its file is touched. */
static int store_connect_held(const char *path, bool readonly, Store **ret) {
        StoreFile file = {};
        int r = store_file_hold(path, check_db_file, &readonly, &file);
        if (r < 0)
                return r;
        r = store_connect(path, readonly, ret);
        if (r < 0) {
                store_file_release(&file);
                return r;
        }
        (*ret)->file = file;
        return 0;
}

int store_open(const char *path, StoreOpenFlags flags, Store **ret) {
        _cleanup_store_close_ Store *s = NULL;
        bool readonly = flags & STORE_OPEN_READONLY;
        int r;

        if (!path || !*path)
                return error_setf(-EINVAL, "no database path");
        r = store_connect_held(path, readonly, &s);
        if (r < 0)
                return r;
        r = check_version(s);
        if (r < 0)
                return r;
        r = store_configure(s);
        if (r < 0)
                return r;
        if (!readonly && !(flags & STORE_OPEN_NO_MIGRATE)) {
                r = store_migrate(s, store_latest_version());
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

Store *store_close(Store *s) {
        if (!s)
                return NULL;
        if (s->pool) {
                store_pool_put(s->pool, s);
                return NULL;
        }
        /* _v2: with a statement still unfinalized (a bug in the caller), the
         * connection is freed when that statement is, rather than leaked. */
        if (s->db && sqlite3_next_stmt(s->db, NULL))
                log_debug("store %s: closed with statements unfinalized", s->path);
        if (s->db)
                (void) sqlite3_close_v2(s->db);
        store_file_release(&s->file);
        free(s->path);
        free(s);
        return NULL;
}

/* With no -wal file next to it, the main file is the whole database and its
 * header says the version (https://sqlite.org/fileformat.html: magic at 0,
 * big-endian user_version at 60). Reading it directly is what lets a check
 * leave the directory exactly as it was: a read-only SQLite connection on a
 * WAL database would create -wal and -shm files it then cannot remove. */
static int header_user_version(int fd, const char *path, unsigned *ret) {
        static const char magic[16] = "SQLite format 3";
        unsigned char h[100];
        ssize_t n = pread(fd, h, sizeof(h), 0);
        if (n < 0)
                return error_setf(negative_errno(), "reading %s: %m", path);
        if (n == 0) { /* SQLite's view of an empty file: a database with nothing applied */
                *ret = 0;
                return 0;
        }
        if ((size_t) n < sizeof(h) || memcmp(h, magic, sizeof(magic)) != 0)
                return error_setf(-EBADMSG, "%s is not an SQLite database", path);
        *ret = (unsigned) h[60] << 24 | (unsigned) h[61] << 16 | (unsigned) h[62] << 8 | h[63];
        return 0;
}

static int wal_exists(const char *path) {
        _cleanup_free_ char *wal = NULL;
        struct stat st;

        if (asprintf(&wal, "%s-wal", path) < 0)
                return -ENOMEM;
        if (fstatat(AT_FDCWD, wal, &st, AT_SYMLINK_NOFOLLOW) >= 0)
                return 1;
        return errno == ENOENT ? 0 : error_setf(negative_errno(), "stat %s: %m", wal);
}

typedef struct HeaderRead {
        unsigned version;
        bool done;
} HeaderRead;

/* With no -wal file, the version from the header; with one, nothing yet. */
static int read_header_file(const char *path, struct stat *ret_st, void *userdata) {
        HeaderRead *h = userdata;
        _cleanup_close_ int fd = open_db_file(path, true, ret_st);
        if (fd < 0)
                return fd;
        int r = wal_exists(path);
        if (r != 0)
                return r < 0 ? r : 0;
        r = header_user_version(fd, path, &h->version);
        h->done = r >= 0;
        return r;
}

static int read_version_untouched(const char *path, unsigned *ret) {
        HeaderRead h = {};
        StoreFile file = {};
        int r = store_file_hold(path, read_header_file, &h, &file);
        if (r < 0)
                return r;
        if (h.done) {
                store_file_release(&file);
                *ret = h.version;
                return 0;
        }
        /* A live WAL may hold newer pages than the main file, or this process
         * has the file open already: ask SQLite. */
        _cleanup_store_close_ Store *s = NULL;
        r = store_connect(path, true, &s);
        if (r < 0) {
                store_file_release(&file);
                return r;
        }
        s->file = file;
        return read_user_version(s, ret);
}

int store_check_migrations(const char *path, unsigned *ret_current, unsigned *ret_latest) {
        unsigned latest = store_latest_version(), current = 0;
        struct stat st;

        if (!path || !*path)
                return error_setf(-EINVAL, "no database path");
        /* Missing means "nothing applied yet", and must stay missing. */
        bool missing = fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
        if (!missing) {
                int r = read_version_untouched(path, &current);
                if (r < 0)
                        return r;
        }
        if (ret_current)
                *ret_current = current;
        if (ret_latest)
                *ret_latest = latest;
        if (current == latest)
                return STORE_MIGRATIONS_CURRENT;
        return current < latest ? STORE_MIGRATIONS_PENDING : STORE_MIGRATIONS_NEWER;
}
