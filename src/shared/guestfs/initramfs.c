/* SPDX-License-Identifier: MIT */
#include "initramfs.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "string-util.h"

#define MODULES_DEP_MAX (16U << 20)
#define MODULE_FILE_MAX (64U << 20)
#define BUSYBOX_MAX (16U << 20)

/* The order of the measured test image: checksum first, then the bus, the
 * disk and the filesystem. crc32c_generic is ext4's soft dependency (through
 * the crypto API), which modules.dep does not list; virtio_pci serves QEMU
 * machines with a PCI bus. Optional ones may be absent. The NIC, console
 * (the agent's virtio-serial port) and vsock drivers come last: images
 * imported from OCI boot this kernel too and carry no modules of their own
 * (a Debian root loads them again through udev, which finds them loaded). */
static const struct {
        const char *name;
        bool required;
} wanted_modules[] = {
        { "crc32c_generic", false },
        { "virtio_mmio", true },
        { "virtio_pci", false },
        { "virtio_blk", true },
        { "ext4", true },
        { "virtio_net", false },
        { "virtio_console", false },
        { "vmw_vsock_virtio_transport", false },
};

/* /init: the approach of tests/images/initramfs-init (measured to boot
 * Debian's kernel under QEMU microvm), which it mirrors. */
static const char init_script[] = "#!/bin/sh\n"
                                  "# banger initramfs: load the root-disk modules, mount the root, switch_root.\n"
                                  "PATH=/bin\n"
                                  "export PATH\n"
                                  "mount -t proc proc /proc\n"
                                  "mount -t sysfs sysfs /sys\n"
                                  "mount -t devtmpfs devtmpfs /dev\n"
                                  "exec </dev/console >/dev/console 2>&1\n"
                                  "root=/dev/vda\n"
                                  "rootflags=rw\n"
                                  "for arg in $(cat /proc/cmdline); do\n"
                                  "        case \"$arg\" in\n"
                                  "        root=/dev/*) root=${arg#root=} ;;\n"
                                  "        ro) rootflags=ro ;;\n"
                                  "        esac\n"
                                  "done\n"
                                  "while read -r mod; do\n"
                                  "        insmod \"/lib/modules/$mod\" || echo \"initramfs: insmod $mod failed\"\n"
                                  "done </etc/modules-load\n"
                                  "i=0\n"
                                  "while [ ! -b \"$root\" ] && [ $i -lt 100 ]; do\n"
                                  "        sleep 0.1\n"
                                  "        i=$((i + 1))\n"
                                  "done\n"
                                  "if [ ! -b \"$root\" ]; then\n"
                                  "        echo \"initramfs: root device $root did not appear\"\n"
                                  "        exec sh\n"
                                  "fi\n"
                                  "if ! mount -t ext4 -o \"$rootflags\" \"$root\" /newroot; then\n"
                                  "        echo \"initramfs: cannot mount $root\"\n"
                                  "        exec sh\n"
                                  "fi\n"
                                  "mount --move /dev /newroot/dev\n"
                                  "umount /proc /sys\n"
                                  "exec switch_root /newroot /sbin/init\n";

static const char *const applets[] = { "sh", "mount", "umount", "insmod", "sleep", "cat", "echo", "switch_root", NULL };

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_read_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_write_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive_entry *, archive_entry_free);

/* "kernel/fs/ext4/ext4.ko.xz" -> is it module `name`? ('-' and '_' are one). */
static bool module_path_is(const char *path, const char *name) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t n = strlen(name);
        for (size_t i = 0; i < n; i++) {
                char a = base[i] == '-' ? '_' : base[i], b = name[i] == '-' ? '_' : name[i];
                if (a != b || !a)
                        return false;
        }
        return startswith(base + n, ".ko") != NULL;
}

typedef struct DepTable {
        char *text;   /* modules.dep, edited in place */
        char **lines; /* "path: dep dep" */
        size_t n;
        char *builtin; /* modules.builtin, may be NULL */
} DepTable;

static void dep_table_done(DepTable *t) {
        free(t->text);
        free(t->lines);
        free(t->builtin);
}

static int dep_table_load(int modules_fd, DepTable *t) {
        size_t len = 0;
        int r = read_file_at(modules_fd, "modules.dep", MODULES_DEP_MAX, &t->text, &len);
        if (r < 0)
                return error_setf(r, "cannot read modules.dep (run depmod): %m");
        (void) read_file_at(modules_fd, "modules.builtin", MODULES_DEP_MAX, &t->builtin, NULL);
        size_t cap = 0;
        for (char *save = NULL, *l = strtok_r(t->text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                if (t->n == cap) {
                        cap = cap ? cap * 2 : 1024;
                        char **nl = realloc(t->lines, cap * sizeof(char *));
                        if (!nl)
                                return -ENOMEM;
                        t->lines = nl;
                }
                t->lines[t->n++] = l;
        }
        return 0;
}

/* The modules.dep line of a module, or NULL. */
static char *dep_find(const DepTable *t, const char *name, size_t name_len) {
        char want[256];
        if (name_len >= sizeof(want))
                return NULL;
        memcpy(want, name, name_len);
        want[name_len] = '\0';
        for (size_t i = 0; i < t->n; i++) {
                char path[1024];
                size_t pl = strcspn(t->lines[i], ":");
                if (pl >= sizeof(path))
                        continue;
                memcpy(path, t->lines[i], pl);
                path[pl] = '\0';
                if (module_path_is(path, want))
                        return t->lines[i];
        }
        return NULL;
}

static bool builtin_has(const DepTable *t, const char *name) {
        if (!t->builtin)
                return false;
        for (const char *l = t->builtin; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] ? 1 : 0)) {
                char path[1024];
                size_t pl = strcspn(l, "\n");
                if (pl < sizeof(path)) {
                        memcpy(path, l, pl);
                        path[pl] = '\0';
                        if (module_path_is(path, name))
                                return true;
                }
        }
        return false;
}

