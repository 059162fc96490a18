/* SPDX-License-Identifier: MIT */
#include "file-tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "log.h"
#include "string-util.h"

#define COPY_CHUNK (1U << 20)

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);

static void hex_encode(const unsigned char *md, unsigned n, char *out) {
        static const char hex[] = "0123456789abcdef";
        for (unsigned i = 0; i < n; i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 15];
        }
        out[2 * n] = '\0';
}

static int sha256_final(EVP_MD_CTX *ctx, char ret[static SHA256_HEX_LEN + 1]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (EVP_DigestFinal_ex(ctx, md, &n) != 1 || n != SHA256_HEX_LEN / 2)
                return -EIO;
        hex_encode(md, n, ret);
        return 0;
}

static EVP_MD_CTX *sha256_new(void) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(ctx);
                return NULL;
        }
        return ctx;
}

int sha256_buffer(const void *data, size_t len, char ret[static SHA256_HEX_LEN + 1]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = sha256_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestUpdate(ctx, data, len) != 1)
                return -EIO;
        return sha256_final(ctx, ret);
}

/* Read in_fd to its end, hashing, and write to out_fd when out_fd >= 0. */
static int stream_hashed(int in_fd, int out_fd, const Progress *progress, const char *stage, uint64_t total,
                         char *ret_sha256, uint64_t *ret_size) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = sha256_new();
        _cleanup_free_ char *buf = malloc(COPY_CHUNK);
        uint64_t done = 0;
        if (!ctx || !buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = loop_read(in_fd, buf, COPY_CHUNK);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(ctx, buf, (size_t) n) != 1)
                        return -EIO;
                int r = out_fd >= 0 ? loop_write(out_fd, buf, (size_t) n) : 0;
                if (r < 0)
                        return r;
                done += (uint64_t) n;
                progress_report(progress, stage, NULL, done, total);
                if ((r = progress_check(progress)) < 0)
                        return r;
        }
        if (ret_size)
                *ret_size = done;
        return ret_sha256 ? sha256_final(ctx, ret_sha256) : 0;
}

int sha256_fd(int fd, char ret[static SHA256_HEX_LEN + 1], uint64_t *ret_size) {
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        return stream_hashed(fd, -EBADF, NULL, NULL, 0, ret, ret_size);
}

/* Create dst_dirfd/name exclusively with exactly mode: the umask may have
 * narrowed the creation mode, and fchmod on the fd only restores the
 * intended bits (never a looser window). */
static int create_exact(int dst_dirfd, const char *name, mode_t mode) {
        int fd = openat(dst_dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, mode & 07777) < 0) {
                int r = -errno;
                safe_close(fd);
                (void) unlinkat(dst_dirfd, name, 0);
                return r;
        }
        return fd;
}

