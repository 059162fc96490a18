/* SPDX-License-Identifier: MIT */
#include "image-dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "log.h"
#include "path-beneath.h"
#include "string-util.h"

int image_dir_create(Daemon *d, const char *name, UndoStack *undo) {
        int r = mkdirat_private(d->state_dir_fd, "images", 0700);
        _cleanup_close_ int ifd = r < 0 ? r : open_dir_nofollow(d->state_dir_fd, "images");
        if (ifd < 0)
                return ifd;
        r = mkdirat_private(ifd, name, 0700);
        if (r == 0)
                r = error_setf(-EEXIST, "%s/images/%s already exists", d->paths.state_dir, name);
        if (r < 0 || (r = undo_push_rmdir(undo, ifd, name)) < 0)
                return r;
        return open_dir_nofollow(ifd, name);
}

void image_dir_write_blobs(int dirfd, char *const *blobs) {
        json_t *arr = json_array();
        for (char *const *b = blobs; b && *b; b++)
                json_array_append_new(arr, json_string(*b));
        _cleanup_free_ char *text = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
        if (text)
                (void) write_file_atomic_at(dirfd, "blobs.json", text, strlen(text), 0600);
}

void image_dir_remove(Daemon *d, const ImageRecord *img) {
        const char *rootfs = daemon_state_relative(d, img->rootfs_path);
        if (!rootfs) {
                log_warning("image %s: %s is not in the state directory; left in place", img->name, img->rootfs_path);
                return;
        }
        int r = unlink_beneath(d->state_dir_fd, rootfs, 0);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "cannot remove %s: %m", img->rootfs_path);
        const char *seed = daemon_state_relative(d, img->work_seed_path);
        if (seed)
                (void) unlink_beneath(d->state_dir_fd, seed, 0);
        _cleanup_free_ char *dir = strdup(rootfs);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (!slash)
                return;
        *slash = '\0';
        _cleanup_close_ int dfd = open_beneath(d->state_dir_fd, dir, O_RDONLY | O_DIRECTORY, 0);
        if (dfd >= 0)
                (void) unlinkat(dfd, "blobs.json", 0);
        (void) unlink_beneath(d->state_dir_fd, dir, AT_REMOVEDIR);
}

/* fn(images dir fd, entry name, userdata) for each entry of images/. */
static void foreach_image_dir(Daemon *d, void (*fn)(int ifd, const char *name, void *userdata), void *userdata) {
        _cleanup_close_ int ifd = open_dir_nofollow(d->state_dir_fd, "images");
        DIR *dir = ifd >= 0 ? fdopendir(fcntl(ifd, F_DUPFD_CLOEXEC, 3)) : NULL;
        if (!dir)
                return;
        rewinddir(dir);
        for (struct dirent *de; (de = readdir(dir));)
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        fn(ifd, de->d_name, userdata);
        closedir(dir);
}

static void collect_one(int ifd, const char *name, void *userdata) {
        json_t *keep = userdata;
        _cleanup_close_ int dfd = name[0] == '.' ? -EBADF : open_dir_nofollow(ifd, name);
        _cleanup_free_ char *text = NULL;
        if (dfd < 0 || read_file_at(dfd, "blobs.json", 1 << 20, &text, NULL) < 0)
                return;
        json_t *arr = json_loads(text, 0, NULL);
        size_t i;
        json_t *v;
        json_array_foreach (arr, i, v)
                if (json_is_string(v))
                        json_object_set_new(keep, json_string_value(v), json_true());
        json_decref(arr);
}

void image_dirs_collect_blobs(Daemon *d, json_t *keep) {
        foreach_image_dir(d, collect_one, keep);
}

typedef struct Sweep {
        Daemon *d;
        Store *s;
} Sweep;

static void sweep_one(int ifd, const char *name, void *userdata) {
        Sweep *w = userdata;
        _cleanup_(image_record_done) ImageRecord img = {};
        if (name_is_valid(name) && store_image_get_by_name(w->s, name, &img) >= 0)
                return;
        log_info("removing %s/images/%s: left by an interrupted import or build", w->d->paths.state_dir, name);
        if (rm_rf_at(ifd, name) < 0)
                log_warning("cannot remove %s/images/%s", w->d->paths.state_dir, name);
}

void image_dirs_sweep(Daemon *d, Store *s) {
        /* images/ is part of the state directory's layout from the start, so
         * a refused import leaves the tree as it found it. */
        int r = mkdirat_private(d->state_dir_fd, "images", 0700);
        if (r < 0)
                log_warning_errno(r, "cannot create %s/images: %m", d->paths.state_dir);
        foreach_image_dir(d, sweep_one, &(Sweep){ .d = d, .s = s });
}
