/* SPDX-License-Identifier: MIT */
#include "oci-archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "oci-limits.h"
#include "oci-manifest.h"
#include "oci-tree.h"
#include "path-beneath.h"
#include "string-util.h"

#define READ_CHUNK (128U << 10)
#define SYMLINK_HOPS_MAX 8

struct OciArchiveMember {
        char *path;     /* normalized, beneath the root */
        size_t ordinal; /* its header's position in the archive */
        mode_t type;    /* AE_IFREG or AE_IFLNK: nothing else is recorded */
        uint64_t size;
        char *target; /* symlinks */
        char *json;   /* regular members that look like a JSON document */
        size_t json_len;
        bool wanted;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_read_free);

void oci_archive_done(OciArchive *a) {
        for (size_t i = 0; i < a->n_members; i++) {
                free(a->members[i].path);
                free(a->members[i].target);
                free(a->members[i].json);
        }
        free(a->members);
        a->members = NULL;
        a->n_members = 0;
}

typedef struct Reader {
        OciArchive *a;
        uint64_t done;
        char buf[READ_CHUNK];
} Reader;

static int reader_progress(struct archive *ar, Reader *rd) {
        const OciImportOptions *o = rd->a->o;
        uint64_t base = rd->a->pass > 1 ? rd->a->file_size : 0;
        if (o && o->progress &&
            o->progress(OCI_PHASE_UNPACK, base + rd->done, 2 * rd->a->file_size, o->userdata) != 0) {
                archive_set_error(ar, ECANCELED, "cancelled");
                return -1;
        }
        return 0;
}

static la_ssize_t reader_read(struct archive *ar, void *data, const void **ret_buf) {
        Reader *rd = data;
        ssize_t n;
        do
                n = read(rd->a->fd, rd->buf, sizeof(rd->buf));
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                archive_set_error(ar, errno, "read failed");
                return -1;
        }
        rd->done += (uint64_t) n;
        if (reader_progress(ar, rd) < 0)
                return -1;
        *ret_buf = rd->buf;
        return n;
}

/* Uncompressed archives: members that are not wanted are seeked over. */
static la_int64_t reader_skip(struct archive *ar, void *data, la_int64_t request) {
        Reader *rd = data;
        off_t cur = lseek(rd->a->fd, 0, SEEK_CUR);
        if (cur < 0 || request <= 0 || (uint64_t) cur >= rd->a->file_size)
                return 0;
        uint64_t n = MIN((uint64_t) request, rd->a->file_size - (uint64_t) cur);
        if (lseek(rd->a->fd, (off_t) n, SEEK_CUR) < 0)
                return 0;
        rd->done += n;
        return reader_progress(ar, rd) < 0 ? 0 : (la_int64_t) n;
}

static int archive_begin(OciArchive *a, Reader *rd, struct archive **ret) {
        if (lseek(a->fd, 0, SEEK_SET) < 0)
                return -errno;
        *rd = (Reader){ .a = a };
        _cleanup_(archive_read_freep) struct archive *ar = archive_read_new();
        if (!ar)
                return -ENOMEM;
        archive_read_support_format_tar(ar);
        archive_read_support_filter_gzip(ar);
        archive_read_support_filter_zstd(ar);
        archive_read_support_filter_none(ar);
        if (archive_read_set_read_callback(ar, reader_read) != ARCHIVE_OK ||
            archive_read_set_skip_callback(ar, reader_skip) != ARCHIVE_OK ||
            archive_read_set_callback_data(ar, rd) != ARCHIVE_OK)
                return -ENOMEM;
        if (archive_read_open1(ar) != ARCHIVE_OK)
                return error_setf(archive_errno(ar) == ECANCELED ? -ECANCELED : -EBADMSG, "%s is not a tar archive: %s",
                                  a->o ? a->o->source : "the image archive", archive_error_string(ar));
        *ret = TAKE_PTR(ar);
        return 0;
}

