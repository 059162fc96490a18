/* SPDX-License-Identifier: MIT */
/* banger vm cp SRC VM:DST | VM:SRC DST: files and trees between the host and
 * a guest, as a tar stream (pax) on one agent stream. The host side is
 * libarchive in a thread of ours, joined to the stream by a pipe, so nothing
 * is held whole in memory; the guest side is the agent itself (no tar, ssh
 * or shell needed in the image). Both sides apply the same rules
 * (agent-paths.h): one top-level entry, no absolute names or "..", no
 * symlinks pointing out of the tree, nothing created through a symlink. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-paths.h"
#include "cmd-vm.h"
#include "error.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"

#define PROGRESS_AFTER (1 * USEC_PER_SEC)

typedef struct Side {
        char *vm; /* NULL: the host */
        char *path;
} Side;

/* "VM:PATH" names the guest: a colon, and no slash before it. */
static int parse_side(const char *arg, Side *ret) {
        const char *colon = strchr(arg, ':');
        const char *slash = strchr(arg, '/');
        *ret = (Side){};
        if (colon && colon != arg && (!slash || slash > colon)) {
                ret->vm = strndup(arg, (size_t) (colon - arg));
                ret->path = strdup(colon + 1);
        } else
                ret->path = strdup(arg);
        return ret->path && (!colon || ret->vm || !ret->vm) ? 0 : -ENOMEM;
}

static void side_done(Side *s) {
        free(s->vm);
        free(s->path);
}

/* ---- progress ---- */

typedef struct CpProgress {
        bool tty;
        usec_t started, last;
        bool shown;
} CpProgress;

static void on_progress(void *userdata, uint64_t sent, uint64_t received) {
        CpProgress *p = userdata;
        usec_t now = now_monotonic();
        if (!p->tty || now - p->started < PROGRESS_AFTER || now - p->last < 200 * USEC_PER_MSEC)
                return;
        uint64_t bytes = MAX(sent, received);
        char size[16], rate[16];
        double secs = (double) (now - p->started) / USEC_PER_SEC;
        fprintf(stderr, "\r\033[Kcopying: %s (%s/s)", format_size(size, sizeof(size), bytes),
                format_size(rate, sizeof(rate), (uint64_t) ((double) bytes / secs)));
        p->last = now;
        p->shown = true;
}

static void cp_progress_end(CpProgress *p) {
        if (p->shown)
                fprintf(stderr, "\r\033[K");
}

/* ---- host to guest: libarchive reads the tree, writes the stream ---- */

typedef struct Writer {
        const char *src; /* as given */
        char *top;       /* the top entry's name: basename, or "." for SRC/. */
        size_t src_len;
        int fd; /* the pipe's write end */
        int r;
        char why[512];
} Writer;

static int writer_fail(Writer *w, struct archive *a, const char *what) {
        snprintf(w->why, sizeof(w->why), "%s: %s", what,
                 a && archive_error_string(a) ? archive_error_string(a) : "error");
        return -EIO;
}

/* The entry's name in the stream: the top, then the path below SRC. */
static int rename_entry(Writer *w, struct archive_entry *e) {
        const char *p = archive_entry_pathname(e);
        const char *rest = p && strncmp(p, w->src, w->src_len) == 0 ? p + w->src_len : "";
        _cleanup_free_ char *name = NULL;
        if (asprintf(&name, "%s%s%s", w->top, *rest && *rest != '/' ? "/" : "", rest) < 0)
                return -ENOMEM;
        archive_entry_copy_pathname(e, name);
        return 0;
}

static int copy_data(Writer *w, struct archive *disk, struct archive *out, struct archive_entry *e) {
        static char buf[64 * 1024];
        for (;;) {
                la_ssize_t n = archive_read_data(disk, buf, sizeof(buf));
                if (n == 0)
                        return 0;
                if (n < 0)
                        return writer_fail(w, disk, archive_entry_pathname(e));
                if (archive_write_data(out, buf, (size_t) n) != n)
                        return writer_fail(w, out, "writing the stream");
        }
}

