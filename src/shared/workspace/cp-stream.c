/* SPDX-License-Identifier: MIT */
/* The host side of a file transfer (cp-stream.h): a tar stream written by
 * libarchive from the disk, or read by libarchive onto it, in a thread of
 * ours on one end of a pipe while the agent stream runs on the other. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-paths.h"
#include "archive-dl.h"
#include "cp-stream.h"
#include "error.h"
#include "macro.h"
#include "path-beneath.h"
#include "string-util.h"

#define COPY_CHUNK (64 * 1024)

/* ---- progress: the bytes so far, to the caller's rep->progress ---- */

typedef struct CpProgress {
        const WsReport *rep;
        usec_t started;
} CpProgress;

static void on_progress(void *userdata, uint64_t sent, uint64_t received) {
        CpProgress *p = userdata;
        p->rep->progress(p->rep->userdata, MAX(sent, received), now_monotonic() - p->started);
}

/* ---- host to guest: libarchive writes the stream ---- */

struct CpWriter {
        CpProduceFn produce;
        void *userdata;
        struct archive *out;
        int fd; /* the pipe's write end */
        int r;
        char why[512];
};

const char *cp_writer_why(const CpWriter *w) {
        return w->why;
}

int cp_writer_fail(CpWriter *w, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->why, sizeof(w->why), fmt, ap);
        va_end(ap);
        return -EIO;
}

static int archive_fail(CpWriter *w, struct archive *a, const char *what) {
        return cp_writer_fail(w, "%s: %s", what,
                              a && sym_archive_error_string(a) ? sym_archive_error_string(a) : "error");
}

static int write_data_fd(CpWriter *w, int fd, const char *name) {
        static _Thread_local char buf[COPY_CHUNK];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n == 0)
                        return 0;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return cp_writer_fail(w, "%s: %s", name, strerror(errno));
                if (sym_archive_write_data(w->out, buf, (size_t) n) != n)
                        return archive_fail(w, w->out, "writing the stream");
        }
}

/* Open rel beneath dir_fd (never through a symlink) and stat it: 1 with
 * *ret_fd (or -EBADF for a symlink) and *st, 0 when it is gone, or -errno. */
static int open_entry(int dir_fd, const char *rel, int *ret_fd, struct stat *st) {
        const char *base = ".";
        _cleanup_close_ int pfd =
                streq(rel, ".") ? fcntl(dir_fd, F_DUPFD_CLOEXEC, 3) : open_parent_beneath(dir_fd, rel, &base);
        if (pfd < 0)
                return pfd == -ENOENT ? 0 : pfd;
        _cleanup_close_ int fd = openat(pfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno != ELOOP)
                return errno == ENOENT ? 0 : -errno;
        if (fd < 0 ? fstatat(pfd, base, st, AT_SYMLINK_NOFOLLOW) < 0 : fstat(fd, st) < 0)
                return -errno;
        if (S_ISLNK(st->st_mode)) {
                *ret_fd = -EBADF;
                return 1;
        }
        *ret_fd = TAKE_FD(fd);
        return 1;
}

static int entry_symlink(CpWriter *w, int dir_fd, const char *rel, struct archive_entry *e) {
        char target[4096];
        const char *base = rel;
        _cleanup_close_ int pfd = open_parent_beneath(dir_fd, rel, &base);
        ssize_t n = pfd < 0 ? -1 : readlinkat(pfd, base, target, sizeof(target) - 1);
        if (n < 0)
                return cp_writer_fail(w, "%s: %s", rel, strerror(pfd < 0 ? -pfd : errno));
        target[n] = 0;
        if (agent_symlink_escapes(rel, target, false)) {
                snprintf(w->why, sizeof(w->why), "%.200s: a symlink pointing out of the tree (%.200s)", rel, target);
                return 1;
        }
        sym_archive_entry_copy_symlink(e, target);
        return 0;
}