/* The next header and its normalized name ("" for the root itself).
 * Returns 1, or 0 at the end. */
static int next_member(struct archive *ar, struct archive_entry **ret_ae, char **ret_path) {
        struct archive_entry *ae;
        int k = archive_read_next_header(ar, &ae);
        if (k == ARCHIVE_EOF)
                return 0;
        if (k != ARCHIVE_OK && k != ARCHIVE_WARN)
                return error_setf(archive_errno(ar) == ECANCELED ? -ECANCELED : -EBADMSG,
                                  "not a valid image archive: %s", archive_error_string(ar));
        const char *name = archive_entry_pathname(ae);
        _cleanup_free_ char *path = NULL;
        int r = name ? oci_path_normalize(name, &path) : -EINVAL;
        if (r < 0 || (*path && !path_beneath_is_valid(path)))
                return error_setf(-EINVAL, "image archive member \"%s\" has an unsafe name", name ? name : "");
        *ret_ae = ae;
        *ret_path = TAKE_PTR(path);
        return 1;
}

static bool looks_like_json(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '{' || p[i] == '[')
                        return true;
                if (!strchr(" \t\r\n", p[i]))
                        return false;
        }
        return false;
}

/* Keep a small member whose bytes start like a JSON document: indexes,
 * manifests and configs are, layers (tar, gzip, zstd) never are. */
static int scan_json(OciArchive *a, struct archive *ar, OciArchiveMember *m) {
        if (m->size == 0 || m->size > OCI_JSON_MAX)
                return 0;
        _cleanup_free_ char *buf = malloc(m->size + 1);
        if (!buf)
                return -ENOMEM;
        size_t n = 0;
        while (n < m->size) {
                la_ssize_t k = archive_read_data(ar, buf + n, m->size - n);
                if (k < 0)
                        return error_setf(archive_errno(ar) == ECANCELED ? -ECANCELED : -EBADMSG,
                                          "image archive member %s: %s", m->path, archive_error_string(ar));
                if (k == 0)
                        return error_setf(-EBADMSG, "image archive member %s is truncated", m->path);
                if (n == 0 && !looks_like_json(buf, (size_t) k))
                        return 0; /* the rest is skipped with the member */
                if (n == 0 && a->json_total + m->size > OCI_ARCHIVE_JSON_BUDGET)
                        return error_setf(-E2BIG, "image archive holds more than %u MiB of JSON documents",
                                          OCI_ARCHIVE_JSON_BUDGET >> 20);
                n += (size_t) k;
        }
        buf[n] = '\0';
        a->json_total += n;
        m->json = TAKE_PTR(buf);
        m->json_len = n;
        return 0;
}

static int scan_regular(OciArchive *a, struct archive *ar, struct archive_entry *ae, OciArchiveMember *m) {
        if (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0)
                return error_setf(-EBADMSG, "image archive member %s has no size", m->path);
        m->size = (uint64_t) archive_entry_size(ae);
        /* Refused at the header, before a byte of the member is read. */
        if (m->size > a->max_bytes - a->total)
                return oci_limit_error(a->max_bytes, "the members of image archive %s (at %s) add up to",
                                       a->o ? a->o->source : "", m->path);
        a->total += m->size;
        return scan_json(a, ar, m);
}

static int scan_member(OciArchive *a, struct archive *ar, struct archive_entry *ae, char *path, size_t ordinal) {
        _cleanup_free_ char *p = path;
        mode_t type = archive_entry_filetype(ae);
        /* Directories are made as needed; hard links, devices and the like
         * are nothing an image archive needs. */
        if (!*p || (type != AE_IFREG && type != AE_IFLNK) || archive_entry_hardlink(ae))
                return 0;
        OciArchiveMember *ms = reallocarray(a->members, a->n_members + 1, sizeof(OciArchiveMember));
        if (!ms)
                return -ENOMEM;
        a->members = ms;
        OciArchiveMember *m = &ms[a->n_members];
        *m = (OciArchiveMember){ .path = TAKE_PTR(p), .ordinal = ordinal, .type = type };
        a->n_members++;
        if (type == AE_IFLNK) {
                const char *t = archive_entry_symlink(ae);
                m->target = strdup(t ? t : "");
                return m->target ? 0 : -ENOMEM;
        }
        return scan_regular(a, ar, ae, m);
}

