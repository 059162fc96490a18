/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "string-util.h"

static int max_level = LOG_INFO;
static bool journal_prefix;
static int file_fd = -EBADF;
static const char *program = "banger";

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "error",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

int log_get_max_level(void) {
        return max_level;
}

void log_set_max_level(int level) {
        if (level >= LOG_EMERG && level <= LOG_DEBUG)
                max_level = level;
}

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "warn") == 0)
                return LOG_WARNING;
        if (strcasecmp(s, "err") == 0)
                return LOG_ERR;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        if (level < LOG_EMERG || level > LOG_DEBUG)
                return "unknown";
        return level_names[level];
}

int log_parse_environment(void) {
        const char *e = getenv("BANGER_LOG_LEVEL");
        if (!e || !*e)
                return 0;
        int l = log_level_from_string(e);
        if (l < 0)
                return l;
        max_level = l;
        return 0;
}

void log_set_journal_prefix(bool on) {
        journal_prefix = on;
}

void log_set_file_fd(int fd) {
        file_fd = fd;
}

void log_set_program(const char *name) {
        program = name;
}

static void write_all_best_effort(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                buf += n;
                len -= (size_t) n;
        }
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...) {
        int saved = errno;
        int ret = error == 0 ? 0 : -abs(error);

        if (level > max_level) {
                errno = saved;
                return ret;
        }

        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        /* Make %m print the error we were handed, not whatever errno is now. */
        errno = error != 0 ? abs(error) : saved;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* One call, one line: text quoted from a guest, an image or a
         * registry cannot forge lines (newlines) or reach a terminal that
         * shows this log (escapes). */
        string_make_printable(msg, false);

        char out[2300];
        int n;
        if (journal_prefix)
                n = snprintf(out, sizeof(out), "<%d>%s\n", level, msg);
        else
                n = snprintf(out, sizeof(out), "%s: %s\n", program, msg);
        if (n > 0)
                write_all_best_effort(STDERR_FILENO, out, MIN((size_t) n, sizeof(out) - 1));

        if (file_fd >= 0) {
                struct timespec ts;
                struct tm tm;
                char stamp[40];
                clock_gettime(CLOCK_REALTIME, &ts);
                gmtime_r(&ts.tv_sec, &tm);
                strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
                n = snprintf(out, sizeof(out), "%s.%03ldZ %s %s:%d %s: %s\n", stamp, ts.tv_nsec / 1000000,
                             log_level_to_string(level), file, line, func, msg);
                if (n > 0)
                        write_all_best_effort(file_fd, out, MIN((size_t) n, sizeof(out) - 1));
        }

        errno = saved;
        return ret;
}
