/* SPDX-License-Identifier: MIT */
/* Drives banger's own root-disk clone code (disk_clone() in
 * src/shared/disk-clone.c) for bench/clone, which links this file against
 * a build's libshared.a and libbasic.a with cc.
 *
 * Usage: clone-driver SRC DST reflink|sparse
 * Clones SRC to DST (created; must not exist) allowing only the given
 * method, and prints "method=<used> seconds=<time inside disk_clone()>";
 * the time includes disk_clone()'s fsync of DST. Exit 1 with the reason on
 * failure (a reflink request on a filesystem without it fails rather than
 * silently copying). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "disk-clone.h"
#include "error.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"

static double now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* The directory of path, opened O_NOFOLLOW, and its last component. */
static int open_parent(const char *path, char **ret_name) {
        _cleanup_free_ char *d = strdup(path), *b = strdup(path);
        if (!d || !b)
                return -ENOMEM;
        int fd = open_dir_nofollow(AT_FDCWD, dirname(d));
        if (fd < 0)
                return fd;
        *ret_name = strdup(basename(b));
        if (!*ret_name) {
                close(fd);
                return -ENOMEM;
        }
        return fd;
}

int main(int argc, char **argv) {
        if (argc != 4 || !(streq(argv[3], "reflink") || streq(argv[3], "sparse"))) {
                fprintf(stderr, "usage: clone-driver SRC DST reflink|sparse\n");
                return 2;
        }
        DiskCloneMethod allowed = streq(argv[3], "reflink") ? DISK_CLONE_REFLINK : DISK_CLONE_SPARSE_COPY;
        _cleanup_free_ char *sname = NULL, *dname = NULL;
        _cleanup_close_ int sfd = open_parent(argv[1], &sname);
        _cleanup_close_ int dfd = open_parent(argv[2], &dname);
        if (sfd < 0 || dfd < 0) {
                fprintf(stderr, "clone-driver: cannot open the directories: %s\n", strerror(-(sfd < 0 ? sfd : dfd)));
                return 1;
        }
        DiskCloneMethod used = 0;
        double t0 = now_sec();
        int r = disk_clone(sfd, sname, dfd, dname, allowed, &used);
        double took = now_sec() - t0;
        if (r < 0) {
                fprintf(stderr, "clone-driver: %s\n", error_last_message() ? error_last_message() : strerror(-r));
                return 1;
        }
        printf("method=%s seconds=%.6f\n", disk_clone_method_to_string(used), took);
        return 0;
}