int oci_archive_scan(OciArchive *a) {
        struct stat st;
        if (fstat(a->fd, &st) < 0)
                return -errno;
        a->file_size = (uint64_t) st.st_size;
        a->pass = 1;
        _cleanup_free_ Reader *rd = malloc(sizeof(Reader));
        if (!rd)
                return -ENOMEM;
        _cleanup_(archive_read_freep) struct archive *ar = NULL;
        int r = archive_begin(a, rd, &ar);
        for (size_t ordinal = 0; r >= 0; ordinal++) {
                struct archive_entry *ae;
                char *path;
                r = next_member(ar, &ae, &path);
                if (r <= 0)
                        break;
                if (ordinal >= OCI_ARCHIVE_MEMBERS_MAX) {
                        free(path);
                        return error_setf(-E2BIG, "image archive has more than %u members", OCI_ARCHIVE_MEMBERS_MAX);
                }
                r = scan_member(a, ar, ae, path, ordinal);
        }
        return r;
}

/* Where a symlink member leads: beneath the archive's root, or -EXDEV. */
static int link_target(const char *path, const char *target, char **ret) {
        _cleanup_free_ char *out = NULL;
        int r = oci_path_resolve_link(path, target, &out);
        if (r < 0)
                return r == -ENOMEM ? r : -EXDEV;
        if (!*out || !path_beneath_is_valid(out))
                return -EXDEV;
        *ret = TAKE_PTR(out);
        return 0;
}

/* The last member of that name: a later one replaces an earlier one, as
 * tar extraction would. */
static OciArchiveMember *member_find(const OciArchive *a, const char *path) {
        for (size_t i = a->n_members; i > 0; i--)
                if (streq(a->members[i - 1].path, path))
                        return &a->members[i - 1];
        return NULL;
}

static int resolve(const OciArchive *a, const char *path, OciArchiveMember **ret) {
        _cleanup_free_ char *cur = strdup(path);
        if (!cur)
                return -ENOMEM;
        for (unsigned hop = 0; hop <= SYMLINK_HOPS_MAX; hop++) {
                OciArchiveMember *m = member_find(a, cur);
                if (!m)
                        return error_setf(-ENOENT, "image archive has no member %s", cur);
                if (m->type == AE_IFREG) {
                        *ret = m;
                        return 0;
                }
                char *next = NULL;
                int r = link_target(m->path, m->target, &next);
                if (r < 0)
                        return error_setf(r, "image archive member %s links outside the archive", m->path);
                free(cur);
                cur = next;
        }
        return error_setf(-ELOOP, "image archive member %s: too many levels of symlinks", path);
}

bool oci_archive_has(const OciArchive *a, const char *path) {
        OciArchiveMember *m;
        return resolve(a, path, &m) == 0;
}

int oci_archive_read_json(const OciArchive *a, const char *path, size_t max, char **ret, size_t *ret_len) {
        OciArchiveMember *m;
        int r = resolve(a, path, &m);
        if (r < 0)
                return r;
        if (m->size > max)
                return error_setf(-EFBIG, "%s in the image archive is larger than %zu bytes", path, max);
        if (!m->json)
                return error_setf(-EMEDIUMTYPE, "%s in the image archive is not a JSON document", path);
        char *s = malloc(m->json_len + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, m->json, m->json_len + 1);
        *ret = s;
        *ret_len = m->json_len;
        return 0;
}

int oci_archive_want(OciArchive *a, const char *path, char **ret_path, uint64_t *ret_size) {
        OciArchiveMember *m;
        int r = resolve(a, path, &m);
        if (r < 0)
                return r;
        char *p = strdup(m->path);
        if (!p)
                return -ENOMEM;
        m->wanted = true;
        *ret_path = p;
        *ret_size = m->size;
        return 0;
}

