/* SPDX-License-Identifier: MIT */
/* files put: extract a tar stream from stdin (agent-files.h). Every entry
 * is created relative to a directory fd, each parent component opened with
 * O_NOFOLLOW, so a symlink in the stream (or already in the guest) can
 * never redirect a write out of the destination. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent-files.h"
#include "agent-paths.h"
#include "agent-protocol.h"
#include "agent-tar.h"
#include "fs-util.h"
#include "macro.h"

typedef struct DirFix {
        char *path;
        uint32_t mode;
        uint64_t uid, gid;
        struct timespec mtime;
} DirFix;

typedef struct Extract {
        TarReader r;
        const char *dest; /* for messages */
        int base_fd;      /* entries are created beneath it */
        char *rename;     /* the top's new name, or NULL */
        char *top;        /* the first entry's top component ("." for contents) */
        bool root_is_top;
        bool is_root;
        DirFix *dirs; /* directory modes and times, applied last (children first) */
        size_t n_dirs, cap_dirs;
        uint8_t buf[AGENT_DATA_CHUNK];
} Extract;

static long read_stdin(void *userdata, uint8_t *buf, size_t len) {
        for (;;) {
                ssize_t n = read(STDIN_FILENO, buf, len);
                if (n >= 0)
                        return (long) n;
                if (errno != EINTR)
                        return -errno;
        }
}

/* ---- where the tree goes ---- */

static int split_parent(const char *path, char **ret_parent, char **ret_name) {
        _cleanup_free_ char *c = strdup(path);
        if (!c)
                return -ENOMEM;
        size_t len = strlen(c);
        while (len > 1 && c[len - 1] == '/')
                c[--len] = 0;
        char *slash = strrchr(c, '/');
        *ret_name = strdup(slash + 1);
        *ret_parent = slash == c ? strdup("/") : strndup(c, (size_t) (slash - c));
        return *ret_name && *ret_parent ? 0 : -ENOMEM;
}

/* The destination rules (as cp -r and docker cp): into an existing
 * directory, else as the named path; a directory never replaces a file. */
static int setup_dest(Extract *x, const char *top, char type) {
        struct stat st;
        x->root_is_top = strcmp(top, ".") != 0;
        if (!x->root_is_top && mkdir(x->dest, 0755) < 0 && errno != EEXIST)
                return files_fail(-errno, "%s: %s", x->dest, strerror(errno));
        int r = stat(x->dest, &st) < 0 ? -errno : 0;
        _cleanup_free_ char *parent = NULL, *name = NULL;
        if (r >= 0 && S_ISDIR(st.st_mode))
                parent = strdup(x->dest);
        else if (!x->root_is_top)
                return files_fail(-ENOTDIR, "%s is not a directory", x->dest);
        else if (r < 0 && r != -ENOENT)
                return files_fail(r, "%s: %s", x->dest, strerror(-r));
        else if (r >= 0 && type == TAR_DIR)
                return files_fail(-ENOTDIR, "cannot copy a directory onto the file %s", x->dest);
        else if ((r = split_parent(x->dest, &parent, &name)) < 0)
                return files_fail(r, "out of memory");
        if (!parent)
                return files_fail(-ENOMEM, "out of memory");
        x->base_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (x->base_fd < 0)
                return files_fail(-errno, "%s: %s", parent, strerror(errno));
        x->rename = TAKE_PTR(name);
        return 0;
}

/* ---- walking beneath the base ---- */

/* Open the directory holding path (relative), creating missing parents;
 * *ret_name points at the last component. Never follows a symlink. */
static int open_parent(Extract *x, const char *path, bool create, const char **ret_name) {
        int fd = fcntl(x->base_fd, F_DUPFD_CLOEXEC, 3);
        const char *p = path;
        for (size_t n; fd >= 0 && (n = strcspn(p, "/")) < strlen(p);) {
                char comp[256];
                if (n >= sizeof(comp)) {
                        safe_close(fd);
                        return files_fail(-ENAMETOOLONG, "%s: a name is too long", path);
                }
                memcpy(comp, p, n);
                comp[n] = 0;
                if (create && mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
                        int e = errno;
                        safe_close(fd);
                        return files_fail(-e, "%s: %s", path, strerror(e));
                }
                int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                int e = errno;
                safe_close(fd);
                if (next < 0)
                        return files_fail(-e, "%s: %s", path,
                                          e == ELOOP || e == ENOTDIR
                                                  ? "a parent is a symlink or not a directory: refused"
                                                  : strerror(e));
                fd = next;
                p += n + 1;
        }
        *ret_name = p;
        return fd < 0 ? files_fail(-errno, "%s: %s", path, strerror(errno)) : fd;
}

