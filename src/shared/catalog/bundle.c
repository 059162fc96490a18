/* SPDX-License-Identifier: MIT */
#include "bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle-entries.h"
#include "banger-build.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "string-util.h"
#include "time-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_write_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive_entry *, archive_entry_free);

bool bundle_version_is_valid(const char *v) {
        size_t n = v ? strlen(v) : 0;
        if (n == 0 || n > BUNDLE_VERSION_MAX || v[0] == '.' || v[0] == '-')
                return false;
        return strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+~-") == n;
}

static json_t *manifest_new(const BundleOptions *o, const BundleEntries *es) {
        char ts[40];
        json_t *files = json_array();
        for (size_t i = 0; files && i < es->n; i++)
                json_array_append_new(files, bundle_entry_to_json(&es->v[i]));
        return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s?}, s:s, s:s, s:o}", "format", BUNDLE_FORMAT,
                         "kind", o->image ? "image" : "kernel", "name", o->name, "version", o->version, "description",
                         o->description ? o->description : "", "architecture", "x86_64", "kernel", "name",
                         o->kernel->name, "version", o->kernel->version, "banger_version", BANGER_VERSION, "created_at",
                         format_timestamp(ts, sizeof(ts), now_realtime()) ? ts : "", "files", files);
}

static int archive_fail(struct archive *a, const char *what) {
        int e = archive_errno(a);
        return error_setf(e > 0 ? -e : -EIO, "cannot write the bundle (%s): %s", what,
                          archive_error_string(a) ? archive_error_string(a) : "unknown error");
}

static int write_manifest(struct archive *a, const char *text) {
        _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
        if (!e)
                return -ENOMEM;
        size_t len = strlen(text);
        archive_entry_set_pathname(e, BUNDLE_MANIFEST);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t) len);
        if (archive_write_header(a, e) != ARCHIVE_OK || archive_write_data(a, text, len) != (la_ssize_t) len)
                return archive_fail(a, BUNDLE_MANIFEST);
        return 0;
}

/* The data regions of fd as sparse entries; none when it has no hole. */
static int add_sparse_map(struct archive_entry *e, int fd, uint64_t size) {
        off_t pos = 0;
        bool holes = false;
        for (;;) {
                off_t data = lseek(fd, pos, SEEK_DATA);
                if (data < 0 && errno == ENXIO)
                        break;
                if (data < 0)
                        return -errno;
                off_t hole = lseek(fd, data, SEEK_HOLE);
                if (hole < 0)
                        return -errno;
                holes = holes || data > pos;
                archive_entry_sparse_add_entry(e, data, hole - data);
                pos = hole;
        }
        /* libarchive adds the hole after the last region itself. */
        if (!holes && (uint64_t) pos == size)
                archive_entry_sparse_clear(e);
        return 0;
}

/* Feed the file's logical bytes: data is read, holes are zeros the pax
 * writer skips (it keeps only the regions of the sparse map). */
