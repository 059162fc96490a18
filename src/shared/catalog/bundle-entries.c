/* SPDX-License-Identifier: MIT */
#include "bundle-entries.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "error.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"

void bundle_entries_done(BundleEntries *es) {
        for (size_t i = 0; i < es->n; i++) {
                free(es->v[i].path);
                free(es->v[i].src);
        }
        free(es->v);
        *es = (BundleEntries){};
}

static int entries_add(BundleEntries *es, const char *path, const char *src, mode_t mode) {
        if (es->n >= BUNDLE_FILES_MAX)
                return error_setf(-E2BIG, "more than %d files to bundle", BUNDLE_FILES_MAX);
        if (es->n == es->cap) {
                size_t cap = es->cap ? es->cap * 2 : 16;
                BundleEntry *v = reallocarray(es->v, cap, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                es->v = v;
                es->cap = cap;
        }
        BundleEntry *e = &es->v[es->n];
        *e = (BundleEntry){ .mode = mode };
        e->path = strdup(path);
        e->src = src ? strdup(src) : NULL;
        es->n++;
        return e->path && (!src || e->src) ? 0 : -ENOMEM;
}

static int add_file(BundleEntries *es, const char *path, const char *src) {
        struct stat st;
        if (lstat(src, &st) < 0)
                return error_setf(-errno, "cannot read %s: %m", src);
        if (!S_ISREG(st.st_mode))
                return error_setf(-EINVAL, "%s is not a regular file", src);
        return entries_add(es, path, src, S_IFREG | (st.st_mode & 0755));
}

/* A directory's entries (sorted, so a bundle of the same tree is the same
 * archive), recursively; only directories and regular files. */
static int add_tree(BundleEntries *es, const char *path, const char *src, unsigned depth) {
        if (depth > FILE_TREE_DEPTH_MAX)
                return error_setf(-ELOOP, "%s is nested too deeply", src);
        struct dirent **names = NULL;
        int n = scandir(src, &names, NULL, alphasort);
        if (n < 0)
                return error_setf(-errno, "cannot read %s: %m", src);
        int r = 0;
        for (int i = 0; i < n; i++) {
                const char *nm = names[i]->d_name;
                _cleanup_free_ char *sp = NULL, *ap = NULL;
                struct stat st;
                if (r < 0 || streq(nm, ".") || streq(nm, ".."))
                        continue;
                if (asprintf(&sp, "%s/%s", src, nm) < 0 || asprintf(&ap, "%s/%s", path, nm) < 0)
                        r = -ENOMEM;
                else if (lstat(sp, &st) < 0)
                        r = error_setf(-errno, "cannot read %s: %m", sp);
                else if (S_ISDIR(st.st_mode) && (r = entries_add(es, ap, NULL, S_IFDIR | (st.st_mode & 0755))) >= 0)
                        r = add_tree(es, ap, sp, depth + 1);
                else if (S_ISREG(st.st_mode))
                        r = entries_add(es, ap, sp, S_IFREG | (st.st_mode & 0755));
                /* Symlinks stay out: a pull refuses links of any kind, and a
                 * modules tree's only ones (build, source) lead to /usr/src. */
        }
        for (int i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return r;
}

static const char *basename_of(const char *p) {
        const char *s = strrchr(p, '/');
        return s ? s + 1 : p;
}

int bundle_entries_collect(const KernelRecord *k, const ImageRecord *image, BundleEntries *es) {
        int r = 0;
        if (image) {
                r = add_file(es, "rootfs.ext4", image->rootfs_path);
                if (r >= 0 && image->work_seed_path)
                        r = add_file(es, "work-seed.ext4", image->work_seed_path);
        }
        _cleanup_free_ char *kpath = NULL;
        /* The file QEMU boots; an import makes vmlinux from a bzImage again. */
        if (r >= 0 && asprintf(&kpath, "kernel/%s", basename_of(k->kernel_path)) < 0)
                return -ENOMEM;
        if (r >= 0)
                r = entries_add(es, "kernel", NULL, S_IFDIR | 0755);
        if (r >= 0)
                r = add_file(es, kpath, k->kernel_path);
        if (r >= 0 && k->initrd_path)
                r = add_file(es, "kernel/initrd", k->initrd_path);
        if (r >= 0 && k->modules_path && (r = entries_add(es, "kernel/modules", NULL, S_IFDIR | 0755)) >= 0)
                r = add_tree(es, "kernel/modules", k->modules_path, 0);
        return r;
}

/* The bytes of fd's data regions, as the bundle's sparse map keeps them. */
static int data_bytes(int fd, uint64_t size, uint64_t *ret) {
        uint64_t n = 0;
        for (off_t pos = 0; (uint64_t) pos < size;) {
                off_t data = lseek(fd, pos, SEEK_DATA);
                if (data < 0 && errno == ENXIO)
                        break;
                off_t hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
                if (hole < 0)
                        return -errno;
                n += (uint64_t) (hole - data);
                pos = hole;
        }
        *ret = MIN(n, size);
        return 0;
}

int bundle_entries_hash(BundleEntries *es, const Progress *p) {
        for (size_t i = 0; i < es->n; i++) {
                BundleEntry *e = &es->v[i];
                if (!S_ISREG(e->mode))
                        continue;
                _cleanup_close_ int fd = open(e->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (fd < 0)
                        return error_setf(-errno, "cannot open %s: %m", e->src);
                progress_report(p, "hash", e->path, i, es->n);
                int r = progress_check(p);
                if (r < 0)
                        return r;
                r = sha256_fd(fd, e->sha256, &e->size);
                if (r >= 0)
                        r = data_bytes(fd, e->size, &e->data);
                if (r < 0)
                        return error_setf(r, "cannot read %s: %s", e->src, strerror(-r));
        }
        return 0;
}

uint64_t bundle_entries_data_bytes(const BundleEntries *es) {
        uint64_t n = 0;
        for (size_t i = 0; i < es->n; i++)
                n += es->v[i].size;
        return n;
}

json_t *bundle_entry_to_json(const BundleEntry *e) {
        if (S_ISDIR(e->mode))
                return json_pack("{s:s, s:s, s:i}", "path", e->path, "type", "dir", "mode", (int) (e->mode & 07777));
        return json_pack("{s:s, s:s, s:i, s:I, s:I, s:s}", "path", e->path, "type", "file", "mode",
                         (int) (e->mode & 07777), "size", (json_int_t) e->size, "data", (json_int_t) e->data, "sha256",
                         e->sha256);
}