/* Make room for a new non-directory entry: remove what is there (not a directory). */
static int clear_slot(int dfd, const char *name, const char *path) {
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : files_fail(-errno, "%s: %s", path, strerror(errno));
        if (S_ISDIR(st.st_mode))
                return files_fail(-EISDIR, "%s: a directory is in the way", path);
        return unlinkat(dfd, name, 0) < 0 ? files_fail(-errno, "%s: %s", path, strerror(errno)) : 0;
}

static struct timespec entry_mtime(const TarEntry *e) {
        return (struct timespec){ .tv_sec = (time_t) e->mtime_sec, .tv_nsec = e->mtime_nsec };
}

/* Owner, then mode (a chown clears set-id bits), then times. */
static int fix_fd(Extract *x, int fd, uint32_t mode, uint64_t uid, uint64_t gid, struct timespec mtime) {
        if (x->is_root && fchown(fd, (uid_t) uid, (gid_t) gid) < 0)
                return -errno;
        if (fchmod(fd, mode & 07777) < 0)
                return -errno;
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, mtime };
        return futimens(fd, ts) < 0 ? -errno : 0;
}

/* ---- entries ---- */

static int put_regular(Extract *x, int dfd, const char *name, const char *path, const TarEntry *e) {
        int r = clear_slot(dfd, name, path);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return files_fail(-errno, "%s: %s", path, strerror(errno));
        for (long n; (n = tar_read_data(&x->r, x->buf, sizeof(x->buf))) != 0;) {
                if (n < 0)
                        return files_fail((int) n, "%s: %s", path,
                                          n == -EBADMSG ? "the archive ends early" : strerror((int) -n));
                if ((r = loop_write(fd, x->buf, (size_t) n)) < 0)
                        return files_fail(r, "%s: %s", path, strerror(-r));
        }
        r = fix_fd(x, fd, e->mode, e->uid, e->gid, entry_mtime(e));
        return r < 0 ? files_fail(r, "%s: %s", path, strerror(-r)) : 0;
}

static int put_symlink(Extract *x, int dfd, const char *name, const char *path, const TarEntry *e) {
        int r = clear_slot(dfd, name, path);
        if (r < 0)
                return r;
        if (symlinkat(e->linkpath, dfd, name) < 0)
                return files_fail(-errno, "%s: %s", path, strerror(errno));
        if (x->is_root && fchownat(dfd, name, (uid_t) e->uid, (gid_t) e->gid, AT_SYMLINK_NOFOLLOW) < 0)
                return files_fail(-errno, "%s: %s", path, strerror(errno));
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, entry_mtime(e) };
        (void) utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
}

static int put_hardlink(Extract *x, int dfd, const char *name, const char *path, const char *target) {
        const char *tname;
        int tfd = open_parent(x, target, false, &tname);
        if (tfd < 0)
                return tfd;
        int r = clear_slot(dfd, name, path);
        if (r >= 0 && linkat(tfd, tname, dfd, name, 0) < 0)
                r = files_fail(-errno, "%s: cannot link to %s: %s", path, target, strerror(errno));
        safe_close(tfd);
        return r;
}

static int put_dir(Extract *x, int dfd, const char *name, const char *path, const TarEntry *e) {
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) && unlinkat(dfd, name, 0) < 0)
                return files_fail(-errno, "%s: %s", path, strerror(errno));
        if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
                return files_fail(-errno, "%s: %s", path, strerror(errno));
        if (x->n_dirs == x->cap_dirs) {
                size_t cap = MAX(x->cap_dirs * 2, (size_t) 64);
                DirFix *n = realloc(x->dirs, cap * sizeof(*n));
                if (!n)
                        return files_fail(-ENOMEM, "out of memory");
                x->dirs = n;
                x->cap_dirs = cap;
        }
        char *copy = strdup(path);
        if (!copy)
                return files_fail(-ENOMEM, "out of memory");
        x->dirs[x->n_dirs++] =
                (DirFix){ .path = copy, .mode = e->mode, .uid = e->uid, .gid = e->gid, .mtime = entry_mtime(e) };
        return 0;
}

static int put_node(Extract *x, int dfd, const char *name, const char *path, const TarEntry *e) {
        mode_t type = e->type == TAR_CHR ? S_IFCHR : e->type == TAR_BLK ? S_IFBLK : S_IFIFO;
        int r = clear_slot(dfd, name, path);
        if (r < 0)
                return r;
        if (mknodat(dfd, name, type | 0600, makedev(e->devmajor, e->devminor)) < 0)
                return files_fail(-errno, "%s: %s", path, strerror(errno));
        _cleanup_close_ int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && x->is_root)
                (void) !fchownat(fd, "", (uid_t) e->uid, (gid_t) e->gid, AT_EMPTY_PATH);
        (void) !fchmodat(dfd, name, e->mode & 07777, 0);
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, entry_mtime(e) };
        (void) utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
}

