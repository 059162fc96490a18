/* SPDX-License-Identifier: MIT */
#include "path-beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"

#define COMPONENT_MAX 255
#define RELPATH_MAX 4095

static bool has_dotdot(const char *p) {
        for (const char *s = p; *s;) {
                size_t n = strcspn(s, "/");
                if (n == 2 && s[0] == '.' && s[1] == '.')
                        return true;
                s += n;
                s += strspn(s, "/");
        }
        return false;
}

bool path_beneath_is_valid(const char *relpath) {
        if (!relpath || relpath[0] == '\0' || relpath[0] == '/')
                return false;
        if (strlen(relpath) > RELPATH_MAX)
                return false;
        for (const char *s = relpath;;) {
                size_t n = strcspn(s, "/");
                if (n == 0 || n > COMPONENT_MAX)
                        return false;
                if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                        return false;
                s += n;
                if (*s == '\0')
                        return true;
                s++; /* a trailing '/' leaves an empty component: refused above */
        }
}

/* Map every refusal to one errno per cause, the same in both code paths. */
static int check_relpath(const char *relpath) {
        if (!relpath)
                return -EINVAL;
        if (relpath[0] == '/' || has_dotdot(relpath))
                return -EXDEV;
        return path_beneath_is_valid(relpath) ? 0 : -EINVAL;
}

static int refuse_if_symlink(int fd) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        return S_ISLNK(st.st_mode) ? -ELOOP : 0;
}

/* O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR; tell the caller ELOOP. */
static int explain_enotdir(int dirfd, const char *name) {
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                return -ELOOP;
        return -ENOTDIR;
}

/* The mount a fd is on: its mount id where the kernel reports one, else
 * its device. AT_STATX_DONT_SYNC: a FUSE server is never asked. */
static int mount_of(int fd, uint64_t *ret) {
        struct statx stx;
        if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) < 0)
                return -errno;
        *ret = (stx.stx_mask & STATX_MNT_ID) ? stx.stx_mnt_id
                                             : ((uint64_t) stx.stx_dev_major << 32 | stx.stx_dev_minor);
        return 0;
}

static int check_same_mount(int fd, uint64_t mnt) {
        uint64_t m;
        int r = mount_of(fd, &m);
        if (r < 0)
                return r;
        return m == mnt ? 0 : -EXDEV;
}

/* The last component without crossing a mount: opened O_PATH (which runs no
 * filesystem open method), checked, then reopened through the checked fd. A
 * file this call creates is new on at's own mount. */
static int open_last_same_mount(int at, const char *name, int flags, mode_t mode, uint64_t mnt) {
        for (unsigned attempt = 0;; attempt++) {
                _cleanup_close_ int pfd = openat(at, name, O_PATH | O_NOFOLLOW | O_CLOEXEC | (flags & O_DIRECTORY));
                if (pfd < 0 && errno == ENOENT && (flags & O_CREAT)) {
                        int fd = openat(at, name, flags | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
                        if (fd >= 0 || errno != EEXIST || (flags & O_EXCL) || attempt > 0)
                                return fd >= 0 ? fd : -errno;
                        continue; /* appeared meanwhile: check it like any other */
                }
                if (pfd < 0)
                        return errno == ENOTDIR && (flags & O_DIRECTORY) ? explain_enotdir(at, name) : -errno;
                int r = refuse_if_symlink(pfd);
                if (r >= 0)
                        r = check_same_mount(pfd, mnt);
                if (r < 0)
                        return r;
                if (flags & O_PATH)
                        return TAKE_FD(pfd);
                if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
                        return -EEXIST;
                char proc[64];
                snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
                int fd = open(proc, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
                return fd < 0 ? -errno : fd;
        }
}

int open_beneath_walk_ex(int dirfd, const char *relpath, int flags, mode_t mode, unsigned how) {
        int r = check_relpath(relpath);
        if (r < 0)
                return r;
        uint64_t mnt = 0;
        if ((how & BENEATH_NO_XDEV) && (r = mount_of(dirfd, &mnt)) < 0)
                return r;
        _cleanup_free_ char *copy = strdup(relpath);
        if (!copy)
                return -ENOMEM;

        _cleanup_close_ int cur = -EBADF;
        char *s = copy;
        for (char *slash; (slash = strchr(s, '/')); s = slash + 1) {
                *slash = '\0';
                int at = cur >= 0 ? cur : dirfd;
                int fd = openat(at, s, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return errno == ENOTDIR ? explain_enotdir(at, s) : -errno;
                safe_close(cur);
                cur = fd;
                /* Checked before anything is looked up inside it. */
                if ((how & BENEATH_NO_XDEV) && (r = check_same_mount(cur, mnt)) < 0)
                        return r;
        }
        int at = cur >= 0 ? cur : dirfd;
        if (how & BENEATH_NO_XDEV)
                return open_last_same_mount(at, s, flags, mode, mnt);
        _cleanup_close_ int fd = openat(at, s, flags | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return errno == ENOTDIR && (flags & O_DIRECTORY) ? explain_enotdir(at, s) : -errno;
        if (flags & O_PATH) {
                /* O_PATH|O_NOFOLLOW opens the link itself instead of failing. */
                r = refuse_if_symlink(fd);
                if (r < 0)
                        return r;
        }
        return TAKE_FD(fd);
}

int open_beneath_walk(int dirfd, const char *relpath, int flags, mode_t mode) {
        return open_beneath_walk_ex(dirfd, relpath, flags, mode, 0);
}

int open_beneath_ex(int dirfd, const char *relpath, int flags, mode_t mode, unsigned how) {
        int r = check_relpath(relpath);
        if (r < 0)
                return r;
        struct open_how oh = {
                .flags = (unsigned) (flags | O_CLOEXEC),
                .mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                           ((how & BENEATH_NO_XDEV) ? RESOLVE_NO_XDEV : 0),
        };
        long fd = syscall(SYS_openat2, dirfd, relpath, &oh, sizeof(oh));
        if (fd >= 0)
                return (int) fd;
        if (errno == ENOSYS)
                return open_beneath_walk_ex(dirfd, relpath, flags, mode, how);
        return -errno;
}

int open_beneath(int dirfd, const char *relpath, int flags, mode_t mode) {
        return open_beneath_ex(dirfd, relpath, flags, mode, 0);
}

int open_parent_beneath(int dirfd, const char *relpath, const char **ret_base) {
        int r = check_relpath(relpath);
        if (r < 0)
                return r;
        const char *slash = strrchr(relpath, '/');
        if (!slash) {
                int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return -errno;
                *ret_base = relpath;
                return fd;
        }
        _cleanup_free_ char *parent = strndup(relpath, (size_t) (slash - relpath));
        if (!parent)
                return -ENOMEM;
        int fd = open_beneath(dirfd, parent, O_PATH | O_DIRECTORY, 0);
        if (fd < 0)
                return fd;
        *ret_base = slash + 1;
        return fd;
}

int unlink_beneath(int dirfd, const char *relpath, int flags) {
        const char *base = NULL;
        _cleanup_close_ int pfd = open_parent_beneath(dirfd, relpath, &base);
        if (pfd < 0)
                return pfd;
        return unlinkat(pfd, base, flags) < 0 ? -errno : 0;
}
