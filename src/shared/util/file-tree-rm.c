/* SPDX-License-Identifier: MIT */
/* rm_rf_at() of file-tree.h, apart from the copies and hashes there so that
 * a program that removes trees but hashes nothing (banger) does not link
 * libcrypto. */
#include "file-tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "string-util.h"

static int rm_rf_children(DIR *d, unsigned depth);

static int rm_rf_entry(int dirfd, const char *name, unsigned depth) {
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
        if (depth >= FILE_TREE_DEPTH_MAX)
                return -ELOOP;
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(dirfd, name, &d);
        if (r < 0)
                return r;
        r = rm_rf_children(d, depth + 1);
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r >= 0)
                r = -errno;
        return r;
}

static int rm_rf_children(DIR *d, unsigned depth) {
        int r = 0;
        for (struct dirent *de; (errno = 0, de = readdir(d));) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                int q = rm_rf_entry(dirfd(d), de->d_name, depth);
                if (q < 0 && r >= 0)
                        r = q;
        }
        return r;
}

int rm_rf_at(int dirfd, const char *name) {
        return rm_rf_entry(dirfd, name, 0);
}