int cp_writer_entry(CpWriter *w, int dir_fd, const char *rel) {
        struct stat st;
        _cleanup_close_ int fd = -EBADF;
        int r = open_entry(dir_fd, rel, &fd, &st);
        if (r == -ELOOP || r == -EXDEV || r == -ENOTDIR) {
                snprintf(w->why, sizeof(w->why), "%.400s: a parent directory is a symlink or not a directory", rel);
                return 1;
        }
        if (r <= 0)
                return r < 0 ? cp_writer_fail(w, "%s: %s", rel, strerror(-r)) : 0;
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
                return 0; /* a socket or a device is nothing to copy */
        _cleanup_free_ char *name = NULL;
        if (asprintf(&name, "%s%s", streq(rel, ".") ? "" : "./", rel) < 0)
                return -ENOMEM;
        struct archive_entry *e = sym_archive_entry_new();
        if (!e)
                return -ENOMEM;
        sym_archive_entry_copy_stat(e, &st);
        sym_archive_entry_set_nlink(e, 1); /* each path its own copy: git knows no hard links */
        sym_archive_entry_copy_pathname(e, name);
        if (S_ISLNK(st.st_mode))
                r = entry_symlink(w, dir_fd, rel, e);
        else
                r = 0;
        if (!S_ISREG(st.st_mode))
                sym_archive_entry_set_size(e, 0);
        if (r == 0 && sym_archive_write_header(w->out, e) != ARCHIVE_OK)
                r = archive_fail(w, w->out, rel);
        if (r == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
                r = write_data_fd(w, fd, rel);
        sym_archive_entry_free(e);
        return r;
}

typedef struct TreeWalk {
        const char *src, *top;
        size_t src_len;
} TreeWalk;

/* The entry's name in the stream: the top, then the path below src. */
static int rename_entry(const TreeWalk *t, struct archive_entry *e) {
        const char *p = sym_archive_entry_pathname(e);
        const char *rest = p && strncmp(p, t->src, t->src_len) == 0 ? p + t->src_len : "";
        _cleanup_free_ char *name = NULL;
        if (asprintf(&name, "%s%s%s", t->top, *rest && *rest != '/' ? "/" : "", rest) < 0)
                return -ENOMEM;
        sym_archive_entry_copy_pathname(e, name);
        return 0;
}

static int copy_data(CpWriter *w, struct archive *disk, struct archive_entry *e) {
        static _Thread_local char buf[COPY_CHUNK];
        for (;;) {
                la_ssize_t n = sym_archive_read_data(disk, buf, sizeof(buf));
                if (n == 0)
                        return 0;
                if (n < 0)
                        return archive_fail(w, disk, sym_archive_entry_pathname(e));
                if (sym_archive_write_data(w->out, buf, (size_t) n) != n)
                        return archive_fail(w, w->out, "writing the stream");
        }
}

static int write_one(CpWriter *w, const TreeWalk *t, struct archive *disk, struct archive_entry_linkresolver *lr,
                     struct archive_entry *e) {
        struct archive_entry *spare = NULL;
        int r = rename_entry(t, e);
        if (r < 0)
                return r;
        sym_archive_entry_set_uname(e, NULL);
        sym_archive_entry_set_gname(e, NULL);
        sym_archive_entry_linkify(lr, &e, &spare);
        if (e && sym_archive_write_header(w->out, e) != ARCHIVE_OK)
                return archive_fail(w, w->out, sym_archive_entry_pathname(e));
        if (e && sym_archive_entry_size(e) > 0 && (r = copy_data(w, disk, e)) < 0)
                return r;
        return 0;
}

static int walk_tree(CpWriter *w, const TreeWalk *t, struct archive *disk) {
        struct archive_entry_linkresolver *lr = sym_archive_entry_linkresolver_new();
        if (!lr)
                return -ENOMEM;
        sym_archive_entry_linkresolver_set_strategy(lr, sym_archive_format(w->out));
        int r = 0;
        while (r >= 0) {
                struct archive_entry *e = sym_archive_entry_new();
                int q = e ? sym_archive_read_next_header2(disk, e) : ARCHIVE_FATAL;
                if (q == ARCHIVE_EOF) {
                        sym_archive_entry_free(e);
                        break;
                }
                if (q != ARCHIVE_OK)
                        r = archive_fail(w, disk, t->src);
                else {
                        (void) sym_archive_read_disk_descend(disk);
                        r = write_one(w, t, disk, lr, e);
                }
                sym_archive_entry_free(e);
        }
        sym_archive_entry_linkresolver_free(lr);
        return r;
}

int cp_writer_tree(CpWriter *w, const char *src, const char *top) {
        TreeWalk t = { .src = src, .top = top, .src_len = strlen(src) };
        struct archive *disk = sym_archive_read_disk_new();
        if (!disk)
                return -ENOMEM;
        sym_archive_read_disk_set_symlink_physical(disk); /* symlinks are stored, never followed */
        (void) sym_archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL |
                                                                ARCHIVE_READDISK_NO_FFLAGS);
        int r = sym_archive_read_disk_open(disk, src) != ARCHIVE_OK ? archive_fail(w, disk, src)
                                                                    : walk_tree(w, &t, disk);
        sym_archive_read_free(disk);
        return r;
}

