/* SPDX-License-Identifier: MIT */
#include "ssh-config-home.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"
#include "system-install.h"

#define CONFIG_MAX (1024 * 1024)
#define OWN_FILE_MAX (64 * 1024)

void ssh_home_done(SshHome *h) {
        h->home_fd = safe_close(h->home_fd);
        h->ssh_fd = safe_close(h->ssh_fd);
        h->cfg_dir_fd = safe_close(h->cfg_dir_fd);
        free(h->ssh_dir);
        free(h->cfg_name);
        free(h->cfg_path);
        free(h->cfg_target);
        free(h->cfg_data);
        *h = (SshHome){ .home_fd = -EBADF, .ssh_fd = -EBADF, .cfg_dir_fd = -EBADF };
}

/* Owned by us and writable by nobody else: only then may a file in it be
 * replaced by rename, whichever path (symlinked or not) led here. */
static int check_private_dir(int fd, const char *path) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return error_setf(-errno, "cannot inspect %s: %s", path, strerror(errno));
        if (st.st_uid != geteuid() || (st.st_mode & 022))
                return error_setf(-EPERM,
                                  "%s is not a directory only you can write to (owner uid %u, mode %04o): banger"
                                  " writes nothing there",
                                  path, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777));
        return 0;
}

static int open_ssh_dir(bool create, SshHome *h) {
        const char *home = getenv("HOME");
        if (!home || home[0] != '/')
                return error_setf(-EINVAL, "HOME is not set to an absolute path");
        h->ssh_dir = path_join(home, ".ssh");
        h->cfg_path = path_join(home, ".ssh/config");
        if (!h->ssh_dir || !h->cfg_path)
                return -ENOMEM;
        h->home_fd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (h->home_fd < 0)
                return error_setf(-errno, "cannot open your home directory %s: %s", home, strerror(errno));
        if (create) {
                int r = mkdirat_private(h->home_fd, ".ssh", 0700);
                if (r < 0)
                        return error_setf(r, "cannot create %s: %s", h->ssh_dir, strerror(-r));
                h->ssh_created = r > 0;
        }
        /* Followed when it is a symlink: where it leads is what is checked. */
        int fd = openat(h->home_fd, ".ssh", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && !create)
                return 0;
        if (fd < 0)
                return error_setf(-errno, "cannot open %s: %s", h->ssh_dir, strerror(errno));
        h->ssh_fd = fd;
        return check_private_dir(h->ssh_fd, h->ssh_dir);
}

static int use_dir(SshHome *h, int dirfd, const char *name) {
        h->cfg_dir_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (h->cfg_dir_fd < 0)
                return -errno;
        h->cfg_name = strdup(name);
        return h->cfg_name ? 0 : -ENOMEM;
}

/* ~/.ssh/config -> target: one level, to a regular file we own in a
 * directory only we can write to. */
