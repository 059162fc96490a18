/* SPDX-License-Identifier: MIT */
#include "kernel-store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "file-tree.h"
#include "free-space.h"
#include "fs-util.h"
#include "kernel-image.h"
#include "log.h"
#include "path-beneath.h"
#include "string-util.h"
#include "time-util.h"

#define MANIFEST_MAX (64U << 10)

/* What an import reads: fds opened once, so nothing is looked up twice. */
typedef struct KernelSource {
        int kernel_fd;
        int initrd_fd;
        int modules_fd;        /* the lib/modules/<ver> directory */
        char *modules_version; /* its name */
        int modules_parent_fd; /* lib/modules, while the version is not yet chosen */
} KernelSource;

#define KERNEL_SOURCE_NULL \
        ((KernelSource){ .kernel_fd = -EBADF, .initrd_fd = -EBADF, .modules_fd = -EBADF, .modules_parent_fd = -EBADF })

static void kernel_source_done(KernelSource *k) {
        safe_close(k->kernel_fd);
        safe_close(k->initrd_fd);
        safe_close(k->modules_fd);
        safe_close(k->modules_parent_fd);
        free(k->modules_version);
        *k = KERNEL_SOURCE_NULL;
}

/* The one regular file in dirfd/sub matching any pattern, by name; symlinks
 * are not candidates. Returns 1 and the name, 0 when none, -ENOTUNIQ. */
static int find_candidate(int root_fd, const char *sub, const char *const *patterns, const char *what, char **ret) {
        _cleanup_free_ char *found = NULL;
        _cleanup_close_ int sub_fd = sub ? open_beneath(root_fd, sub, O_RDONLY | O_DIRECTORY, 0) : -EBADF;
        if (sub && sub_fd < 0)
                return sub_fd == -ENOENT || sub_fd == -ENOTDIR || sub_fd == -ELOOP ? 0 : sub_fd;
        /* A stream of its own: an earlier scan of root_fd moves no offset here. */
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(sub ? sub_fd : root_fd, ".", &d);
        if (r < 0)
                return r;
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                bool match = false;
                for (const char *const *p = patterns; *p && !match; p++)
                        match = fnmatch(*p, de->d_name, FNM_PERIOD) == 0;
                if (!match || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (found)
                        return error_setf(-ENOTUNIQ, "several %s files (%s, %s): name one explicitly", what, found,
                                          de->d_name);
                if (asprintf(&found, "%s%s%s", sub ? sub : "", sub ? "/" : "", de->d_name) < 0)
                        return -ENOMEM;
        }
        if (!found)
                return 0;
        *ret = TAKE_PTR(found);
        return 1;
}

/* Look in the directory itself, then in boot/. */
static int find_in_tree(int dirfd, const char *const *patterns, const char *what, char **ret) {
        int r = find_candidate(dirfd, NULL, patterns, what, ret);
        if (r == 0)
                r = find_candidate(dirfd, "boot", patterns, what, ret);
        return r;
}