static int write_file_data(struct archive *a, int fd, const BundleEntry *be, const Progress *p, uint64_t *done,
                           uint64_t total) {
        static const char zeros[1 << 16];
        _cleanup_free_ char *buf = malloc(1 << 20);
        if (!buf)
                return -ENOMEM;
        for (uint64_t pos = 0; pos < be->size;) {
                off_t data = lseek(fd, (off_t) pos, SEEK_DATA);
                uint64_t d = data < 0 ? be->size : (uint64_t) data;
                *done += d - pos;
                for (; pos < d; pos += MIN(d - pos, sizeof(zeros)))
                        if (archive_write_data(a, zeros, MIN(d - pos, sizeof(zeros))) < 0)
                                return archive_fail(a, be->path);
                if (pos >= be->size)
                        break;
                ssize_t n = pread(fd, buf, MIN(be->size - pos, (uint64_t) (1 << 20)), (off_t) pos);
                if (n < 0)
                        return error_setf(-errno, "cannot read %s: %m", be->src);
                if (n == 0)
                        return error_setf(-EBUSY, "%s shrank while it was bundled", be->src);
                if (archive_write_data(a, buf, (size_t) n) != n)
                        return archive_fail(a, be->path);
                pos += (uint64_t) n;
                *done += (uint64_t) n;
                progress_report(p, "write", be->path, *done, total);
                int r = progress_check(p);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int write_entry(struct archive *a, const BundleEntry *be, const Progress *p, uint64_t *done, uint64_t total) {
        _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
        _cleanup_close_ int fd = -EBADF;
        if (!e)
                return -ENOMEM;
        archive_entry_set_pathname(e, be->path);
        archive_entry_set_perm(e, be->mode & 07777);
        archive_entry_set_mtime(e, 0, 0);
        if (S_ISDIR(be->mode))
                archive_entry_set_filetype(e, AE_IFDIR);
        else {
                fd = open(be->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (fd < 0)
                        return error_setf(-errno, "cannot open %s: %m", be->src);
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_size(e, (la_int64_t) be->size);
                int r = add_sparse_map(e, fd, be->size);
                if (r < 0)
                        return error_setf(r, "cannot map the holes of %s: %s", be->src, strerror(-r));
        }
        if (archive_write_header(a, e) != ARCHIVE_OK)
                return archive_fail(a, be->path);
        return fd < 0 ? 0 : write_file_data(a, fd, be, p, done, total);
}

static int write_archive(int fd, const char *manifest, const BundleEntries *es, const Progress *p) {
        _cleanup_(archive_write_freep) struct archive *a = archive_write_new();
        if (!a)
                return -ENOMEM;
        if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
            archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
            archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK || archive_write_open_fd(a, fd) != ARCHIVE_OK)
                return archive_fail(a, "setup");
        int r = write_manifest(a, manifest);
        uint64_t done = 0, total = bundle_entries_data_bytes(es);
        for (size_t i = 0; r >= 0 && i < es->n; i++)
                r = write_entry(a, &es->v[i], p, &done, total);
        if (r >= 0 && archive_write_close(a) != ARCHIVE_OK)
                r = archive_fail(a, "close");
        return r;
}

/* output's directory and a temporary name beside it: renamed into place
 * only once complete, so a failed bundle never replaces a good one. */
static int open_output(const char *output, int *ret_dirfd, char **ret_tmp, const char **ret_base) {
        _cleanup_free_ char *dir = strdup(output);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (!slash)
                return -ENOMEM;
        *slash = '\0';
        const char *base = output + (slash - dir) + 1;
        if (!*base)
                return error_setf(-EINVAL, "%s names a directory, not a bundle file", output);
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir[0] ? dir : "/");
        if (dfd < 0)
                return error_setf(dfd, "cannot open the directory of %s: %s", output, strerror(-dfd));
        _cleanup_free_ char *tmp = NULL;
        uint32_t salt = 0;
        if (getrandom(&salt, sizeof(salt), 0) != sizeof(salt) || asprintf(&tmp, ".%s.%08x.tmp", base, salt) < 0)
                return -ENOMEM;
        int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return error_setf(-errno, "cannot create %s: %m", output);
        *ret_dirfd = TAKE_FD(dfd);
        *ret_tmp = TAKE_PTR(tmp);
        *ret_base = base;
        return fd;
}

int bundle_write(const BundleOptions *o) {
        if (!bundle_version_is_valid(o->version))
                return error_setf(-EINVAL, "'%s' is not a valid bundle version", o->version ? o->version : "");
        if (o->description && strlen(o->description) > BUNDLE_DESCRIPTION_MAX)
                return error_setf(-EINVAL, "the description is longer than %d bytes", BUNDLE_DESCRIPTION_MAX);
        _cleanup_(bundle_entries_done) BundleEntries es = {};
        int r = bundle_entries_collect(o->kernel, o->image, &es);
        if (r >= 0)
                r = bundle_entries_hash(&es, &o->progress);
        if (r < 0)
                return r;
        json_t *m = manifest_new(o, &es);
        _cleanup_free_ char *text = m ? json_dumps(m, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
        json_decref(m);
        if (!text)
                return -ENOMEM;
        _cleanup_close_ int dfd = -EBADF;
        _cleanup_free_ char *tmp = NULL;
        const char *base = NULL;
        _cleanup_close_ int fd = open_output(o->output, &dfd, &tmp, &base);
        if (fd < 0)
                return fd;
        r = write_archive(fd, text, &es, &o->progress);
        if (r >= 0 && fsync(fd) < 0)
                r = error_setf(-errno, "cannot write %s: %m", o->output);
        if (r >= 0)
                r = progress_commit(&o->progress, "is putting the bundle in place");
        if (r >= 0 && renameat(dfd, tmp, dfd, base) < 0)
                r = error_setf(-errno, "cannot write %s: %m", o->output);
        if (r < 0) {
                (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        (void) fsync(dfd);
        return 0;
}