static void *writer_main(void *p) {
        CpWriter *w = p;
        w->out = sym_archive_write_new();
        w->r = -ENOMEM;
        if (w->out) {
                sym_archive_write_set_format_pax(w->out); /* full pax: mtimes keep their nanoseconds */
                sym_archive_write_set_bytes_in_last_block(w->out, 1);
                if (sym_archive_write_open_fd(w->out, w->fd) != ARCHIVE_OK)
                        w->r = archive_fail(w, w->out, "writing the stream");
                else
                        w->r = w->produce(w, w->userdata);
                if (w->r >= 0 && sym_archive_write_close(w->out) != ARCHIVE_OK)
                        w->r = archive_fail(w, w->out, "writing the stream");
        }
        sym_archive_write_free(w->out);
        w->out = NULL;
        w->fd = safe_close(w->fd); /* the stream ends here, complete or cut short */
        return NULL;
}
/* ---- guest to host: the stream, checked, into libarchive's disk writer ---- */

typedef struct Reader {
        const char *dest; /* as given */
        int fd;           /* the pipe's read end */
        int base_fd;      /* the directory entries are created in (our cwd meanwhile) */
        char *top;        /* the stream's top entry */
        char *rename;     /* its new name, or NULL */
        bool root_is_top;
        int r;
        char why[512];
} Reader;

static int reader_fail(Reader *x, const char *fmt, ...) _printf_(2, 3);
static int reader_fail(Reader *x, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->why, sizeof(x->why), fmt, ap);
        va_end(ap);
        return -EPERM;
}

/* Where the tree goes, decided by the first entry (as cp -r and docker cp). */
static int reader_setup(Reader *x, const char *top, bool top_is_dir) {
        struct stat st;
        x->root_is_top = !streq(top, ".");
        if (!x->root_is_top && mkdir(x->dest, 0755) < 0 && errno != EEXIST)
                return reader_fail(x, "%s: %s", x->dest, strerror(errno));
        int r = stat(x->dest, &st) < 0 ? -errno : 0;
        _cleanup_free_ char *parent = NULL;
        if (r >= 0 && S_ISDIR(st.st_mode))
                parent = strdup(x->dest);
        else if (!x->root_is_top || (r < 0 && r != -ENOENT))
                return reader_fail(x, "%s: %s", x->dest, r < 0 ? strerror(-r) : "not a directory");
        else if (r >= 0 && top_is_dir)
                return reader_fail(x, "cannot copy a directory onto the file %s", x->dest);
        else {
                _cleanup_free_ char *c = strdup(x->dest);
                char *slash = c ? strrchr(c, '/') : NULL;
                if (!c)
                        return -ENOMEM;
                x->rename = strdup(slash ? slash + 1 : c);
                parent = slash == c ? strdup("/") : slash ? strndup(c, (size_t) (slash - c)) : strdup(".");
        }
        if (!parent)
                return -ENOMEM;
        x->base_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (x->base_fd < 0 || fchdir(x->base_fd) < 0)
                return reader_fail(x, "%s: %s", parent, strerror(errno));
        return 0;
}

static bool reader_in_tree(const Reader *x, const char *np) {
        size_t tl = strlen(x->top);
        return !x->root_is_top || (strncmp(np, x->top, tl) == 0 && (np[tl] == 0 || np[tl] == '/'));
}