typedef struct Resolved {
        char *paths[INITRAMFS_MODULES_MAX + 1];
        size_t n;
} Resolved;

static int resolve_path(const DepTable *t, const char *line, Resolved *out, unsigned depth);

/* Resolve a dependency path "kernel/lib/crc16.ko" (from a dep list). */
static int resolve_dep(const DepTable *t, const char *dep, size_t len, Resolved *out, unsigned depth) {
        for (size_t i = 0; i < t->n; i++)
                if (strncmp(t->lines[i], dep, len) == 0 && t->lines[i][len] == ':')
                        return resolve_path(t, t->lines[i], out, depth + 1);
        return error_setf(-EBADMSG, "modules.dep names %.*s but has no line for it", (int) len, dep);
}

static int resolve_path(const DepTable *t, const char *line, Resolved *out, unsigned depth) {
        size_t pl = strcspn(line, ":");
        if (depth > 16)
                return error_setf(-ELOOP, "modules.dep: dependency loop");
        for (size_t i = 0; i < out->n; i++)
                if (strlen(out->paths[i]) == pl && strncmp(out->paths[i], line, pl) == 0)
                        return 0;
        for (const char *d = line + pl + (line[pl] ? 1 : 0); *d;) {
                d += strspn(d, " \t");
                size_t dl = strcspn(d, " \t");
                if (dl == 0)
                        break;
                int r = resolve_dep(t, d, dl, out, depth);
                if (r < 0)
                        return r;
                d += dl;
        }
        if (out->n >= INITRAMFS_MODULES_MAX)
                return error_setf(-E2BIG, "initramfs: too many modules");
        out->paths[out->n] = strndup(line, pl);
        return out->paths[out->n++] ? 0 : -ENOMEM;
}

static int resolve_name(const DepTable *t, const char *name, bool required, Resolved *out) {
        const char *line = dep_find(t, name, strlen(name));
        if (line)
                return resolve_path(t, line, out, 0);
        if (builtin_has(t, name) || !required)
                return 0;
        return error_setf(-ENOENT, "the kernel has no %s module and does not build it in", name);
}

int initramfs_resolve_modules(int modules_fd, char ***ret_paths) {
        _cleanup_(dep_table_done) DepTable t = {};
        Resolved out = {};
        int r = dep_table_load(modules_fd, &t);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(wanted_modules); i++)
                r = resolve_name(&t, wanted_modules[i].name, wanted_modules[i].required, &out);
        if (r < 0) {
                for (size_t i = 0; i < out.n; i++)
                        free(out.paths[i]);
                return r;
        }
        char **l = calloc(out.n + 1, sizeof(char *));
        if (!l) {
                for (size_t i = 0; i < out.n; i++)
                        free(out.paths[i]);
                return -ENOMEM;
        }
        memcpy(l, out.paths, out.n * sizeof(char *));
        *ret_paths = l;
        return 0;
}

/* Read a module, decompressing .ko.xz/.ko.zst/.ko.gz (raw libarchive, no
 * external program); a plain .ko passes through unchanged. */