static int source_from_dir(int dirfd, const char *from, KernelSource *src) {
        static const char *const kernels[] = { "vmlinuz-*", "vmlinux-*", "vmlinuz", "vmlinux", "bzImage", NULL };
        static const char *const initrds[] = {
                "initrd.img-*", "initrd.img", "initrd-*", "initrd", "initramfs-*", NULL
        };
        static const char *const module_dirs[] = { "lib/modules", "usr/lib/modules", "modules" };
        _cleanup_free_ char *kname = NULL, *iname = NULL;

        int r = find_in_tree(dirfd, kernels, "kernel", &kname);
        if (r == 0)
                return error_setf(-ENOENT, "%s holds no vmlinuz-*, vmlinux or bzImage", from);
        if (r < 0)
                return r;
        src->kernel_fd = open_beneath(dirfd, kname, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
        if (src->kernel_fd < 0)
                return error_setf(src->kernel_fd, "cannot open %s/%s", from, kname);
        r = src->initrd_fd < 0 ? find_in_tree(dirfd, initrds, "initrd", &iname) : 0;
        if (r < 0)
                return r;
        if (r > 0 && (src->initrd_fd = open_beneath(dirfd, iname, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0)) < 0)
                return error_setf(src->initrd_fd, "cannot open %s/%s", from, iname);
        for (size_t i = 0; src->modules_fd < 0 && src->modules_parent_fd < 0 && i < ELEMENTSOF(module_dirs); i++) {
                int fd = open_beneath(dirfd, module_dirs[i], O_RDONLY | O_DIRECTORY, 0);
                if (fd >= 0)
                        src->modules_parent_fd = fd;
        }
        return 0;
}

static int open_user_path(const char *path, int flags, const char *what) {
        if (!path || path[0] != '/')
                return error_setf(-EINVAL, "%s path must be absolute", what);
        /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
        _cleanup_close_ int fd = open(path, flags | O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return error_setf(-errno, "cannot open %s %s: %m", what, path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
                return error_setf(-EBADMSG, "%s %s is neither a regular file nor a directory", what, path);
        return TAKE_FD(fd);
}

/* Open everything the options name. The version of the modules tree is
 * chosen later, once the kernel's release is known. */
static int source_open(const KernelImportOptions *o, KernelSource *src) {
        if (o->initrd && (src->initrd_fd = open_user_path(o->initrd, 0, "initrd")) < 0)
                return src->initrd_fd;
        struct stat st;
        if (o->initrd && (fstat(src->initrd_fd, &st) < 0 || !S_ISREG(st.st_mode)))
                return error_setf(-EBADMSG, "initrd %s is not a regular file", o->initrd);
        if (o->modules) {
                if ((src->modules_fd = open_user_path(o->modules, O_DIRECTORY, "modules directory")) < 0)
                        return src->modules_fd;
                const char *base = strrchr(o->modules, '/') + 1;
                if (!*base || !(src->modules_version = strdup(base)))
                        return error_setf(-EINVAL, "modules path %s must name lib/modules/<version>", o->modules);
        }
        _cleanup_close_ int fd = open_user_path(o->from, 0, "kernel source");
        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return source_from_dir(fd, o->from, src);
        if (!S_ISREG(st.st_mode))
                return error_setf(-EBADMSG, "%s is neither a kernel file nor a directory", o->from);
        src->kernel_fd = TAKE_FD(fd);
        return 0;
}

static bool version_name_ok(const char *n) {
        return n[0] != '.' && strlen(n) < KERNEL_RELEASE_MAX && !strchr(n, '/');
}

/* Pick lib/modules/<release>, or the only version there is. */
static int source_pick_modules(KernelSource *src, const char *release) {
        if (src->modules_parent_fd < 0)
                return 0;
        _cleanup_free_ char *only = NULL;
        unsigned n = 0;
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(src->modules_parent_fd, ".", &d);
        if (r < 0)
                return r;
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                if (!version_name_ok(de->d_name) || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISDIR(st.st_mode))
                        continue;
                n++;
                if (n == 1 || streq(de->d_name, release)) {
                        free(only);
                        if (!(only = strdup(de->d_name)))
                                return -ENOMEM;
                }
        }
        if (n == 0)
                return 0;
        if (n > 1 && !streq(only, release))
                return error_setf(-ENOTUNIQ, "several module trees and none for kernel %s: name one explicitly",
                                  release[0] ? release : "(unknown version)");
        src->modules_fd = open_dir_nofollow(src->modules_parent_fd, only);
        if (src->modules_fd < 0)
                return src->modules_fd;
        src->modules_version = TAKE_PTR(only);
        return 0;
}

typedef struct KernelFiles {
        KernelImageInfo info;
        char elf_sha[SHA256_HEX_LEN + 1], orig_sha[SHA256_HEX_LEN + 1], initrd_sha[SHA256_HEX_LEN + 1];
        uint64_t elf_size, orig_size, initrd_size;
        bool has_bzimage, has_initrd;
} KernelFiles;

/* Write vmlinux (and bzImage) into the build directory. */
static int stage_kernel(int src_fd, int dfd, const Progress *p, KernelFiles *f) {
        const void *data = NULL;
        size_t len = 0;
        int r = kernel_image_map_fd(src_fd, &data, &len);
        if (r < 0)
                return r;
        progress_report(p, "identify", NULL, 0, 0);
        r = kernel_image_identify(data, len, &f->info);
        if (r >= 0 && f->info.format == KERNEL_FORMAT_ELF) {
                r = free_space_check(dfd, len, "the kernel");
                if (r >= 0)
                        r = write_new_file_at(dfd, "vmlinux", data, len, 0644, f->elf_sha);
                f->elf_size = len;
        } else if (r >= 0) {
                _cleanup_free_ void *elf = NULL;
                size_t elf_len = 0;
                progress_report(p, "decompress", kernel_compression_to_string(f->info.compression), 0, 0);
                r = kernel_image_extract_elf(data, len, &f->info, &elf, &elf_len);
                if (r >= 0 && !f->info.release[0])
                        (void) kernel_find_linux_version(elf, elf_len, f->info.release, f->info.banner);
                if (r >= 0)
                        r = free_space_check(dfd, (uint64_t) elf_len + len, "the kernel");
                if (r >= 0)
                        r = write_new_file_at(dfd, "vmlinux", elf, elf_len, 0644, f->elf_sha);
                if (r >= 0)
                        r = write_new_file_at(dfd, "bzImage", data, len, 0644, f->orig_sha);
                f->elf_size = elf_len;
                f->orig_size = len;
                f->has_bzimage = true;
        }
        kernel_image_unmap(data, len);
        return r;
}

static json_t *file_json(uint64_t size, const char *sha) {
        return json_pack("{s:I, s:s}", "size", (json_int_t) size, "sha256", sha);
}

static int write_manifest(int dfd, const char *name, const KernelFiles *f, const char *modules_version,
                          usec_t created) {
        char ts[40];
        _cleanup_(json_decrefp) json_t *files = json_pack("{s:o}", "vmlinux", file_json(f->elf_size, f->elf_sha));
        if (!files)
                return -ENOMEM;
        if (f->has_bzimage && json_object_set_new(files, "bzImage", file_json(f->orig_size, f->orig_sha)) < 0)
                return -ENOMEM;
        if (f->has_initrd && json_object_set_new(files, "initrd", file_json(f->initrd_size, f->initrd_sha)) < 0)
                return -ENOMEM;
        _cleanup_(json_decrefp) json_t *m =
                json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:O, s:s?, s:s}", "name", name, "version",
                          f->info.release[0] ? f->info.release : NULL, "banner",
                          f->info.banner[0] ? f->info.banner : NULL, "format", kernel_format_to_string(f->info.format),
                          "compression", kernel_compression_to_string(f->info.compression), "files", files,
                          "modules_version", modules_version, "created_at", format_timestamp(ts, sizeof(ts), created));
        _cleanup_free_ char *text = m ? json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        if (!text)
                return -ENOMEM;
        size_t l = strlen(text);
        text[l] = '\n'; /* replaces the NUL: the length below excludes it anyway */
        return write_file_atomic_at(dfd, KERNEL_MANIFEST, text, l + 1, 0644);
}

