/* SPDX-License-Identifier: MIT */
/* VM consoles read on the event loop: see console-stream.h. */
#include "console-stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "io-util.h"
#include "log.h"
#include "macro.h"
#include "string-util.h"

#define CHUNK (64U * 1024U)
#define CHUNKS_PER_WAKEUP 16U /* then the other sources get their turn */
#define PIPE_SIZE (1U << 20)  /* room for bursts while the loop is busy */

typedef struct ConsoleStream {
        ConsoleStreams *owner;
        char *id;
        int dir_fd;  /* the VM's state directory */
        int pipe_fd; /* read end of console.pipe */
        int log_fd;  /* console.log (O_APPEND), -EBADF until needed */
        uint64_t size;
        bool write_failed; /* said once in the log */
        sd_event_source *source;
        struct ConsoleStream *next, *prev;
} ConsoleStream;

struct ConsoleStreams {
        sd_event *event;
        Workers *workers;
        uint64_t half;          /* each of the two parts stays within this */
        ConsoleStream *streams; /* armed on the loop; loop only */
};

typedef struct CloseRequest {
        ConsoleStreams *owner;
        char id[];
} CloseRequest;

static void stream_free(ConsoleStream *c) {
        if (!c)
                return;
        sd_event_source_disable_unref(c->source);
        safe_close(c->pipe_fd);
        safe_close(c->log_fd);
        safe_close(c->dir_fd);
        free(c->id);
        free(c);
}

static void stream_unlink_free(ConsoleStream *c) {
        ConsoleStreams *x = c->owner;
        if (c->prev)
                c->prev->next = c->next;
        else if (x->streams == c)
                x->streams = c->next;
        if (c->next)
                c->next->prev = c->prev;
        stream_free(c);
}

static uint64_t size_at(int dir_fd, const char *name) {
        struct stat st;
        return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0;
}

/* console.log becomes console.log.1, replacing the older part. */
static void rotate(ConsoleStream *c) {
        c->log_fd = safe_close(c->log_fd);
        if (renameat(c->dir_fd, CONSOLE_LOG_NAME, c->dir_fd, CONSOLE_LOG_OLD_NAME) < 0 && errno != ENOENT)
                log_warning_errno(-errno, "vm %s: cannot rotate its console log: %m", c->id);
        /* Left by an older daemon or a larger console_log_max: not kept. */
        if (size_at(c->dir_fd, CONSOLE_LOG_OLD_NAME) > c->owner->half)
                (void) unlinkat(c->dir_fd, CONSOLE_LOG_OLD_NAME, 0);
}