static int write_one(Writer *w, struct archive *disk, struct archive *out, struct archive_entry_linkresolver *lr,
                     struct archive_entry *e) {
        struct archive_entry *spare = NULL;
        int r = rename_entry(w, e);
        if (r < 0)
                return r;
        archive_entry_set_uname(e, NULL);
        archive_entry_set_gname(e, NULL);
        archive_entry_linkify(lr, &e, &spare);
        if (e && archive_write_header(out, e) != ARCHIVE_OK)
                return writer_fail(w, out, archive_entry_pathname(e));
        if (e && archive_entry_size(e) > 0 && (r = copy_data(w, disk, out, e)) < 0)
                return r;
        return 0;
}

static int write_tree(Writer *w, struct archive *disk, struct archive *out) {
        struct archive_entry_linkresolver *lr = archive_entry_linkresolver_new();
        if (!lr)
                return -ENOMEM;
        archive_entry_linkresolver_set_strategy(lr, archive_format(out));
        int r = 0;
        while (r >= 0) {
                struct archive_entry *e = archive_entry_new();
                int q = e ? archive_read_next_header2(disk, e) : ARCHIVE_FATAL;
                if (q == ARCHIVE_EOF) {
                        archive_entry_free(e);
                        break;
                }
                if (q != ARCHIVE_OK)
                        r = writer_fail(w, disk, w->src);
                else {
                        (void) archive_read_disk_descend(disk);
                        r = write_one(w, disk, out, lr, e);
                }
                archive_entry_free(e);
        }
        archive_entry_linkresolver_free(lr);
        return r;
}

static void *writer_main(void *p) {
        Writer *w = p;
        struct archive *disk = archive_read_disk_new(), *out = archive_write_new();
        w->r = -ENOMEM;
        if (disk && out) {
                archive_read_disk_set_symlink_physical(disk); /* symlinks are stored, never followed */
                (void) archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL |
                                                                    ARCHIVE_READDISK_NO_FFLAGS);
                archive_write_set_format_pax(out); /* full pax: mtimes keep their nanoseconds */
                archive_write_set_bytes_in_last_block(out, 1);
                if (archive_read_disk_open(disk, w->src) != ARCHIVE_OK)
                        w->r = writer_fail(w, disk, w->src);
                else if (archive_write_open_fd(out, w->fd) != ARCHIVE_OK)
                        w->r = writer_fail(w, out, "writing the stream");
                else
                        w->r = write_tree(w, disk, out);
                if (w->r >= 0 && archive_write_close(out) != ARCHIVE_OK)
                        w->r = writer_fail(w, out, "writing the stream");
        }
        archive_read_free(disk);
        archive_write_free(out);
        w->fd = safe_close(w->fd); /* the stream ends here, complete or cut short */
        return NULL;
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
        const char *name = archive_entry_pathname(e) ?: "";
        _cleanup_free_ char *np = NULL, *renamed = NULL;
        if (agent_archive_path_normalize(name, &np) < 0)
                return reader_fail(x, "refused: %s: an absolute name or one with \"..\"", name);
        if (!x->top) {
                x->top = strndup(np, agent_archive_top_len(np));
                int r = x->top ? reader_setup(x, x->top, archive_entry_filetype(e) == AE_IFDIR) : -ENOMEM;
                if (r < 0)
                        return r;
        } else if (!reader_in_tree(x, np))
                return reader_fail(x, "refused: %s: more than one top-level entry in the copy", name);
        const char *link = archive_entry_symlink(e);
        if (archive_entry_filetype(e) == AE_IFLNK && (!link || agent_symlink_escapes(np, link, x->root_is_top)))
                return reader_fail(x, "refused: %s: a symlink pointing out of the copied tree (%s)", name,
                                   link ? link : "");
        const char *hard = archive_entry_hardlink(e);
        if (hard) {
                _cleanup_free_ char *nh = NULL, *rh = NULL;
                if (agent_archive_path_normalize(hard, &nh) < 0 || !reader_in_tree(x, nh) || streq(nh, ".") ||
                    agent_archive_path_rename(nh, x->rename, &rh) < 0)
                        return reader_fail(x, "refused: %s: a hard link to %s, outside the copied tree", name, hard);
                archive_entry_copy_hardlink(e, rh);
        }
        if (agent_archive_path_rename(np, x->rename, &renamed) < 0)
                return -ENOMEM;
        if (streq(renamed, "."))
                return 0; /* the destination itself keeps what it has */
        archive_entry_copy_pathname(e, renamed);
        return 1;
}

