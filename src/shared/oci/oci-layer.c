/* SPDX-License-Identifier: MIT */
#include "oci-layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "oci-digest.h"
#include "string-util.h"

#define READ_CHUNK (128U << 10)

typedef struct LayerReader {
        int fd;
        OciHasher *hasher;
        uint64_t done;
        OciLayerProgressFn progress;
        void *userdata;
        int error; /* first failure inside the read callback */
        char buf[READ_CHUNK];
} LayerReader;

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_read_free);

static la_ssize_t reader_read(struct archive *a, void *data, const void **ret_buf) {
        LayerReader *lr = data;
        ssize_t n;
        do
                n = read(lr->fd, lr->buf, sizeof(lr->buf));
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                lr->error = -errno;
                if (a)
                        archive_set_error(a, errno, "read failed");
                return -1;
        }
        if (oci_hasher_update(lr->hasher, lr->buf, (size_t) n) < 0) {
                lr->error = -EIO;
                return -1;
        }
        lr->done += (uint64_t) n;
        if (lr->progress && lr->progress(lr->done, lr->userdata) != 0) {
                lr->error = -ECANCELED;
                if (a)
                        archive_set_error(a, ECANCELED, "cancelled");
                return -1;
        }
        *ret_buf = lr->buf;
        return n;
}

/* The tar ends with zero blocks and may be followed by padding: all of it
 * belongs to the blob and its digest. */
static int reader_drain(LayerReader *lr) {
        for (;;) {
                const void *b;
                la_ssize_t n = reader_read(NULL, lr, &b);
                if (n < 0)
                        return lr->error;
                if (n == 0)
                        return 0;
        }
}

static int entry_spool(OciTree *t, struct archive *a, struct archive_entry *ae, OciEntry *e) {
        if (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0)
                return error_setf(-EBADMSG, "layer entry \"%s\" has no size", e->path);
        e->size = (uint64_t) archive_entry_size(ae);
        int r = oci_tree_spool_reserve(t, e->size, &e->spool_off);
        if (r < 0)
                return r;
        for (;;) {
                const void *buf;
                size_t len;
                la_int64_t off;
                int k = archive_read_data_block(a, &buf, &len, &off);
                if (k == ARCHIVE_EOF)
                        return 0;
                if (k != ARCHIVE_OK)
                        return error_setf(-EBADMSG, "layer entry \"%s\": %s", e->path, archive_error_string(a));
                if (off < 0 || (uint64_t) off > e->size || len > e->size - (uint64_t) off)
                        return error_setf(-EBADMSG, "layer entry \"%s\" has data beyond its size", e->path);
                if ((r = oci_tree_spool_write(t, e->spool_off + (uint64_t) off, buf, len)) < 0)
                        return r;
        }
}

static int entry_from_archive(struct archive_entry *ae, OciEntry *e) {
        la_int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
        if (uid < 0 || uid > UINT32_MAX - 1 || gid < 0 || gid > UINT32_MAX - 1)
                return error_setf(-ERANGE, "layer entry \"%s\" has an invalid owner", e->path);
        *e = (OciEntry){
                .path = e->path,
                .mode = (mode_t) archive_entry_filetype(ae) | (archive_entry_perm(ae) & 07777),
                .uid = (uint32_t) uid,
                .gid = (uint32_t) gid,
                .mtime = archive_entry_mtime(ae),
                .symlink = archive_entry_symlink(ae),
                .hardlink = archive_entry_hardlink(ae),
                .rdev_major = (uint32_t) archive_entry_rdevmajor(ae),
                .rdev_minor = (uint32_t) archive_entry_rdevminor(ae),
        };
        return 0;
}

static int apply_entries(OciTree *t, struct archive *a, const char *name) {
        for (;;) {
                struct archive_entry *ae;
                int k = archive_read_next_header(a, &ae);
                if (k == ARCHIVE_EOF)
                        return 0;
                if (k != ARCHIVE_OK && k != ARCHIVE_WARN)
                        return error_setf(-EBADMSG, "layer %s is not a valid tar: %s", name, archive_error_string(a));
                OciEntry e = { .path = archive_entry_pathname(ae) };
                if (!e.path)
                        return error_setf(-EBADMSG, "layer %s has an entry without a name", name);
                int r = entry_from_archive(ae, &e);
                if (r < 0)
                        return r;
                if (!e.hardlink && S_ISREG(e.mode) && (r = entry_spool(t, a, ae, &e)) < 0)
                        return r;
                if ((r = oci_tree_apply(t, &e)) < 0)
                        return r;
        }
}

int oci_layer_apply(OciTree *t, int fd, const char *expected_digest, const char *name, OciLayerProgressFn progress,
                    void *userdata) {
        _cleanup_oci_hasher_ OciHasher *h = NULL;
        int r = oci_hasher_new(&h);
        if (r < 0)
                return r;
        _cleanup_free_ LayerReader *lr = malloc(sizeof(LayerReader));
        if (!lr)
                return -ENOMEM;
        *lr = (LayerReader){ .fd = fd, .hasher = h, .progress = progress, .userdata = userdata };
        _cleanup_(archive_read_freep) struct archive *a = archive_read_new();
        if (!a)
                return -ENOMEM;
        /* Layers are tar only; the filters cover what registries serve. */
        archive_read_support_format_tar(a);
        archive_read_support_filter_gzip(a);
        archive_read_support_filter_zstd(a);
        archive_read_support_filter_none(a);
        if (archive_read_open(a, lr, NULL, reader_read, NULL) != ARCHIVE_OK) {
                r = lr->error < 0 ? lr->error : -EBADMSG;
                return error_setf(r, "cannot read layer %s: %s", name, archive_error_string(a));
        }
        oci_tree_begin_layer(t);
        r = apply_entries(t, a, name);
        if (r < 0)
                return lr->error < 0 ? error_setf(lr->error, "cannot read layer %s: %s", name, strerror(-lr->error))
                                     : r;
        if ((r = reader_drain(lr)) < 0)
                return error_setf(r, "cannot read layer %s: %s", name, strerror(-r));
        char got[OCI_DIGEST_STRLEN];
        if ((r = oci_hasher_final(h, got)) < 0)
                return r;
        if (!streq(got, expected_digest))
                return error_setf(-EBADMSG, "digest mismatch for layer %s: expected %s, got %s", name,
                                  expected_digest, got);
        log_debug("applied layer %s (%llu bytes)", name, (unsigned long long) lr->done);
        return 0;
}