static int copy_initrd(int initrd_fd, int dfd, const KernelImportOptions *o, KernelFiles *f) {
        struct stat st;
        if (fstat(initrd_fd, &st) < 0)
                return -errno;
        int r = free_space_check(dfd, (uint64_t) st.st_size, "the initrd");
        if (r < 0)
                return r;
        r = copy_file_at(initrd_fd, dfd, "initrd", 0644, &o->progress, "copy", f->initrd_sha, &f->initrd_size);
        if (r < 0)
                return error_setf(r, "copying the initrd: %m");
        f->has_initrd = true;
        return 0;
}

/* modules/<version>/ from the source's lib/modules/<version>. */
static int copy_modules(const KernelSource *src, int dfd) {
        uint64_t bytes;
        int r = tree_disk_usage(src->modules_fd, &bytes, NULL);
        if (r < 0)
                return error_setf(r, "measuring the modules tree: %m");
        if ((r = free_space_check(dfd, bytes, "the modules")) < 0)
                return r;
        if (mkdirat(dfd, "modules", 0755) < 0)
                return -errno;
        _cleanup_close_ int mfd = open_dir_nofollow(dfd, "modules");
        if (mfd < 0)
                return mfd;
        if (mkdirat(mfd, src->modules_version, 0755) < 0)
                return -errno;
        _cleanup_close_ int vfd = open_dir_nofollow(mfd, src->modules_version);
        if (vfd < 0)
                return vfd;
        r = copy_tree_at(src->modules_fd, vfd, NULL, NULL);
        if (r < 0)
                return error_setf(r, "copying the modules tree: %m");
        return 0;
}

