/* SPDX-License-Identifier: MIT */
#include "fs-util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "macro.h"

int open_dir_nofollow(int dirfd, const char *path) {
        int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int opendir_at(int dirfd, const char *path, DIR **ret) {
        int fd = open_dir_nofollow(dirfd, path);
        if (fd < 0)
                return fd;
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                safe_close(fd);
                return r;
        }
        *ret = d;
        return 0;
}

int mkdirat_private(int dirfd, const char *name, mode_t mode) {
        /* The umask can only remove bits, so the directory is never born looser
         * than mode; the process-wide umask is left alone (threads). */
        if (mkdirat(dirfd, name, mode) < 0)
                return errno == EEXIST ? 0 : -errno;
        return 1;
}

int mkdir_p(const char *path, mode_t mode) {
        if (!path || path[0] != '/')
                return -EINVAL;
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1;; s++) {
                if (*s != '/' && *s != '\0')
                        continue;
                char saved = *s;
                *s = '\0';
                int r = mkdirat_private(AT_FDCWD, p, mode);
                if (r < 0)
                        return r;
                *s = saved;
                if (saved == '\0')
                        break;
        }
        return 0;
}

ssize_t loop_read(int fd, void *buf, size_t len) {
        size_t done = 0;
        while (done < len) {
                ssize_t n = read(fd, (char *) buf + done, len - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        return (ssize_t) done;
}

int read_virtual_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        _cleanup_free_ char *buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t n = loop_read(fd, buf, max);
        if (n < 0)
                return (int) n;
        buf[n] = '\0';
        if (ret_len)
                *ret_len = (size_t) n;
        *ret = TAKE_PTR(buf);
        return 0;
}

int loop_write(int fd, const void *buf, size_t len) {
        const char *p = buf;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Our egid may not be the group wanted (sudo -g, setpriv) and the umask may
 * be narrower than mode: fix both on the fd before the file has content. */
static int fd_set_owner_mode(int fd, mode_t mode, uid_t uid, gid_t gid) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0)
                return -errno;
        if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
                return -errno;
        return 0;
}

static int write_atomic(int dirfd, const char *name, const void *data, size_t len, mode_t mode, bool owned, uid_t uid,
                        gid_t gid) {
        char tmp[256];
        if (!name || strchr(name, '/') || strlen(name) > 200)
                return -EINVAL;
        snprintf(tmp, sizeof(tmp), ".#%s.%d.%ld", name, (int) getpid(), (long) random());

        _cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        int r = owned ? fd_set_owner_mode(fd, mode, uid, gid) : 0;
        if (r >= 0)
                r = loop_write(fd, data, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return r;
        }
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode) {
        return write_atomic(dirfd, name, data, len, mode, false, 0, 0);
}

int write_file_atomic_at_owned(int dirfd, const char *name, const void *data, size_t len, mode_t mode, uid_t uid,
                               gid_t gid) {
        return write_atomic(dirfd, name, data, len, mode, true, uid, gid);
}

int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return read_file_fd(fd, max, ret, ret_len);
}

int read_file_fd(int fd, size_t max, char **ret, size_t *ret_len) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((size_t) st.st_size > max)
                return -EFBIG;
        /* procfs and sysfs report size 0: read until EOF, up to max. */
        size_t cap = st.st_size > 0 ? (size_t) st.st_size : MIN(max, (size_t) 4096);
        _cleanup_free_ char *buf = malloc(cap + 1);
        if (!buf)
                return -ENOMEM;
        size_t len = 0;
        for (;;) {
                ssize_t n = loop_read(fd, buf + len, cap - len);
                if (n < 0)
                        return (int) n;
                len += (size_t) n;
                if (len < cap || st.st_size > 0)
                        break;
                if (cap >= max)
                        return -EFBIG;
                size_t ncap = MIN(cap * 2, max);
                char *nb = realloc(buf, ncap + 1);
                if (!nb)
                        return -ENOMEM;
                buf = nb;
                cap = ncap;
        }
        buf[len] = '\0';
        if (ret_len)
                *ret_len = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

char *path_join(const char *a, const char *b) {
        char *s = NULL;
        size_t la = strlen(a);
        bool slash = la > 0 && a[la - 1] == '/';
        if (asprintf(&s, "%s%s%s", a, slash ? "" : "/", b[0] == '/' ? b + 1 : b) < 0)
                return NULL;
        return s;
}

int fd_free_bytes(int fd, unsigned long long *ret) {
        struct statvfs sv;
        if (fstatvfs(fd, &sv) < 0)
                return -errno;
        *ret = (unsigned long long) sv.f_bavail * sv.f_frsize;
        return 0;
}