static bool in_tree(const Extract *x, const char *np) {
        size_t tl = strlen(x->top);
        if (!x->root_is_top)
                return true;
        return strncmp(np, x->top, tl) == 0 && (np[tl] == 0 || np[tl] == '/');
}

/* Check an entry against the tree rules: where it goes and, for a hard
 * link, where its target is. */
static int entry_paths(Extract *x, const TarEntry *e, char **ret_path, char **ret_link) {
        _cleanup_free_ char *np = NULL, *nl = NULL;
        if (agent_archive_path_normalize(e->path, &np) < 0)
                return files_fail(-EPERM, "refused: %s: an absolute name or one with \"..\"", e->path);
        if (!x->top) {
                x->top = strndup(np, agent_archive_top_len(np));
                if (!x->top)
                        return files_fail(-ENOMEM, "out of memory");
                int r = setup_dest(x, x->top, e->type);
                if (r < 0)
                        return r;
        } else if (!in_tree(x, np))
                return files_fail(-EPERM, "refused: %s: more than one top-level entry in the copy", e->path);
        if (e->type == TAR_SYMLINK && agent_symlink_escapes(np, e->linkpath, x->root_is_top))
                return files_fail(-EPERM, "refused: %s: a symlink pointing out of the copied tree (%s)", e->path,
                                  e->linkpath);
        if (e->type == TAR_LINK) {
                if (agent_archive_path_normalize(e->linkpath, &nl) < 0 || !in_tree(x, nl) || strcmp(nl, ".") == 0)
                        return files_fail(-EPERM, "refused: %s: a hard link to %s, outside the copied tree", e->path,
                                          e->linkpath);
                if (agent_archive_path_rename(nl, x->rename, ret_link) < 0)
                        return files_fail(-ENOMEM, "out of memory");
        }
        if (agent_archive_path_rename(np, x->rename, ret_path) < 0)
                return files_fail(-ENOMEM, "out of memory");
        return 0;
}

static int extract_one(Extract *x, const TarEntry *e) {
        _cleanup_free_ char *path = NULL, *link = NULL;
        int r = entry_paths(x, e, &path, &link);
        if (r < 0 || strcmp(path, ".") == 0)
                return r; /* the destination itself keeps what it has */
        const char *name;
        int dfd = open_parent(x, path, true, &name);
        if (dfd < 0)
                return dfd;
        switch (e->type) {
        case TAR_REG:
                r = put_regular(x, dfd, name, path, e);
                break;
        case TAR_SYMLINK:
                r = put_symlink(x, dfd, name, path, e);
                break;
        case TAR_LINK:
                r = put_hardlink(x, dfd, name, path, link);
                break;
        case TAR_DIR:
                r = put_dir(x, dfd, name, path, e);
                break;
        default:
                r = put_node(x, dfd, name, path, e);
                break;
        }
        safe_close(dfd);
        return r;
}

static int fix_dirs(Extract *x) {
        int r = 0;
        for (size_t i = x->n_dirs; r >= 0 && i-- > 0;) {
                const DirFix *d = &x->dirs[i];
                const char *name;
                int pfd = open_parent(x, d->path, false, &name);
                if (pfd < 0)
                        return pfd;
                int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                r = fd < 0 ? -errno : fix_fd(x, fd, d->mode, d->uid, d->gid, d->mtime);
                if (r < 0)
                        files_fail(r, "%s: %s", d->path, strerror(-r));
                safe_close(fd);
                safe_close(pfd);
        }
        return r;
}

static void extract_free(Extract *x) {
        for (size_t i = 0; i < x->n_dirs; i++)
                free(x->dirs[i].path);
        free(x->dirs);
        free(x->rename);
        free(x->top);
        safe_close(x->base_fd);
        free(x);
}

int agent_files_put(const void *arg) {
        const AgentFilesSpec *spec = arg;
        Extract *x = calloc(1, sizeof(*x));
        if (!x)
                return files_fail(-ENOMEM, "out of memory"), 1;
        *x = (Extract){ .r = { .read = read_stdin }, .dest = spec->path, .base_fd = -EBADF, .is_root = geteuid() == 0 };
        int r;
        for (;;) {
                TarEntry e = {};
                const char *why = NULL;
                r = tar_read_header(&x->r, &e, &why);
                if (r < 0)
                        files_fail(r, "the copy is not a valid tar stream: %s", why ? why : strerror(-r));
                if (r <= 0)
                        break;
                r = extract_one(x, &e);
                tar_entry_done(&e);
                if (r < 0)
                        break;
        }
        if (r >= 0 && !x->top)
                r = files_fail(-EBADMSG, "the copy is empty");
        if (r >= 0)
                r = fix_dirs(x);
        extract_free(x);
        return r < 0 ? 1 : 0;
}