static int read_module(int modules_fd, const char *path, void **ret, size_t *ret_len) {
        _cleanup_close_ int fd = openat(modules_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return error_setf(-errno, "cannot open module %s: %m", path);
        _cleanup_(archive_read_freep) struct archive *a = archive_read_new();
        struct archive_entry *e;
        if (!a)
                return -ENOMEM;
        (void) archive_read_support_format_raw(a);
        (void) archive_read_support_filter_gzip(a);
        (void) archive_read_support_filter_xz(a);
        (void) archive_read_support_filter_zstd(a);
        if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK || archive_read_next_header(a, &e) != ARCHIVE_OK)
                return error_setf(-EBADMSG, "module %s: %s", path, archive_error_string(a));
        size_t cap = 1U << 20, n = 0;
        _cleanup_free_ char *buf = malloc(cap);
        for (;;) {
                if (!buf)
                        return -ENOMEM;
                if (n == cap) {
                        if (cap >= MODULE_FILE_MAX)
                                return error_setf(-EFBIG, "module %s is too large", path);
                        char *nb = realloc(buf, cap * 2);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap *= 2;
                }
                la_ssize_t k = archive_read_data(a, buf + n, cap - n);
                if (k < 0)
                        return error_setf(-EBADMSG, "module %s: %s", path, archive_error_string(a));
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

static int cpio_add(struct archive *w, const char *path, mode_t mode, const void *data, size_t len, const char *link,
                    dev_t rdev) {
        _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
        if (!e)
                return -ENOMEM;
        archive_entry_set_pathname(e, path);
        archive_entry_set_mode(e, mode);
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        archive_entry_set_mtime(e, 0, 0);
        archive_entry_set_nlink(e, S_ISDIR(mode) ? 2 : 1);
        if (link)
                archive_entry_set_symlink(e, link);
        if (S_ISCHR(mode))
                archive_entry_set_rdev(e, rdev);
        archive_entry_set_size(e, S_ISREG(mode) ? (la_int64_t) len : 0);
        if (archive_write_header(w, e) != ARCHIVE_OK)
                return error_setf(-EIO, "initramfs: %s: %s", path, archive_error_string(w));
        if (S_ISREG(mode) && len && archive_write_data(w, data, len) != (la_ssize_t) len)
                return error_setf(-EIO, "initramfs: %s: %s", path, archive_error_string(w));
        return 0;
}

static int add_skeleton(struct archive *w, const char *busybox) {
        static const char *const dirs[] = { "bin", "dev", "etc", "lib", "lib/modules", "newroot", "proc", "sys", NULL };
        _cleanup_free_ char *bb = NULL;
        size_t bb_len = 0;
        int r = read_file_at(AT_FDCWD, busybox, BUSYBOX_MAX, &bb, &bb_len);
        if (r < 0)
                return error_setf(r, "cannot read busybox %s: %m", busybox);
        for (size_t i = 0; r >= 0 && dirs[i]; i++)
                r = cpio_add(w, dirs[i], S_IFDIR | 0755, NULL, 0, NULL, 0);
        if (r >= 0)
                r = cpio_add(w, "dev/console", S_IFCHR | 0600, NULL, 0, NULL, makedev(5, 1));
        if (r >= 0)
                r = cpio_add(w, "bin/busybox", S_IFREG | 0755, bb, bb_len, NULL, 0);
        for (size_t i = 0; r >= 0 && applets[i]; i++) {
                char p[64];
                snprintf(p, sizeof(p), "bin/%s", applets[i]);
                r = cpio_add(w, p, S_IFLNK | 0777, NULL, 0, "busybox", 0);
        }
        if (r >= 0)
                r = cpio_add(w, "init", S_IFREG | 0755, init_script, strlen(init_script), NULL, 0);
        return r;
}

/* Modules go in flat as lib/modules/<name>.ko, listed in etc/modules-load. */
static int add_modules(struct archive *w, int modules_fd, char **paths) {
        _cleanup_free_ char *list = NULL;
        size_t list_len = 0;
        FILE *f = open_memstream(&list, &list_len);
        if (!f)
                return -ENOMEM;
        int r = 0;
        for (char **p = paths; r >= 0 && *p; p++) {
                _cleanup_free_ void *data = NULL;
                size_t len = 0;
                const char *base = strrchr(*p, '/') ? strrchr(*p, '/') + 1 : *p;
                char name[300];
                snprintf(name, sizeof(name), "%.*s.ko", (int) strcspn(base, "."), base);
                r = read_module(modules_fd, *p, &data, &len);
                if (r >= 0) {
                        char dst[320];
                        snprintf(dst, sizeof(dst), "lib/modules/%s", name);
                        r = cpio_add(w, dst, S_IFREG | 0644, data, len, NULL, 0);
                        fprintf(f, "%s\n", name);
                }
        }
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r >= 0)
                r = cpio_add(w, "etc/modules-load", S_IFREG | 0644, list, list_len, NULL, 0);
        return r;
}

int initramfs_build(int modules_fd, const char *busybox, int out_dirfd, const char *out_name) {
        _cleanup_strv_free_ char **paths = NULL;
        int r = initramfs_resolve_modules(modules_fd, &paths);
        if (r < 0)
                return r;
        _cleanup_close_ int fd =
                openat(out_dirfd, out_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        _cleanup_(archive_write_freep) struct archive *w = archive_write_new();
        if (!w)
                r = -ENOMEM;
        else if (archive_write_set_format_cpio_newc(w) != ARCHIVE_OK ||
                 archive_write_add_filter_gzip(w) != ARCHIVE_OK ||
                 archive_write_set_bytes_in_last_block(w, 1) != ARCHIVE_OK ||
                 archive_write_open_fd(w, fd) != ARCHIVE_OK)
                r = error_setf(-EIO, "initramfs: %s", archive_error_string(w));
        if (r >= 0)
                r = add_skeleton(w, busybox);
        if (r >= 0)
                r = add_modules(w, modules_fd, paths);
        if (r >= 0 && archive_write_close(w) != ARCHIVE_OK)
                r = error_setf(-EIO, "initramfs: %s", archive_error_string(w));
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(out_dirfd, out_name, 0);
        return r;
}
