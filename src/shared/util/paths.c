/* SPDX-License-Identifier: MIT */
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"

void paths_done(BangerPaths *p) {
        if (!p)
                return;
        free(p->config_dir);
        free(p->state_dir);
        free(p->cache_dir);
        free(p->runtime_dir);
        free(p->socket_path);
        free(p->db_path);
        free(p->log_path);
        *p = (BangerPaths){};
}

/* $VAR/banger, or $HOME/<fallback>/banger. XDG says relative values are ignored. */
static int xdg_dir(const char *var, const char *home_fallback, char **ret) {
        const char *v = getenv(var);
        if (v && v[0] == '/') {
                *ret = path_join(v, "banger");
                return *ret ? 0 : -ENOMEM;
        }
        const char *home = getenv("HOME");
        if (!home || home[0] != '/')
                return error_setf(-EINVAL, "cannot place banger's files: $%s is unset and $HOME is not an absolute path",
                                  var);
        _cleanup_free_ char *base = path_join(home, home_fallback);
        if (!base)
                return -ENOMEM;
        *ret = path_join(base, "banger");
        return *ret ? 0 : -ENOMEM;
}

int paths_resolve(bool system, BangerPaths *ret) {
        BangerPaths p = { .system = system };
        int r = 0;

        if (system) {
                p.config_dir = strdup("/etc/banger");
                p.state_dir = strdup("/var/lib/banger");
                p.cache_dir = strdup("/var/cache/banger");
                p.runtime_dir = strdup("/run/banger");
        } else {
                r = xdg_dir("XDG_CONFIG_HOME", ".config", &p.config_dir);
                if (r >= 0)
                        r = xdg_dir("XDG_STATE_HOME", ".local/state", &p.state_dir);
                if (r >= 0)
                        r = xdg_dir("XDG_CACHE_HOME", ".cache", &p.cache_dir);
                if (r >= 0) {
                        const char *rt = getenv("XDG_RUNTIME_DIR");
                        if (rt && rt[0] == '/')
                                p.runtime_dir = path_join(rt, "banger");
                        else {
                                p.runtime_is_fallback = true;
                                if (asprintf(&p.runtime_dir, "/tmp/banger-runtime-%u", (unsigned) getuid()) < 0)
                                        p.runtime_dir = NULL;
                        }
                }
        }
        if (r >= 0 && (!p.config_dir || !p.state_dir || !p.cache_dir || !p.runtime_dir))
                r = -ENOMEM;
        if (r >= 0) {
                p.socket_path = path_join(p.runtime_dir, "bangerd.sock");
                p.db_path = path_join(p.state_dir, "banger.db");
                p.log_path = path_join(p.state_dir, "bangerd.log");
                if (!p.socket_path || !p.db_path || !p.log_path)
                        r = -ENOMEM;
        }
        if (r < 0) {
                paths_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}

int paths_check_private_dir_fd(int fd, const char *path, uid_t uid) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return error_setf(-errno, "cannot stat %s: %m", path);
        if (!S_ISDIR(st.st_mode))
                return error_setf(-EPERM, "%s is not a directory", path);
        if (st.st_uid != uid)
                return error_setf(-EPERM, "%s is owned by uid %u, not by uid %u", path, (unsigned) st.st_uid,
                                  (unsigned) uid);
        if ((st.st_mode & 07777) != 0700)
                return error_setf(-EPERM, "%s has mode %04o, expected 0700", path, (unsigned) (st.st_mode & 07777));
        return 0;
}

/* Open path as a directory without following a symlink at its last component,
 * and explain a refusal in words. */
static int open_dir_explained(const char *path) {
        int fd = open_dir_nofollow(AT_FDCWD, path);
        if (fd >= 0)
                return fd;
        if (fd == -ELOOP || fd == -ENOTDIR) {
                /* O_DIRECTORY|O_NOFOLLOW reports a symlink as ENOTDIR: say which. */
                struct stat st;
                if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
                        return error_setf(-EPERM, "%s is a symlink; refusing to use it", path);
                return error_setf(-EPERM, "%s exists but is not a directory", path);
        }
        if (fd == -ENOENT)
                return fd;
        return error_setf(fd, "cannot open %s: %m", path);
}

static int ensure_fallback_runtime_dir(const char *path, int *ret_fd) {
        /* Never adopt: create it ourselves at 0700, or accept only a dir that is
         * already exactly ours and private. */
        int r = mkdirat_private(AT_FDCWD, path, 0700);
        if (r < 0)
                return error_setf(r, "cannot create %s: %m", path);
        bool created = r > 0;
        _cleanup_close_ int fd = open_dir_explained(path);
        if (fd < 0)
                return fd == -ENOENT ? error_setf(-EPERM, "%s vanished while being created", path) : fd;
        /* Created by us a moment ago under a restrictive umask: only owner bits
         * can be missing, and adding them loosens nothing. */
        if (created && fchmod(fd, 0700) < 0)
                return error_setf(-errno, "cannot set mode of %s: %m", path);
        r = paths_check_private_dir_fd(fd, path, getuid());
        if (r < 0) {
                char why[512];
                snprintf(why, sizeof(why), "%s", error_last_message());
                return error_setf(r, "refusing runtime directory: %s", why);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Create a leaf 0700 (parents as needed) and tighten an existing one. */
static int ensure_leaf_0700(const char *path, int *ret_fd) {
        _cleanup_free_ char *parent = strdup(path);
        if (!parent)
                return -ENOMEM;
        char *slash = strrchr(parent, '/');
        if (!slash || slash == parent)
                return error_setf(-EINVAL, "%s: not an absolute path below /", path);
        *slash = '\0';
        int r = mkdir_p(parent, 0755);
        if (r < 0)
                return error_setf(r, "cannot create %s: %m", parent);
        r = mkdirat_private(AT_FDCWD, path, 0700);
        if (r < 0)
                return error_setf(r, "cannot create %s: %m", path);
        _cleanup_close_ int fd = open_dir_explained(path);
        if (fd < 0)
                return fd == -ENOENT ? error_setf(-EPERM, "%s vanished while being created", path) : fd;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return error_setf(-errno, "cannot stat %s: %m", path);
        if (st.st_uid != geteuid())
                return error_setf(-EPERM, "%s is owned by uid %u, not by uid %u", path, (unsigned) st.st_uid,
                                  (unsigned) geteuid());
        if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
                return error_setf(-errno, "cannot tighten %s to 0700: %m", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int paths_ensure_private_dir(const char *path, int *ret_fd) {
        return ensure_leaf_0700(path, ret_fd);
}

int paths_ensure_runtime_dir(const BangerPaths *p, int *ret_fd) {
        if (p->runtime_is_fallback)
                return ensure_fallback_runtime_dir(p->runtime_dir, ret_fd);
        return ensure_leaf_0700(p->runtime_dir, ret_fd);
}