/* Fill the temporary directory: kernel files, initrd, modules, manifest.
 * Each is checked against the free space before it is written. */
static int build_kernel_dir(KernelSource *src, int dfd, const KernelImportOptions *o, KernelFiles *f, usec_t created) {
        int r = stage_kernel(src->kernel_fd, dfd, &o->progress, f);
        if (r < 0)
                return r;
        if (src->initrd_fd >= 0 && (r = copy_initrd(src->initrd_fd, dfd, o, f)) < 0)
                return r;
        r = progress_check(&o->progress);
        if (r >= 0)
                r = source_pick_modules(src, f->info.release);
        if (r < 0 || src->modules_fd < 0)
                return r < 0 ? r : write_manifest(dfd, o->name, f, NULL, created);
        progress_report(&o->progress, "copy", "modules", 0, 0);
        if ((r = copy_modules(src, dfd)) < 0)
                return r;
        return write_manifest(dfd, o->name, f, src->modules_version, created);
}

/* A fresh private directory .tmp-<name>-<random> beneath kfd. */
static int make_temp_dir(int kfd, const char *name, char **ret) {
        for (int attempt = 0; attempt < 16; attempt++) {
                char id[STORE_ID_GENERATED_LEN + 1];
                _cleanup_free_ char *t = NULL;
                int r = store_id_generate(id);
                if (r < 0)
                        return r;
                if (asprintf(&t, ".tmp-%s-%.8s", name, id) < 0)
                        return -ENOMEM;
                if (mkdirat(kfd, t, 0700) >= 0) {
                        *ret = TAKE_PTR(t);
                        return 0;
                }
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

static int open_kernels_dir(const char *state_dir, bool create) {
        _cleanup_close_ int sfd = open_dir_nofollow(AT_FDCWD, state_dir);
        if (sfd < 0)
                return error_setf(sfd, "cannot open state directory %s: %m", state_dir);
        if (create) {
                int r = mkdirat_private(sfd, KERNEL_STORE_DIR, 0700);
                if (r < 0)
                        return r;
        }
        return open_dir_nofollow(sfd, KERNEL_STORE_DIR);
}

static char *kernel_file_path(const char *state_dir, const char *name, const char *file) {
        char *p = NULL;
        if (asprintf(&p, "%s/" KERNEL_STORE_DIR "/%s/%s", state_dir, name, file) < 0)
                return NULL;
        return p;
}

static int record_fill(KernelRecord *k, const char *state_dir, const KernelImportOptions *o, const KernelFiles *f,
                       const KernelSource *src, usec_t created) {
        char id[STORE_ID_GENERATED_LEN + 1];
        int r = store_id_generate(id);
        if (r < 0)
                return r;
        k->id = strdup(id);
        k->name = strdup(o->name);
        k->version = f->info.release[0] ? strdup(f->info.release) : NULL;
        k->elf_path = kernel_file_path(state_dir, o->name, "vmlinux");
        k->kernel_path = kernel_file_path(state_dir, o->name, f->has_bzimage ? "bzImage" : "vmlinux");
        k->initrd_path = f->has_initrd ? kernel_file_path(state_dir, o->name, "initrd") : NULL;
        k->modules_path = src->modules_version ? kernel_file_path(state_dir, o->name, "modules") : NULL;
        k->sha256 = strdup(f->has_bzimage ? f->orig_sha : f->elf_sha);
        k->size = f->has_bzimage ? f->orig_size : f->elf_size;
        k->created_at = created;
        if (!k->id || !k->name || !k->elf_path || !k->kernel_path || !k->sha256 ||
            (f->info.release[0] && !k->version) || (f->has_initrd && !k->initrd_path) ||
            (src->modules_version && !k->modules_path))
                return -ENOMEM;
        return 0;
}

/* Move the finished directory into place and record it; undo the move if
 * the store refuses. */
static int publish(Store *s, int kfd, const char *tmp, KernelRecord *k, bool unrecorded) {
        if (renameat2(kfd, tmp, kfd, k->name, RENAME_NOREPLACE) < 0) {
                if (errno == EEXIST)
                        return error_setf(-EEXIST, "%s/%s exists but is not a registered kernel; remove it",
                                          KERNEL_STORE_DIR, k->name);
                return -errno;
        }
        (void) fsync(kfd);
        int r = unrecorded ? 0 : store_kernel_insert(s, k);
        if (r < 0) {
                int q = rm_rf_at(kfd, k->name);
                if (q < 0)
                        log_debug_errno(q, "cannot remove %s after a failed insert: %m", k->name);
                (void) fsync(kfd);
        }
        return r;
}

static int import_checks(Store *s, const KernelImportOptions *o) {
        KernelRecord existing = {};
        if (!o->name || !name_is_valid(o->name))
                return error_setf(-EINVAL, "invalid kernel name \"%s\": use " NAME_RULE, o->name ? o->name : "");
        int r = store_kernel_get_by_name(s, o->name, &existing);
        kernel_record_done(&existing);
        if (r >= 0)
                return error_setf(-EEXIST, "kernel name \"%s\" is already in use", o->name);
        return r == -ENOENT ? 0 : r;
}

int kernel_store_import(Store *s, const char *state_dir, const KernelImportOptions *o, KernelRecord *ret) {
        _cleanup_(kernel_source_done) KernelSource src = KERNEL_SOURCE_NULL;
        _cleanup_(kernel_record_done) KernelRecord k = {};
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int kfd = -EBADF, dfd = -EBADF;
        KernelFiles f = {};
        usec_t created = now_realtime();

        int r = import_checks(s, o);
        if (r >= 0)
                r = source_open(o, &src);
        if (r < 0)
                return r;
        kfd = open_kernels_dir(state_dir, true);
        if (kfd < 0)
                return kfd;
        r = make_temp_dir(kfd, o->name, &tmp);
        if (r < 0)
                return r;
        dfd = open_dir_nofollow(kfd, tmp);
        r = dfd < 0 ? dfd : build_kernel_dir(&src, dfd, o, &f, created);
        if (r >= 0 && fchmod(dfd, 0755) < 0)
                r = -errno;
        if (r >= 0)
                r = record_fill(&k, state_dir, o, &f, &src, created);
        if (r >= 0)
                r = progress_commit(&o->progress, "is registering the kernel");
        if (r >= 0) {
                progress_report(&o->progress, "register", o->name, 0, 0);
                r = publish(s, kfd, tmp, &k, o->unrecorded);
        }
        if (r < 0) {
                (void) rm_rf_at(kfd, tmp);
                return r;
        }
        if (ret) {
                *ret = k;
                k = (KernelRecord){};
        }
        return 0;
}

int kernel_store_lookup(Store *s, const char *name_or_id, KernelRecord *ret) {
        KernelRecord *a = NULL;
        size_t n = 0;
        int r = store_kernel_get_by_name(s, name_or_id, ret);
        if (r != -ENOENT)
                return r;
        r = store_kernel_find_by_prefix(s, name_or_id, &a, &n);
        if (r < 0)
                return r;
        if (n != 1) {
                kernel_record_array_free(a, n);
                return n == 0 ? error_setf(-ENOENT, "no kernel \"%s\"", name_or_id)
                              : error_setf(-ENOTUNIQ, "kernel id prefix \"%s\" is ambiguous", name_or_id);
        }
        *ret = a[0];
        free(a);
        return 0;
}

int kernel_store_remove(Store *s, const char *state_dir, const char *name_or_id) {
        _cleanup_(kernel_record_done) KernelRecord k = {};
        int r = kernel_store_lookup(s, name_or_id, &k);
        if (r < 0)
                return r;
        if (!name_is_valid(k.name))
                return error_setf(-EINVAL, "kernel record has an invalid name");
        /* The row goes first: once it is gone nothing can start using the
         * files, and a crash before the files go leaves only an orphan the
         * sweep removes. */
        r = store_kernel_delete(s, k.id);
        if (r < 0)
                return r;
        _cleanup_close_ int kfd = open_kernels_dir(state_dir, false);
        if (kfd == -ENOENT)
                return 0;
        if (kfd < 0)
                return kfd;
        r = rm_rf_at(kfd, k.name);
        if (r < 0)
                return error_setf(r, "kernel %s unregistered, but removing its files failed: %m", k.name);
        (void) fsync(kfd);
        return 0;
}

int kernel_store_remove_files(const char *state_dir, const char *name) {
        if (!name_is_valid(name))
                return -EINVAL;
        _cleanup_close_ int kfd = open_kernels_dir(state_dir, false);
        if (kfd < 0)
                return kfd == -ENOENT ? 0 : kfd;
        int r = rm_rf_at(kfd, name);
        (void) fsync(kfd);
        return r;
}

static bool sweep_wants(Store *s, const char *name) {
        if (startswith(name, ".tmp-"))
                return true;
        if (!name_is_valid(name))
                return false; /* not ours: leave it alone */
        KernelRecord k = {};
        int r = store_kernel_get_by_name(s, name, &k);
        kernel_record_done(&k);
        return r == -ENOENT;
}

int kernel_store_sweep(Store *s, const char *state_dir) {
        _cleanup_close_ int kfd = open_kernels_dir(state_dir, false);
        if (kfd == -ENOENT)
                return 0;
        if (kfd < 0)
                return kfd;
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(kfd, ".", &d);
        if (r < 0)
                return r;
        for (struct dirent *de; (de = readdir(d));) {
                if (streq(de->d_name, ".") || streq(de->d_name, "..") || !sweep_wants(s, de->d_name))
                        continue;
                log_debug("kernel sweep: removing %s/%s", KERNEL_STORE_DIR, de->d_name);
                int q = rm_rf_at(kfd, de->d_name);
                if (q < 0 && r >= 0)
                        r = q;
        }
        return r;
}

static json_t *timestamp_json(usec_t t) {
        char buf[40];
        return t ? json_string(format_timestamp(buf, sizeof(buf), t)) : json_null();
}

json_t *kernel_record_to_json(const KernelRecord *k) {
        return json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s?, s:s?, s:I, s:s?, s:o}", "id", k->id, "name", k->name,
                         "version", k->version, "vmlinux", k->elf_path, "kernel", k->kernel_path, "initrd",
                         k->initrd_path, "modules", k->modules_path, "size", (json_int_t) k->size, "sha256", k->sha256,
                         "created_at", timestamp_json(k->created_at));
}

