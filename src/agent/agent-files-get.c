/* SPDX-License-Identifier: MIT */
/* files get: a guest path as a tar stream on stdout (agent-files.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent-files.h"
#include "agent-protocol.h"
#include "agent-tar.h"
#include "fs-util.h"
#include "macro.h"

#define MAX_DEPTH 256

typedef struct Inode {
        dev_t dev;
        ino_t ino;
        char *path;
} Inode;

typedef struct Writer {
        const char *src; /* the guest path, for messages */
        Inode *inodes;   /* files with more than one link, by first path */
        size_t n_inodes, cap_inodes;
        uint8_t buf[AGENT_DATA_CHUNK];
} Writer;

static int put(const void *p, size_t len) {
        int r = loop_write(STDOUT_FILENO, p, len);
        return r < 0 ? files_fail(r, "the host stopped reading the copy") : 0;
}

static const char *link_seen(Writer *w, const struct stat *st, const char *path) {
        for (size_t i = 0; i < w->n_inodes; i++)
                if (w->inodes[i].dev == st->st_dev && w->inodes[i].ino == st->st_ino)
                        return w->inodes[i].path;
        if (w->n_inodes == w->cap_inodes) {
                size_t cap = MAX(w->cap_inodes * 2, (size_t) 64);
                Inode *n = realloc(w->inodes, cap * sizeof(*n));
                if (!n)
                        return NULL;
                w->inodes = n;
                w->cap_inodes = cap;
        }
        char *copy = strdup(path);
        if (copy)
                w->inodes[w->n_inodes++] = (Inode){ .dev = st->st_dev, .ino = st->st_ino, .path = copy };
        return NULL;
}

static char entry_type(mode_t m) {
        switch (m & S_IFMT) {
        case S_IFREG:
                return TAR_REG;
        case S_IFDIR:
                return TAR_DIR;
        case S_IFLNK:
                return TAR_SYMLINK;
        case S_IFCHR:
                return TAR_CHR;
        case S_IFBLK:
                return TAR_BLK;
        case S_IFIFO:
                return TAR_FIFO;
        default:
                return 0;
        }
}

/* The file's bytes, exactly size of them (zeros if it shrank), and padding. */
static int put_data(Writer *w, int fd, uint64_t size, const char *apath) {
        uint64_t left = size;
        while (left > 0) {
                ssize_t n = read(fd, w->buf, (size_t) MIN(left, (uint64_t) sizeof(w->buf)));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return files_fail(-errno, "%s: %s", apath, strerror(errno));
                if (n == 0) {
                        fprintf(stderr, "warning: %s shrank while being copied; padded with zeros\n", apath);
                        memset(w->buf, 0, sizeof(w->buf));
                        n = (ssize_t) MIN(left, (uint64_t) sizeof(w->buf));
                }
                int r = put(w->buf, (size_t) n);
                if (r < 0)
                        return r;
                left -= (uint64_t) n;
        }
        static const uint8_t zeros[TAR_BLOCK];
        return put(zeros, (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK);
}

static int put_header(const TarEntry *e) {
        _cleanup_free_ uint8_t *h = NULL;
        size_t len;
        int r = tar_header_encode(e, &h, &len);
        return r < 0 ? files_fail(r, "out of memory") : put(h, len);
}

static int emit(Writer *w, int dfd, const char *name, const char *apath, unsigned depth);

static int emit_dir(Writer *w, int dfd, const char *name, const char *apath, unsigned depth) {
        if (depth >= MAX_DEPTH)
                return files_fail(-ELOOP, "%s: nested more than %u levels deep", apath, MAX_DEPTH);
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                int e = errno;
                safe_close(fd);
                return files_fail(-e, "%s: %s", apath, strerror(e));
        }
        int r = 0;
        for (struct dirent *de; r >= 0 && (errno = 0, de = readdir(d));) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                char *child = NULL;
                if (asprintf(&child, "%s/%s", apath, de->d_name) < 0)
                        r = files_fail(-ENOMEM, "out of memory");
                else
                        r = emit(w, dirfd(d), de->d_name, child, depth + 1);
                free(child);
        }
        if (r >= 0 && errno != 0)
                r = files_fail(-errno, "%s: %s", apath, strerror(errno));
        closedir(d);
        return r;
}

static int emit_file(Writer *w, int dfd, const char *name, const char *apath, const struct stat *st, TarEntry *e) {
        const char *first = st->st_nlink > 1 ? link_seen(w, st, apath) : NULL;
        if (first) {
                e->type = TAR_LINK;
                e->linkpath = (char *) first;
                return put_header(e);
        }
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return files_fail(-errno, "%s: %s", apath, strerror(errno));
        e->size = (uint64_t) st->st_size;
        int r = put_header(e);
        if (r >= 0)
                r = put_data(w, fd, e->size, apath);
        safe_close(fd);
        return r;
}

static int emit(Writer *w, int dfd, const char *name, const char *apath, unsigned depth) {
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return files_fail(-errno, "%s: %s", apath, strerror(errno));
        TarEntry e = { .path = (char *) apath,
                       .type = entry_type(st.st_mode),
                       .mode = st.st_mode & 07777,
                       .uid = st.st_uid,
                       .gid = st.st_gid,
                       .mtime_sec = st.st_mtim.tv_sec,
                       .mtime_nsec = (uint32_t) st.st_mtim.tv_nsec,
                       .devmajor = major(st.st_rdev),
                       .devminor = minor(st.st_rdev) };
        char target[AGENT_PATH_MAX + 1];
        switch (e.type) {
        case 0:
                fprintf(stderr, "warning: %s: sockets are not copied\n", apath);
                return 0;
        case TAR_REG:
                return emit_file(w, dfd, name, apath, &st, &e);
        case TAR_SYMLINK: {
                ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
                if (n < 0)
                        return files_fail(-errno, "%s: %s", apath, strerror(errno));
                target[n] = 0;
                e.linkpath = target;
                return put_header(&e);
        }
        case TAR_DIR: {
                int r = put_header(&e);
                return r < 0 ? r : emit_dir(w, dfd, name, apath, depth);
        }
        default:
                return put_header(&e);
        }
}

int agent_files_get(const void *arg) {
        const AgentFilesSpec *spec = arg;
        _cleanup_free_ char *copy = strdup(spec->path);
        if (!copy)
                return files_fail(-ENOMEM, "out of memory"), 1;
        size_t len = strlen(copy);
        while (len > 1 && copy[len - 1] == '/')
                copy[--len] = 0;
        char *slash = strrchr(copy, '/');
        const char *name = slash[1] ? slash + 1 : ".";
        const char *parent = slash == copy ? "/" : (*slash = 0, copy);
        int topfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (topfd < 0)
                return files_fail(-errno, "%s: %s", spec->path, strerror(errno)), 1;
        bool contents = (spec->flags & AGENT_FILES_FLAG_CONTENTS) || strcmp(name, ".") == 0;
        Writer *w = calloc(1, sizeof(Writer));
        int r = w ? 0 : -ENOMEM;
        if (w) {
                w->src = spec->path;
                r = emit(w, topfd, name, contents ? "." : name, 0);
        }
        static const uint8_t end[2 * TAR_BLOCK];
        if (r >= 0)
                r = put(end, sizeof(end));
        for (size_t i = 0; w && i < w->n_inodes; i++)
                free(w->inodes[i].path);
        if (w)
                free(w->inodes);
        free(w);
        safe_close(topfd);
        return r < 0 ? 1 : 0;
}
