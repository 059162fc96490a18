/* SPDX-License-Identifier: MIT */
#pragma once

/* SQLite for the commands that read the store themselves (banger doctor's
 * schema and snapshot checks, system uninstall's list of live VMs), loaded
 * by them (dlopen-lib.h): linking it cost every banger process, a `vm
 * create` included, about 1.5-2.5 ms of the loader's time on this project's
 * 2-core host. The shared store code calls sqlite3_*() directly; banger is
 * linked with -Wl,--wrap for each of these (sqlite_dl_wrapped in
 * meson.build), so the calls land in sqlite-dl.c. */

#include <sqlite3.h>

#include "dlopen-lib.h"

#define SQLITE_DL_SYMBOLS(X)             \
        X(sqlite3_bind_int64)            \
        X(sqlite3_bind_null)             \
        X(sqlite3_bind_text)             \
        X(sqlite3_busy_timeout)          \
        X(sqlite3_changes)               \
        X(sqlite3_close_v2)              \
        X(sqlite3_column_bytes)          \
        X(sqlite3_column_int64)          \
        X(sqlite3_column_text)           \
        X(sqlite3_column_type)           \
        X(sqlite3_db_config)             \
        X(sqlite3_errmsg)                \
        X(sqlite3_exec)                  \
        X(sqlite3_extended_result_codes) \
        X(sqlite3_finalize)              \
        X(sqlite3_get_autocommit)        \
        X(sqlite3_next_stmt)             \
        X(sqlite3_open_v2)               \
        X(sqlite3_prepare_v2)            \
        X(sqlite3_step)                  \
        X(sqlite3_system_errno)

SQLITE_DL_SYMBOLS(DLSYM_DECLARE)

/* 0, or -ENOPKG with the cause recorded (error_setf). */
int sqlite_dl_open(void);