int kernel_store_list_json(Store *s, json_t **ret) {
        KernelRecord *a = NULL;
        size_t n = 0;
        int r = store_kernel_list(s, &a, &n);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *list = json_array();
        for (size_t i = 0; list && i < n; i++)
                if (json_array_append_new(list, kernel_record_to_json(&a[i])) < 0)
                        r = -ENOMEM;
        kernel_record_array_free(a, n);
        if (!list || r < 0)
                return -ENOMEM;
        json_t *o = json_pack("{s:O}", "kernels", list);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

/* manifest.json of a kernel, read beneath the kernels directory only. */
static json_t *manifest_load(const KernelRecord *k) {
        _cleanup_free_ char *dir = NULL, *text = NULL;
        const char *slash = k->elf_path ? strrchr(k->elf_path, '/') : NULL;
        if (!slash || !(dir = strndup(k->elf_path, (size_t) (slash - k->elf_path))))
                return NULL;
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        size_t len = 0;
        if (dfd < 0 || read_file_at(dfd, KERNEL_MANIFEST, MANIFEST_MAX, &text, &len) < 0)
                return NULL;
        return json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
}

int kernel_store_show_json(Store *s, const char *name_or_id, json_t **ret) {
        _cleanup_(kernel_record_done) KernelRecord k = {};
        int r = kernel_store_lookup(s, name_or_id, &k);
        if (r < 0)
                return r;
        json_t *o = kernel_record_to_json(&k);
        json_t *m = manifest_load(&k);
        if (!o || json_object_set_new(o, "manifest", m ? m : json_null()) < 0) {
                json_decref(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

static bool file_has_pvh_entry(const char *path) {
        _cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -EBADF;
        const void *d = NULL;
        size_t len = 0;
        if (fd < 0 || kernel_image_map_fd(fd, &d, &len) < 0)
                return false;
        bool pvh = kernel_elf_has_pvh_entry(d, len);
        kernel_image_unmap(d, len);
        return pvh;
}

const char *kernel_record_boot_path(const KernelRecord *k, VmmKind vmm) {
        /* QEMU starts the uncompressed kernel at its PVH entry when it has
         * one: a bzImage goes through firmware and decompresses itself in
         * the guest, which under TCG takes longer than the rest of the boot
         * (8 s of a 14 s boot of Debian's xz bzImage here). */
        if (vmm == VMM_FIRECRACKER || file_has_pvh_entry(k->elf_path))
                return k->elf_path;
        return k->kernel_path;
}
