/* SPDX-License-Identifier: MIT */
/* Tables, human-readable sizes and times, and live progress lines. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "output.h"
#include "string-util.h"
#include "time-util.h"

char *format_size(char *buf, size_t len, uint64_t bytes) {
        static const char units[] = "BKMGTP";
        double v = (double) bytes;
        size_t u = 0;
        while (v >= 1024 && u < sizeof(units) - 2) {
                v /= 1024;
                u++;
        }
        if (u == 0)
                snprintf(buf, len, "%lluB", (unsigned long long) bytes);
        else if (u < 3 && v >= 10)
                snprintf(buf, len, "%.0f%c", v, units[u]);
        else
                snprintf(buf, len, "%.1f%c", v, units[u]);
        return buf;
}

char *format_ago(char *buf, size_t len, const char *rfc3339) {
        struct tm tm = {};
        const char *end = rfc3339 ? strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
        if (!end) {
                snprintf(buf, len, "%s", rfc3339 ? rfc3339 : "-");
                return buf;
        }
        time_t then = timegm(&tm), now = time(NULL);
        long long d = now > then ? (long long) (now - then) : 0;
        if (d < 60)
                snprintf(buf, len, "%llds ago", d);
        else if (d < 3600)
                snprintf(buf, len, "%lldm ago", d / 60);
        else if (d < 86400)
                snprintf(buf, len, "%lldh ago", d / 3600);
        else
                snprintf(buf, len, "%lldd ago", d / 86400);
        return buf;
}

const char *json_str(json_t *o, const char *key, const char *def) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : def;
}

char *format_json_size(char *buf, size_t len, json_t *o, const char *key) {
        return format_size(buf, len, (uint64_t) json_integer_value(json_object_get(o, key)));
}

void json_make_printable(json_t *j) {
        const char *key;
        size_t i;
        json_t *v;
        if (json_is_object(j)) {
                json_object_foreach (j, key, v) {
                        json_make_printable(v);
                }
        } else if (json_is_array(j)) {
                json_array_foreach (j, i, v) {
                        json_make_printable(v);
                }
        } else if (json_is_string(j)) {
                _cleanup_free_ char *s = strdup(json_string_value(j));
                if (s)
                        (void) json_string_set(j, string_make_printable(s, false));
        }
}

void print_json_line(json_t *j) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s)
                printf("%s\n", s);
        free(s);
        fflush(stdout);
}

bool ask_yes_no(const char *prompt) {
        fprintf(stderr, "%s [y/N] ", prompt);
        fflush(stderr);
        char line[64];
        if (!fgets(line, sizeof(line), stdin))
                return false;
        return line[0] == 'y' || line[0] == 'Y';
}

/* ---- tables ---- */

struct Table {
        size_t n_cols, n_rows;
        size_t cap_rows; /* rows cells has room for */
        char **cells;    /* (n_rows + 1) * n_cols, row 0 the headers */
};

int table_reserve(Table *t, size_t n_rows) {
        if (n_rows <= t->cap_rows)
                return 0;
        char **n = reallocarray(t->cells, n_rows, t->n_cols * sizeof(char *));
        if (!n)
                return -ENOMEM;
        t->cells = n;
        t->cap_rows = n_rows;
        return 0;
}

Table *table_new(size_t n_cols, const char *const *headers) {
        Table *t = calloc(1, sizeof(Table));
        if (!t)
                return NULL;
        t->n_cols = n_cols;
        if (table_add_row(t, headers) < 0)
                return table_free(t);
        return t;
}

int table_add_row(Table *t, const char *const *cells) {
        size_t base = t->n_rows * t->n_cols;
        /* Room for twice as many rows: a row each would copy the array again
         * for every row of a long listing. */
        int r = t->n_rows < t->cap_rows ? 0 : table_reserve(t, MAX(t->n_rows + 1, 2 * t->cap_rows));
        if (r < 0)
                return r;
        char **n = t->cells;
        for (size_t i = 0; i < t->n_cols; i++) {
                /* Cells hold guest text (process names): never raw to a terminal. */
                n[base + i] = string_make_printable(strdup(cells[i] ? cells[i] : "-"), false);
                if (!n[base + i]) {
                        for (size_t k = 0; k < i; k++)
                                free(n[base + k]);
                        return -ENOMEM;
                }
        }
        t->n_rows++;
        return 0;
}

void table_print(Table *t, FILE *f) {
        _cleanup_free_ size_t *w = calloc(t->n_cols, sizeof(size_t));
        if (!w)
                return;
        for (size_t r = 0; r < t->n_rows; r++)
                for (size_t c = 0; c < t->n_cols; c++)
                        w[c] = MAX(w[c], strlen(t->cells[r * t->n_cols + c]));
        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t c = 0; c < t->n_cols; c++) {
                        const char *s = t->cells[r * t->n_cols + c];
                        if (c + 1 == t->n_cols)
                                fprintf(f, "%s\n", s);
                        else
                                fprintf(f, "%-*s   ", (int) w[c], s);
                }
        }
}