int copy_file_at(int src_fd, int dst_dirfd, const char *name, mode_t mode, const Progress *progress, const char *stage,
                 char ret_sha256[SHA256_HEX_LEN + 1], uint64_t *ret_size) {
        struct stat st;
        if (fstat(src_fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        _cleanup_close_ int out = create_exact(dst_dirfd, name, mode);
        if (out < 0)
                return out;
        int r = stream_hashed(src_fd, out, progress, stage, (uint64_t) st.st_size, ret_sha256, ret_size);
        if (r >= 0 && fsync(out) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dst_dirfd, name, 0);
        return r;
}

int write_new_file_at(int dst_dirfd, const char *name, const void *data, size_t len, mode_t mode,
                      char ret_sha256[SHA256_HEX_LEN + 1]) {
        _cleanup_close_ int out = create_exact(dst_dirfd, name, mode);
        if (out < 0)
                return out;
        int r = loop_write(out, data, len);
        if (r >= 0 && fsync(out) < 0)
                r = -errno;
        if (r >= 0 && ret_sha256)
                r = sha256_buffer(data, len, ret_sha256);
        if (r < 0)
                (void) unlinkat(dst_dirfd, name, 0);
        return r;
}

static void copy_owner(int fd, const struct stat *st) {
        /* Only root can give files away; an unprivileged copy keeps ours. */
        if (geteuid() == 0 && fchown(fd, st->st_uid, st->st_gid) < 0)
                log_debug_errno(-errno, "fchown: %m");
}

typedef struct TreeCopy {
        FileTreeSkipFn skip;
        void *userdata;
        char path[PATH_MAX]; /* relative path of the directory being copied */
} TreeCopy;

static int copy_dir_contents(TreeCopy *c, int src_fd, int dst_fd, unsigned depth);

static int copy_subdir(TreeCopy *c, int src_fd, int dst_fd, const char *name, const struct stat *st, unsigned depth) {
        if (depth >= FILE_TREE_DEPTH_MAX)
                return -ELOOP;
        if (mkdirat(dst_fd, name, 0700) < 0)
                return -errno;
        _cleanup_close_ int s = open_dir_nofollow(src_fd, name);
        _cleanup_close_ int d = open_dir_nofollow(dst_fd, name);
        if (s < 0 || d < 0)
                return s < 0 ? s : d;
        size_t saved = strlen(c->path);
        int n = snprintf(c->path + saved, sizeof(c->path) - saved, "%s/", name);
        if (n < 0 || (size_t) n >= sizeof(c->path) - saved)
                return -ENAMETOOLONG;
        int r = copy_dir_contents(c, s, d, depth + 1);
        c->path[saved] = '\0';
        if (r < 0)
                return r;
        copy_owner(d, st);
        /* Permissions last: a read-only source directory must not stop us
         * filling its copy. */
        return fchmod(d, st->st_mode & 07777) < 0 ? -errno : 0;
}

static int copy_symlink(int src_fd, int dst_fd, const char *name) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(src_fd, name, target, sizeof(target) - 1);
        if (n < 0)
                return -errno;
        target[n] = '\0';
        if (symlinkat(target, dst_fd, name) < 0)
                return -errno;
        return 0;
}

static int copy_regular(int src_fd, int dst_fd, const char *name, const struct stat *st) {
        _cleanup_close_ int in = openat(src_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (in < 0)
                return -errno;
        _cleanup_close_ int out = create_exact(dst_fd, name, st->st_mode & 0777);
        if (out < 0)
                return out;
        int r = stream_hashed(in, out, NULL, NULL, 0, NULL, NULL);
        if (r < 0)
                return r;
        copy_owner(out, st);
        /* After fchown, which clears set-id bits. */
        return fchmod(out, st->st_mode & 07777) < 0 ? -errno : 0;
}

static int copy_entry(TreeCopy *c, int src_fd, int dst_fd, const char *name, unsigned depth) {
        struct stat st;
        char rel[PATH_MAX];
        if (fstatat(src_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        int n = snprintf(rel, sizeof(rel), "%s%s", c->path, name);
        if (n < 0 || (size_t) n >= sizeof(rel))
                return -ENAMETOOLONG;
        if (c->skip && c->skip(rel, S_ISDIR(st.st_mode), c->userdata))
                return 0;
        if (S_ISDIR(st.st_mode))
                return copy_subdir(c, src_fd, dst_fd, name, &st, depth);
        if (S_ISLNK(st.st_mode))
                return copy_symlink(src_fd, dst_fd, name);
        if (S_ISREG(st.st_mode))
                return copy_regular(src_fd, dst_fd, name, &st);
        log_debug("copy: skipping special file %s", rel);
        return 0;
}

static int copy_dir_contents(TreeCopy *c, int src_fd, int dst_fd, unsigned depth) {
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(src_fd, ".", &d);
        if (r < 0)
                return r;
        for (struct dirent *de; (errno = 0, de = readdir(d));) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                r = copy_entry(c, src_fd, dst_fd, de->d_name, depth);
                if (r < 0)
                        return r;
        }
        return errno > 0 ? -errno : 0;
}

int copy_tree_at(int src_fd, int dst_fd, FileTreeSkipFn skip, void *userdata) {
        TreeCopy c = { .skip = skip, .userdata = userdata };
        return copy_dir_contents(&c, src_fd, dst_fd, 0);
}

static int usage_walk(int fd, unsigned depth, uint64_t *bytes, uint64_t *inodes) {
        _cleanup_closedir_ DIR *d = NULL;
        int q = opendir_at(fd, ".", &d);
        if (q < 0)
                return q;
        for (struct dirent *de; (errno = 0, de = readdir(d));) {
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                (*inodes)++;
                /* Blocks actually used, rounded like a 4 KiB-block filesystem. */
                *bytes += ((uint64_t) st.st_size + 4095) & ~(uint64_t) 4095;
                if (!S_ISDIR(st.st_mode))
                        continue;
                if (depth >= FILE_TREE_DEPTH_MAX)
                        return -ELOOP;
                _cleanup_close_ int sub = open_dir_nofollow(fd, de->d_name);
                if (sub < 0)
                        return sub;
                int r = usage_walk(sub, depth + 1, bytes, inodes);
                if (r < 0)
                        return r;
        }
        return errno > 0 ? -errno : 0;
}

int tree_disk_usage(int dir_fd, uint64_t *ret_bytes, uint64_t *ret_inodes) {
        uint64_t bytes = 0, inodes = 0;
        int r = usage_walk(dir_fd, 0, &bytes, &inodes);
        if (r < 0)
                return r;
        *ret_bytes = bytes;
        if (ret_inodes)
                *ret_inodes = inodes;
        return 0;
}