static int open_log(ConsoleStream *c) {
        c->log_fd = openat(c->dir_fd, CONSOLE_LOG_NAME,
                           O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        struct stat st;
        if (c->log_fd < 0 || fstat(c->log_fd, &st) < 0)
                return -errno;
        c->size = (uint64_t) st.st_size;
        return 0;
}

static void append(ConsoleStream *c, const char *buf, size_t n) {
        if (c->log_fd >= 0 && c->size + n > c->owner->half)
                rotate(c);
        int r = c->log_fd >= 0 ? 0 : open_log(c);
        if (r >= 0 && c->size + n > c->owner->half) {
                rotate(c);
                r = open_log(c);
        }
        if (r >= 0)
                r = loop_write(c->log_fd, buf, n);
        if (r >= 0) {
                c->size += n;
                c->write_failed = false;
        } else if (!c->write_failed) {
                c->write_failed = true;
                log_warning_errno(r, "vm %s: cannot write its console log, output is dropped: %m", c->id);
        }
}

/* Copy what the pipe holds into the log; false once every writer is gone
 * (the VMM exited) and nothing is left. */
static bool drain(ConsoleStream *c) {
        static char buf[CHUNK];
        size_t chunk = (size_t) MIN((uint64_t) sizeof(buf), c->owner->half);
        for (unsigned i = 0; i < CHUNKS_PER_WAKEUP; i++) {
                ssize_t n = read(c->pipe_fd, buf, chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return true;
                if (n <= 0)
                        return false;
                append(c, buf, (size_t) n);
        }
        return true;
}

static int on_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ConsoleStream *c = userdata;
        if (!drain(c))
                stream_unlink_free(c);
        return 0;
}

static ConsoleStream *find(ConsoleStreams *x, const char *id) {
        for (ConsoleStream *c = x->streams; c; c = c->next)
                if (streq(c->id, id))
                        return c;
        return NULL;
}

/* On the loop. */
static void stream_arm(void *p) {
        ConsoleStream *c = p;
        ConsoleStreams *x = c->owner;
        ConsoleStream *old = find(x, c->id);
        if (old) {
                (void) drain(old); /* the last words of the previous VMM */
                stream_unlink_free(old);
        }
        int r = sd_event_add_io(x->event, &c->source, c->pipe_fd, EPOLLIN, on_readable, c);
        if (r < 0) {
                log_warning_errno(r, "vm %s: cannot read its console: %m", c->id);
                stream_free(c);
                return;
        }
        c->next = x->streams;
        if (x->streams)
                x->streams->prev = c;
        x->streams = c;
}

static int pipe_open(int dir_fd) {
        for (unsigned attempt = 0;; attempt++) {
                if (mkfifoat(dir_fd, CONSOLE_PIPE_NAME, 0600) < 0 && errno != EEXIST)
                        return -errno;
                int fd = openat(dir_fd, CONSOLE_PIPE_NAME, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
                struct stat st;
                if (fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
                        (void) fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE);
                        return fd;
                }
                int r = fd >= 0 ? -EEXIST : -errno;
                safe_close(fd);
                /* Something else under that name: not ours to keep. */
                if (attempt > 0 || (r != -EEXIST && r != -ELOOP) || unlinkat(dir_fd, CONSOLE_PIPE_NAME, 0) < 0)
                        return r;
        }
}

int console_stream_open(ConsoleStreams *x, int dir_fd, const char *id) {
        ConsoleStream *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (ConsoleStream){ .owner = x, .dir_fd = -EBADF, .pipe_fd = -EBADF, .log_fd = -EBADF };
        c->id = strdup(id);
        c->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        int r = !c->id ? -ENOMEM : c->dir_fd < 0 ? -errno : 0;
        if (r >= 0) {
                c->pipe_fd = pipe_open(dir_fd);
                r = c->pipe_fd < 0 ? c->pipe_fd : 0;
        }
        if (r >= 0 && size_at(dir_fd, CONSOLE_LOG_OLD_NAME) > x->half)
                (void) unlinkat(dir_fd, CONSOLE_LOG_OLD_NAME, 0);
        if (r >= 0)
                r = workers_post(x->workers, stream_arm, c);
        if (r < 0)
                stream_free(c);
        return r;
}

static void close_on_loop(void *p) {
        CloseRequest *q = p;
        ConsoleStream *c = find(q->owner, q->id);
        if (c) {
                (void) drain(c);
                stream_unlink_free(c);
        }
        free(q);
}

void console_stream_close(ConsoleStreams *x, const char *id) {
        size_t l = strlen(id);
        CloseRequest *q = malloc(sizeof(*q) + l + 1);
        if (!q)
                return;
        q->owner = x;
        memcpy(q->id, id, l + 1);
        if (workers_post(x->workers, close_on_loop, q) < 0)
                free(q);
}

int console_streams_new(sd_event *event, Workers *workers, uint64_t max_bytes, ConsoleStreams **ret) {
        ConsoleStreams *x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        *x = (ConsoleStreams){ .event = event, .workers = workers, .half = MAX(max_bytes / 2, (uint64_t) CHUNK) };
        *ret = x;
        return 0;
}

ConsoleStreams *console_streams_free(ConsoleStreams *x) {
        if (!x)
                return NULL;
        while (x->streams)
                stream_unlink_free(x->streams);
        free(x);
        return NULL;
}