static int extract(Reader *x, struct archive *in, struct archive *out) {
        struct archive_entry *e;
        for (;;) {
                int q = archive_read_next_header(in, &e);
                if (q == ARCHIVE_EOF)
                        return x->top ? 0 : reader_fail(x, "the copy is empty");
                if (q != ARCHIVE_OK)
                        return reader_fail(x, "the copy is not a valid tar stream: %s", archive_error_string(in));
                int r = reader_check(x, e);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                if (archive_write_header(out, e) < ARCHIVE_WARN)
                        return reader_fail(x, "%s: %s", archive_entry_pathname(e), archive_error_string(out));
                const void *buf;
                size_t len;
                la_int64_t off;
                while ((q = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
                        if (archive_write_data_block(out, buf, len, off) != ARCHIVE_OK)
                                return reader_fail(x, "%s: %s", archive_entry_pathname(e), archive_error_string(out));
                if (q != ARCHIVE_EOF || archive_write_finish_entry(out) < ARCHIVE_WARN)
                        return reader_fail(x, "%s: %s", archive_entry_pathname(e),
                                           q != ARCHIVE_EOF ? archive_error_string(in) : archive_error_string(out));
        }
}

static void *reader_main(void *p) {
        Reader *x = p;
        struct archive *in = archive_read_new(), *out = archive_write_disk_new();
        x->r = -ENOMEM;
        if (in && out) {
                int flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_UNLINK |
                            ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                            ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | (geteuid() == 0 ? ARCHIVE_EXTRACT_OWNER : 0);
                archive_write_disk_set_options(out, flags);
                archive_read_support_format_tar(in);
                if (archive_read_open_fd(in, x->fd, 64 * 1024) != ARCHIVE_OK)
                        x->r = reader_fail(x, "reading the stream: %s", archive_error_string(in));
                else
                        x->r = extract(x, in, out);
                if (x->r >= 0 && archive_write_close(out) != ARCHIVE_OK)
                        x->r = reader_fail(x, "%s: %s", x->dest, archive_error_string(out));
        }
        archive_read_free(in);
        archive_write_free(out);
        x->fd = safe_close(x->fd); /* the agent's side sees the end of its output */
        return NULL;
}

/* ---- the command ---- */

/* Run fn in a thread on one end of a pipe while the stream runs on the other. */
static int run_copy(AgentClient *a, const AgentFilesOptions *base, void *(*fn)(void *), void *arg, int *thread_fd,
                    bool thread_writes) {
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
        CpProgress pr = { .tty = isatty(STDERR_FILENO), .started = now_monotonic() };
        o.progress = on_progress;
        o.userdata = &pr;
        error_clear();
        int r = agent_client_files(a, &o, USEC_INFINITY);
        /* Done with our end: a thread still writing (or reading) sees it. */
        safe_close(ours);
        (void) pthread_join(t, NULL);
        cp_progress_end(&pr);
        return r;
}

static int copy_in(AgentClient *a, const char *src, const char *guest_path) {
        _cleanup_free_ char *path = NULL, *top = NULL;
        int r = host_source(src, &path, &top);
        if (r < 0)
                return r;
        struct stat st;
        if (lstat(path, &st) < 0) {
                fprintf(stderr, "banger: vm cp: %s: %s\n", src, strerror(errno));
                return -errno;
        }
        Writer w = { .src = path, .top = top, .src_len = strlen(path) };
        AgentFilesOptions o = { .kind = AGENT_STREAM_FILES_PUT, .path = guest_path };
        r = run_copy(a, &o, writer_main, &w, &w.fd, true);
        if (w.r < 0)
                fprintf(stderr, "banger: vm cp: %s\n", w.why);
        else if (r < 0)
                fprintf(stderr, "banger: vm cp: %s\n", error_last_message() ? error_last_message() : strerror(-r));
        return w.r < 0 ? w.r : r;
}

static int copy_out(AgentClient *a, const char *guest_path, uint32_t flags, const char *dest) {
        Reader x = { .dest = dest, .base_fd = -EBADF };
        AgentFilesOptions o = { .kind = AGENT_STREAM_FILES_GET, .flags = flags, .path = guest_path };
        int r = run_copy(a, &o, reader_main, &x, &x.fd, false);
        /* The guest's reason first: a stream cut short also breaks our reader. */
        if (r < 0)
                fprintf(stderr, "banger: vm cp: %s\n", error_last_message() ? error_last_message() : strerror(-r));
        else if (x.r < 0)
                fprintf(stderr, "banger: vm cp: %s\n", x.why);
        safe_close(x.base_fd);
        free(x.top);
        free(x.rename);
        return x.r < 0 ? x.r : r;
}

static void cp_help(void) {
        printf("Usage: banger vm cp SRC VM:DST\n"
               "       banger vm cp VM:SRC DST\n"
               "\n"
               "Copy a file or a directory tree into or out of a running VM, through its agent\n"
               "(the image needs no tar, ssh or shell). Modes, numeric owners, symlinks, hard\n"
               "links and modification times are kept. Like cp -r and docker cp: when DST is\n"
               "an existing directory, SRC is copied into it; otherwise SRC is copied as DST\n"
               "(whose parent must exist). SRC/. copies the contents of the directory SRC.\n"
               "Guest paths are absolute. Entries with absolute names or \"..\", and symlinks\n"
               "pointing out of the copied tree, are refused on both sides; nothing is ever\n"
               "written through a symlink. A large copy shows its progress on a terminal.\n");
}

int vm_cp_cmd(Cli *cli, int argc, char **argv) {
        static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
        for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) >= 0;) {
                if (o == 'h') {
                        cp_help();
                        return EXIT_OK;
                }
                return cli_option_error("vm cp", argv);
        }
        if (argc - optind != 2)
                return cli_usage_error("vm cp", "expects a source and a destination, one of them VM:PATH");
        Side src, dst;
        if (parse_side(argv[optind], &src) < 0 || parse_side(argv[optind + 1], &dst) < 0)
                return EXIT_FAIL;
        int r = EXIT_USAGE;
        Side *guest = src.vm ? &src : &dst;
        if (!src.vm == !dst.vm)
                cli_usage_error("vm cp", "exactly one of SRC and DST must be VM:PATH");
        else if (guest->path[0] != '/')
                cli_usage_error("vm cp", "the guest path %s is not absolute", guest->path);
        else {
                (void) signal(SIGPIPE, SIG_IGN); /* a side that stops early is an error, not a death */
                _cleanup_rpc_client_ RpcClient *c = NULL;
                _cleanup_(agent_client_freep) AgentClient *a = NULL;
                r = EXIT_FAIL;
                if (cli_connect(cli, &c) >= 0 && vm_agent_client(cli, c, guest->vm, &a) >= 0) {
                        size_t n = strlen(src.path);
                        uint32_t flags = n >= 2 && streq(src.path + n - 2, "/.") ? AGENT_FILES_FLAG_CONTENTS : 0;
                        r = (src.vm ? copy_out(a, src.path, flags, dst.path) : copy_in(a, src.path, dst.path)) < 0
                                    ? EXIT_FAIL
                                    : EXIT_OK;
                }
        }
        side_done(&src);
        side_done(&dst);
        return r;
}
