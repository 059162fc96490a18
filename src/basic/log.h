/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

/* Levels follow syslog priorities: LOG_ERR (3) .. LOG_DEBUG (7). */
int log_get_max_level(void);
void log_set_max_level(int level);
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);
/* Honour BANGER_LOG_LEVEL; returns 0 or -EINVAL when set but unparseable. */
int log_parse_environment(void);
/* Prefix lines with "<N>" so journald keeps the priority (set when JOURNAL_STREAM names stderr). */
void log_set_journal_prefix(bool on);
/* Also append every line to this fd (the daemon's log file); -EBADF disables. */
void log_set_file_fd(int fd);
void log_set_program(const char *name);

/* Returns -abs(error) (or 0 when error is 0) so callers can "return log_error_errno(r, ...)". */
int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...)
        _printf_(6, 7);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)