/* Create the parent directories of a normalized relative path. Nothing
 * but these directories and wanted members is ever created, so no symlink
 * can redirect this. */
static int mkdir_parents(int dirfd, const char *path) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p; (s = strchr(s, '/')); s++) {
                *s = '\0';
                if (mkdirat(dirfd, p, 0700) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

/* Copy a member's bytes, never more than its header announced. */
static int extract_member(struct archive *ar, int dirfd, const OciArchiveMember *m) {
        int r = mkdir_parents(dirfd, m->path);
        if (r < 0)
                return error_setf(r, "image archive member %s: %s", m->path, strerror(-r));
        _cleanup_close_ int fd = open_beneath(dirfd, m->path, O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY, 0600);
        if (fd < 0)
                return error_setf(fd, "image archive member %s: %s", m->path, strerror(-fd));
        for (;;) {
                const void *buf;
                size_t len;
                la_int64_t off;
                int k = archive_read_data_block(ar, &buf, &len, &off);
                if (k == ARCHIVE_EOF) /* a sparse member may end in a hole */
                        return ftruncate(fd, (off_t) m->size) < 0 ? -errno : 0;
                if (k != ARCHIVE_OK)
                        return error_setf(archive_errno(ar) == ECANCELED ? -ECANCELED : -EBADMSG,
                                          "image archive member %s: %s", m->path, archive_error_string(ar));
                if (off < 0 || (uint64_t) off > m->size || len > m->size - (uint64_t) off)
                        return error_setf(-EBADMSG, "image archive member %s has data beyond its size", m->path);
                for (size_t done = 0; done < len;) {
                        ssize_t n = pwrite(fd, (const char *) buf + done, len - done, (off_t) off + (off_t) done);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0)
                                return error_setf(n < 0 ? -errno : -EIO, "cannot unpack %s: %m", m->path);
                        done += (size_t) n;
                }
        }
}

static void wanted_bytes(const OciArchive *a, uint64_t *ret_bytes, size_t *ret_count) {
        uint64_t bytes = 0;
        size_t count = 0;
        for (size_t i = 0; i < a->n_members; i++)
                if (a->members[i].wanted) {
                        bytes += a->members[i].size;
                        count++;
                }
        *ret_bytes = bytes;
        *ret_count = count;
}

int oci_archive_extract(OciArchive *a, int dirfd) {
        uint64_t need;
        size_t left;
        wanted_bytes(a, &need, &left);
        int r = oci_check_free(dirfd, need, "the layers of the image archive");
        if (r < 0)
                return r;
        a->pass = 2;
        _cleanup_free_ Reader *rd = malloc(sizeof(Reader));
        if (!rd)
                return -ENOMEM;
        _cleanup_(archive_read_freep) struct archive *ar = NULL;
        if ((r = archive_begin(a, rd, &ar)) < 0)
                return r;
        size_t j = 0;
        /* Stops once the last wanted member is out: the rest is never read. */
        for (size_t ordinal = 0; left > 0; ordinal++) {
                struct archive_entry *ae;
                _cleanup_free_ char *path = NULL;
                r = next_member(ar, &ae, &path);
                if (r < 0)
                        return r;
                while (j < a->n_members && a->members[j].ordinal < ordinal)
                        j++;
                const OciArchiveMember *m = j < a->n_members ? &a->members[j] : NULL;
                if (r == 0 || (m && m->ordinal == ordinal &&
                               (!streq(m->path, path) || archive_entry_size(ae) != (la_int64_t) m->size)))
                        return error_setf(-EBUSY, "image archive %s changed while it was read",
                                          a->o ? a->o->source : "");
                if (!m || m->ordinal != ordinal || !m->wanted)
                        continue;
                if ((r = extract_member(ar, dirfd, m)) < 0)
                        return r;
                left--;
        }
        return 0;
}