/* Check one entry and give it its name on this side; 1 to write it, 0 to skip. */
static int reader_check(Reader *x, struct archive_entry *e) {
        const char *name = sym_archive_entry_pathname(e) ?: "";
        _cleanup_free_ char *np = NULL, *renamed = NULL;
        if (agent_archive_path_normalize(name, &np) < 0)
                return reader_fail(x, "refused: %s: an absolute name or one with \"..\"", name);
        if (!x->top) {
                x->top = strndup(np, agent_archive_top_len(np));
                int r = x->top ? reader_setup(x, x->top, sym_archive_entry_filetype(e) == AE_IFDIR) : -ENOMEM;
                if (r < 0)
                        return r;
        } else if (!reader_in_tree(x, np))
                return reader_fail(x, "refused: %s: more than one top-level entry in the copy", name);
        const char *link = sym_archive_entry_symlink(e);
        if (sym_archive_entry_filetype(e) == AE_IFLNK && (!link || agent_symlink_escapes(np, link, x->root_is_top)))
                return reader_fail(x, "refused: %s: a symlink pointing out of the copied tree (%s)", name,
                                   link ? link : "");
        const char *hard = sym_archive_entry_hardlink(e);
        if (hard) {
                _cleanup_free_ char *nh = NULL, *rh = NULL;
                if (agent_archive_path_normalize(hard, &nh) < 0 || !reader_in_tree(x, nh) || streq(nh, ".") ||
                    agent_archive_path_rename(nh, x->rename, &rh) < 0)
                        return reader_fail(x, "refused: %s: a hard link to %s, outside the copied tree", name, hard);
                sym_archive_entry_copy_hardlink(e, rh);
        }
        if (agent_archive_path_rename(np, x->rename, &renamed) < 0)
                return -ENOMEM;
        if (streq(renamed, "."))
                return 0; /* the destination itself keeps what it has */
        sym_archive_entry_copy_pathname(e, renamed);
        return 1;
}