static int follow_config_link(SshHome *h) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(h->ssh_fd, "config", target, sizeof(target) - 1);
        if (n < 0)
                return error_setf(-errno, "cannot read the symlink %s: %s", h->cfg_path, strerror(errno));
        target[n] = '\0';
        if (!(h->cfg_target = strdup(target)))
                return -ENOMEM;
        char *slash = strrchr(target, '/');
        const char *dir = ".", *base = target;
        if (slash) {
                *slash = '\0';
                dir = slash == target ? "/" : target;
                base = slash + 1;
        }
        if (!*base || streq(base, ".") || streq(base, ".."))
                return error_setf(-EINVAL, "%s is a symlink to %s, which is not a file", h->cfg_path, h->cfg_target);
        _cleanup_close_ int fd = openat(h->ssh_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return error_setf(-errno, "%s is a symlink to %s, whose directory cannot be opened: %s", h->cfg_path,
                                  h->cfg_target, strerror(errno));
        int r = check_private_dir(fd, dir);
        if (r < 0)
                return error_setf(r,
                                  "%s is a symlink to %s, in a directory others can write to or that is not"
                                  " yours: banger will not write there; add the Include line 'banger ssh-config"
                                  " show' prints at the top of that file yourself",
                                  h->cfg_path, h->cfg_target);
        struct stat st;
        if (fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return error_setf(-errno, "%s is a symlink to %s: %s", h->cfg_path, h->cfg_target, strerror(errno));
        if (S_ISLNK(st.st_mode))
                return error_setf(-ELOOP, "%s is a symlink to another symlink, %s: banger follows one level only",
                                  h->cfg_path, h->cfg_target);
        if (!S_ISREG(st.st_mode))
                return error_setf(-EINVAL, "%s is a symlink to %s, which is not a regular file", h->cfg_path,
                                  h->cfg_target);
        h->cfg_dir_fd = TAKE_FD(fd);
        h->cfg_exists = true;
        return (h->cfg_name = strdup(base)) ? 0 : -ENOMEM;
}

static int locate_config(SshHome *h) {
        struct stat st;
        if (fstatat(h->ssh_fd, "config", &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT)
                        return error_setf(-errno, "cannot inspect %s: %s", h->cfg_path, strerror(errno));
                return use_dir(h, h->ssh_fd, "config");
        }
        if (S_ISLNK(st.st_mode))
                return follow_config_link(h);
        h->cfg_exists = true;
        return use_dir(h, h->ssh_fd, "config");
}

static int read_config(SshHome *h) {
        _cleanup_close_ int fd = openat(h->cfg_dir_fd, h->cfg_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return error_setf(-errno, "cannot open %s: %s", h->cfg_path, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return error_setf(-EINVAL, "%s is not a regular file", h->cfg_path);
        if (st.st_uid != geteuid())
                return error_setf(-EPERM, "%s belongs to uid %u, not to you: banger will not write it", h->cfg_path,
                                  (unsigned) st.st_uid);
        h->cfg_mode = st.st_mode & 0777;
        int r = read_file_fd(fd, CONFIG_MAX, &h->cfg_data, &h->cfg_len);
        if (r < 0)
                return error_setf(r, "cannot read %s: %s", h->cfg_path,
                                  r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
        return 0;
}

int ssh_home_open(bool create, SshHome *ret) {
        SshHome h = { .home_fd = -EBADF, .ssh_fd = -EBADF, .cfg_dir_fd = -EBADF };
        int r = open_ssh_dir(create, &h);
        if (r >= 0 && h.ssh_fd >= 0)
                r = locate_config(&h);
        if (r >= 0 && h.cfg_exists)
                r = read_config(&h);
        if (r < 0) {
                if (h.ssh_created)
                        (void) unlinkat(h.home_fd, ".ssh", AT_REMOVEDIR);
                ssh_home_done(&h);
                return r;
        }
        *ret = h;
        return 0;
}

/* The umask is cleared around the write so the file is born with exactly
 * the mode it had (the CLI is single-threaded here). */
static int write_exact(int dirfd, const char *name, const char *path, const char *data, size_t len, mode_t mode) {
        mode_t old = umask(0);
        int r = write_file_atomic_at(dirfd, name, data, len, mode);
        umask(old);
        return r < 0 ? error_setf(r, "cannot write %s: %s", path, strerror(-r)) : 0;
}

int ssh_home_write_config(SshHome *h, const char *data, size_t len) {
        if (h->cfg_dir_fd < 0)
                return -EBADF;
        return write_exact(h->cfg_dir_fd, h->cfg_name, h->cfg_path, data, len, h->cfg_exists ? h->cfg_mode : 0600);
}

int ssh_home_remove_config(SshHome *h) {
        if (h->cfg_target) /* the link is the user's: leave it pointing at an empty file */
                return ssh_home_write_config(h, "", 0);
        if (unlinkat(h->cfg_dir_fd, h->cfg_name, 0) < 0 && errno != ENOENT)
                return error_setf(-errno, "cannot remove %s: %s", h->cfg_path, strerror(errno));
        return 0;
}

int ssh_home_remove_ssh_dir(SshHome *h) {
        /* Only when empty: whatever ssh or the user put there since stays. */
        if (unlinkat(h->home_fd, ".ssh", AT_REMOVEDIR) < 0 && errno != ENOTEMPTY && errno != EEXIST &&
            errno != ENOENT && errno != ENOTDIR)
                return error_setf(-errno, "cannot remove %s: %s", h->ssh_dir, strerror(errno));
        return 0;
}

int ssh_home_read_own_file(SshHome *h, const char *header, char **ret, size_t *ret_len) {
        if (h->ssh_fd < 0)
                return 0;
        _cleanup_free_ char *path = path_join(h->ssh_dir, SSH_BANGER_FILE);
        _cleanup_close_ int fd = openat(h->ssh_fd, SSH_BANGER_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return 0;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
            read_file_fd(fd, OWN_FILE_MAX, &data, &len) >= 0 && startswith(data, header)) {
                *ret = TAKE_PTR(data);
                *ret_len = len;
                return 1;
        }
        return error_setf(-EEXIST, "%s exists and was not written by banger: move it away first",
                          path ? path : SSH_BANGER_FILE);
}

int ssh_home_write_own_file(SshHome *h, const char *data, size_t len) {
        _cleanup_free_ char *path = path_join(h->ssh_dir, SSH_BANGER_FILE);
        return write_exact(h->ssh_fd, SSH_BANGER_FILE, path ? path : SSH_BANGER_FILE, data, len, 0644);
}

int ssh_home_remove_own_file(SshHome *h) {
        if (h->ssh_fd >= 0 && unlinkat(h->ssh_fd, SSH_BANGER_FILE, 0) < 0 && errno != ENOENT)
                return error_setf(-errno, "cannot remove %s/%s: %s", h->ssh_dir, SSH_BANGER_FILE, strerror(errno));
        return 0;
}