void table_print_items(json_t *items, const char *const *headers, size_t n_cols, TableFillFn fill) {
        if (n_cols > TABLE_COLS_MAX)
                return;
        _cleanup_table_ Table *t = table_new(n_cols, headers);
        if (!t || table_reserve(t, 1 + json_array_size(items)) < 0)
                return;
        size_t i;
        json_t *item;
        json_array_foreach (items, i, item) {
                const char *row[TABLE_COLS_MAX] = {};
                char buf[TABLE_COLS_MAX][TABLE_CELL_MAX];
                fill(item, row, buf);
                (void) table_add_row(t, row);
        }
        table_print(t, stdout);
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

/* ---- progress ---- */

#define TICK_USEC (100 * USEC_PER_MSEC)
/* Off a terminal (a log, a pipe): a stage's updates at most this often. */
#define PLAIN_INTERVAL_USEC (10 * USEC_PER_SEC)

struct Progress {
        bool json, tty;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t ticker;
        bool ticker_running, stopping, ended;
        unsigned spin;
        usec_t start, stage_start, last_plain;
        char stage[32], message[200], vm[40];
        bool have_bytes;
        bool unprinted; /* off a terminal: the stage's latest update was not printed */
        uint64_t bytes, total, rate_bytes0;
        usec_t rate_t0;
};

/* Guest and daemon text must not move the cursor or set colours. */
static void copy_printable(char *dst, size_t len, const char *src) {
        size_t l = src ? strlen(src) : 0;
        l = utf8_truncate_len(src, l, len - 1);
        if (l)
                memcpy(dst, src, l);
        dst[l] = '\0';
        string_make_printable(dst, false);
}

static unsigned term_width(void) {
        struct winsize ws;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
                return ws.ws_col;
        return 80;
}

static void format_bar(Progress *p, usec_t now, char *buf, size_t len) {
        char b[16], t[16], r[16];
        double secs = (double) (now - p->rate_t0) / USEC_PER_SEC;
        double rate = secs > 0.2 ? (double) (p->bytes - p->rate_bytes0) / secs : 0;
        unsigned pct = p->total ? (unsigned) (p->bytes * 100 / p->total) : 0;
        char bar[21];
        for (unsigned i = 0; i < 20; i++)
                bar[i] = i < pct / 5 ? '#' : '.';
        bar[20] = '\0';
        char left[32] = "--:--";
        if (rate > 0 && p->total >= p->bytes) {
                unsigned long long s = (unsigned long long) ((double) (p->total - p->bytes) / rate);
                snprintf(left, sizeof(left), "%llu:%02llu", s / 60, s % 60);
        }
        snprintf(buf, len, "[%s] %3u%% %s/%s %s/s %s left", bar, pct, format_size(b, sizeof(b), p->bytes),
                 format_size(t, sizeof(t), p->total), format_size(r, sizeof(r), (uint64_t) rate), left);
}

/* Called with the lock held. */
static void redraw(Progress *p) {
        static const char spinner[] = "|/-\\";
        usec_t now = now_monotonic();
        char extra[128] = "", line[512];
        if (p->have_bytes)
                format_bar(p, now, extra, sizeof(extra));
        snprintf(line, sizeof(line), "%c %s: %s %s %.1fs", spinner[p->spin++ % 4], p->stage, p->message, extra,
                 (double) (now - p->start) / USEC_PER_SEC);
        unsigned w = term_width();
        if (strlen(line) >= w)
                line[w - 1] = '\0';
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
}

/* "done, 1.8M": a finished stage's bytes, all of them (the last count the
 * daemon sent may be older than the end). */
static const char *bytes_done(Progress *p, char *buf, size_t len) {
        char b[16];
        if (!p->have_bytes)
                return "";
        snprintf(buf, len, "%sdone, %s", p->message[0] ? " " : "", format_size(b, sizeof(b), MAX(p->total, p->bytes)));
        return buf;
}

/* A finished stage stays on screen as one line, with its final state. */
static void finish_stage(Progress *p) {
        char done[48];
        if (!p->stage[0])
                return;
        fprintf(stderr, "\r\033[K  %-8s %5.1fs  %s%s\n", p->stage,
                (double) (now_monotonic() - p->stage_start) / USEC_PER_SEC, p->message,
                bytes_done(p, done, sizeof(done)));
        fflush(stderr);
}

static void *ticker_main(void *userdata) {
        Progress *p = userdata;
        pthread_mutex_lock(&p->lock);
        while (!p->stopping) {
                if (p->stage[0])
                        redraw(p);
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_nsec += (long) TICK_USEC * 1000;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                (void) pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int progress_new(bool json, Progress **ret) {
        Progress *p = calloc(1, sizeof(Progress));
        if (!p)
                return -ENOMEM;
        p->json = json;
        p->tty = !json && isatty(STDERR_FILENO);
        p->start = p->stage_start = now_monotonic();
        pthread_mutex_init(&p->lock, NULL);
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&p->cond, &attr);
        pthread_condattr_destroy(&attr);
        if (p->tty && pthread_create(&p->ticker, NULL, ticker_main, p) == 0)
                p->ticker_running = true;
        *ret = p;
        return 0;
}

static void note_event(Progress *p, json_t *params) {
        const char *stage = json_str(params, "stage", "");
        const char *vm = json_string_value(json_object_get(params, "vm"));
        if (vm)
                copy_printable(p->vm, sizeof(p->vm), vm);
        bool new_stage = !streq(stage, p->stage);
        if (new_stage && p->tty)
                finish_stage(p);
        if (new_stage) {
                p->stage_start = now_monotonic();
                p->have_bytes = false;
        }
        copy_printable(p->stage, sizeof(p->stage), stage);
        copy_printable(p->message, sizeof(p->message), json_str(params, "message", ""));
        json_t *b = json_object_get(params, "bytes"), *t = json_object_get(params, "total");
        if (json_is_integer(b) && json_is_integer(t) && json_integer_value(b) >= 0 && json_integer_value(t) > 0) {
                if (!p->have_bytes) {
                        p->rate_t0 = now_monotonic();
                        p->rate_bytes0 = (uint64_t) json_integer_value(b);
                }
                p->have_bytes = true;
                p->bytes = (uint64_t) json_integer_value(b);
                p->total = (uint64_t) json_integer_value(t);
        }
}

/* Off a terminal: one line when a stage begins, its updates at most every
 * PLAIN_INTERVAL_USEC (a percentage, never a bar), and one when it ends. */
static void print_plain(Progress *p, bool new_stage) {
        usec_t now = now_monotonic();
        char b[16], t[16];
        if (!new_stage && now - p->last_plain < PLAIN_INTERVAL_USEC) {
                p->unprinted = true;
                return;
        }
        p->last_plain = now;
        p->unprinted = false;
        if (p->have_bytes && !new_stage)
                fprintf(stderr, "%s: %s%s%u%% of %s (%s)\n", p->stage, p->message, p->message[0] ? " " : "",
                        p->total ? (unsigned) (MIN(p->bytes, p->total) * 100 / p->total) : 0,
                        format_size(t, sizeof(t), p->total), format_size(b, sizeof(b), p->bytes));
        else
                fprintf(stderr, "%s%s%s\n", p->stage, p->message[0] ? ": " : "", p->message);
        fflush(stderr);
}

/* Off a terminal, the end of a stage: its final state when the lines so far
 * did not show it. */
static void end_plain_stage(Progress *p, bool ok) {
        char done[48];
        if (!p->stage[0])
                return;
        double secs = (double) (now_monotonic() - p->stage_start) / USEC_PER_SEC;
        if (!ok)
                fprintf(stderr, "%s: failed after %.1fs\n", p->stage, secs);
        else if (p->have_bytes)
                fprintf(stderr, "%s: %s%s in %.1fs\n", p->stage, p->message, bytes_done(p, done, sizeof(done)), secs);
        else if (p->unprinted)
                fprintf(stderr, "%s%s%s\n", p->stage, p->message[0] ? ": " : "", p->message);
        p->unprinted = false;
        fflush(stderr);
}

void progress_notify(const char *method, json_t *params, void *userdata) {
        Progress *p = userdata;
        if (!streq(method, "progress") || !json_is_object(params))
                return;
        if (p->json) {
                json_t *e = json_deep_copy(params);
                if (e) {
                        json_object_set_new(e, "event", json_string("progress"));
                        print_json_line(e);
                        json_decref(e);
                }
        }
        pthread_mutex_lock(&p->lock);
        bool new_stage = !streq(json_str(params, "stage", ""), p->stage);
        if (new_stage && !p->tty && !p->json)
                end_plain_stage(p, true);
        note_event(p, params);
        if (p->tty)
                redraw(p);
        else if (!p->json)
                print_plain(p, new_stage);
        pthread_mutex_unlock(&p->lock);
}

void progress_end(Progress *p, bool ok) {
        if (!p || p->ended)
                return;
        pthread_mutex_lock(&p->lock);
        p->stopping = p->ended = true;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        if (p->ticker_running)
                pthread_join(p->ticker, NULL);
        p->ticker_running = false;
        if (p->tty) {
                if (ok)
                        finish_stage(p);
                else if (p->stage[0])
                        fprintf(stderr, "\r\033[K  %-8s failed after %.1fs\n", p->stage,
                                (double) (now_monotonic() - p->stage_start) / USEC_PER_SEC);
                fflush(stderr);
        } else if (!p->json)
                end_plain_stage(p, ok);
}

const char *progress_vm(Progress *p) {
        return p->vm[0] ? p->vm : NULL;
}

Progress *progress_free(Progress *p) {
        if (!p)
                return NULL;
        progress_end(p, false);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}