static int extract(Reader *x, struct archive *in, struct archive *out) {
        struct archive_entry *e;
        for (;;) {
                int q = sym_archive_read_next_header(in, &e);
                if (q == ARCHIVE_EOF)
                        return x->top ? 0 : reader_fail(x, "the copy is empty");
                if (q != ARCHIVE_OK)
                        return reader_fail(x, "the copy is not a valid tar stream: %s", sym_archive_error_string(in));
                int r = reader_check(x, e);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                if (sym_archive_write_header(out, e) < ARCHIVE_WARN)
                        return reader_fail(x, "%s: %s", sym_archive_entry_pathname(e), sym_archive_error_string(out));
                const void *buf;
                size_t len;
                la_int64_t off;
                while ((q = sym_archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
                        if (sym_archive_write_data_block(out, buf, len, off) != ARCHIVE_OK)
                                return reader_fail(x, "%s: %s", sym_archive_entry_pathname(e),
                                                   sym_archive_error_string(out));
                if (q != ARCHIVE_EOF || sym_archive_write_finish_entry(out) < ARCHIVE_WARN)
                        return reader_fail(x, "%s: %s", sym_archive_entry_pathname(e),
                                           q != ARCHIVE_EOF ? sym_archive_error_string(in)
                                                            : sym_archive_error_string(out));
        }
}

static void *reader_main(void *p) {
        Reader *x = p;
        struct archive *in = sym_archive_read_new(), *out = sym_archive_write_disk_new();
        x->r = -ENOMEM;
        if (in && out) {
                int flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_UNLINK |
                            ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                            ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | (geteuid() == 0 ? ARCHIVE_EXTRACT_OWNER : 0);
                sym_archive_write_disk_set_options(out, flags);
                sym_archive_read_support_format_tar(in);
                if (sym_archive_read_open_fd(in, x->fd, 64 * 1024) != ARCHIVE_OK)
                        x->r = reader_fail(x, "reading the stream: %s", sym_archive_error_string(in));
                else
                        x->r = extract(x, in, out);
                if (x->r >= 0 && sym_archive_write_close(out) != ARCHIVE_OK)
                        x->r = reader_fail(x, "%s: %s", x->dest, sym_archive_error_string(out));
        }
        sym_archive_read_free(in);
        sym_archive_write_free(out);
        x->fd = safe_close(x->fd); /* the agent's side sees the end of its output */
        return NULL;
}

/* ---- running a copy ---- */

/* Run fn in a thread on one end of a pipe while the stream runs on the other. */
static int run_copy(AgentClient *a, const WsReport *rep, const AgentFilesOptions *base, void *(*fn)(void *), void *arg,
                    int *thread_fd, bool thread_writes) {
        int r = archive_dl_open();
        if (r < 0)
                return r;
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        *thread_fd = thread_writes ? p[1] : p[0];
        int ours = thread_writes ? p[0] : p[1];
        pthread_t t;
        if (pthread_create(&t, NULL, fn, arg) != 0) {
                safe_close(p[0]);
                safe_close(p[1]);
                return -EAGAIN;
        }
        AgentFilesOptions o = *base;
        o.data_fd = ours;
        CpProgress pr = { .rep = rep, .started = now_monotonic() };
        if (rep && rep->progress) {
                o.progress = on_progress;
                o.userdata = &pr;
        }
        error_clear();
        r = agent_client_files(a, &o, USEC_INFINITY);
        /* Done with our end: a thread still writing (or reading) sees it. */
        safe_close(ours);
        (void) pthread_join(t, NULL);
        if (rep && rep->progress && rep->progress_end)
                rep->progress_end(rep->userdata);
        return r;
}

int cp_stream_put(AgentClient *a, const WsReport *rep, const char *guest_path, CpProduceFn fn, void *userdata) {
        CpWriter w = { .produce = fn, .userdata = userdata, .fd = -EBADF };
        AgentFilesOptions o = { .kind = AGENT_STREAM_FILES_PUT, .path = guest_path };
        int r = run_copy(a, rep, &o, writer_main, &w, &w.fd, true);
        if (w.r < 0)
                ws_fail(rep, "%s", w.why[0] ? w.why : strerror(-w.r));
        else if (r < 0)
                ws_fail(rep, "%s", error_last_message() ? error_last_message() : strerror(-r));
        return w.r < 0 ? w.r : r;
}

typedef struct PathSource {
        const char *src, *top;
} PathSource;

static int produce_path(CpWriter *w, void *userdata) {
        const PathSource *s = userdata;
        return cp_writer_tree(w, s->src, s->top);
}

/* SRC, SRC/ (the same) and SRC/. (its contents): where to read and the top's name. */
static int host_source(const char *arg, char **ret_src, char **ret_top) {
        _cleanup_free_ char *s = strdup(arg);
        if (!s)
                return -ENOMEM;
        size_t n = strlen(s);
        bool contents = n >= 2 && streq(s + n - 2, "/.");
        while (n > 1 && (s[n - 1] == '/' || (s[n - 1] == '.' && s[n - 2] == '/')))
                s[--n] = 0;
        const char *base = strrchr(s, '/') ? strrchr(s, '/') + 1 : s;
        *ret_top = strdup(contents || streq(base, ".") || streq(base, "..") || !*base ? "." : base);
        *ret_src = TAKE_PTR(s);
        return *ret_top ? 0 : -ENOMEM;
}

int cp_stream_put_path(AgentClient *a, const WsReport *rep, const char *src, const char *guest_path) {
        _cleanup_free_ char *path = NULL, *top = NULL;
        int r = host_source(src, &path, &top);
        if (r < 0)
                return r;
        struct stat st;
        if (lstat(path, &st) < 0) {
                r = -errno;
                ws_fail(rep, "%s: %s", src, strerror(-r));
                return r;
        }
        PathSource s = { .src = path, .top = top };
        return cp_stream_put(a, rep, guest_path, produce_path, &s);
}

int cp_stream_get(AgentClient *a, const WsReport *rep, const char *guest_path, uint32_t flags, const char *dest) {
        _cleanup_close_ int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        Reader x = { .dest = dest, .base_fd = -EBADF };
        AgentFilesOptions o = { .kind = AGENT_STREAM_FILES_GET, .flags = flags, .path = guest_path };
        int r = run_copy(a, rep, &o, reader_main, &x, &x.fd, false);
        /* The guest's reason first: a stream cut short also breaks our reader. */
        if (r < 0)
                ws_fail(rep, "%s", error_last_message() ? error_last_message() : strerror(-r));
        else if (x.r < 0)
                ws_fail(rep, "%s", x.why);
        if (cwd >= 0)
                (void) !fchdir(cwd);
        safe_close(x.base_fd);
        free(x.top);
        free(x.rename);
        return x.r < 0 ? x.r : r;
}
