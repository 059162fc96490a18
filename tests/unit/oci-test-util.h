/* SPDX-License-Identifier: MIT */
#pragma once

/* Building OCI images for the tests by hand: layer tars written with
 * libarchive, blobs stored under their sha256, manifests, configs and
 * index.json written as text. Nothing comes from the network. */

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "oci-digest.h"
#include "spawn.h"

static inline int write_text(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        int r = loop_write(fd, text, strlen(text));
        close(fd);
        return r;
}

typedef struct TestLayer {
        struct archive *a;
        char path[512];
        bool gzip;
        char digest[OCI_DIGEST_STRLEN];
        char diff_id[OCI_DIGEST_STRLEN];
        size_t size;
} TestLayer;

static inline void layer_begin(TestLayer *l, const char *dir, const char *name, bool gzip) {
        snprintf(l->path, sizeof(l->path), "%s/%s", dir, name);
        l->gzip = gzip;
        l->a = archive_write_new();
        archive_write_set_format_pax_restricted(l->a);
        if (archive_write_open_filename(l->a, l->path) != ARCHIVE_OK)
                abort();
}

/* type: 'f' file, 'd' dir, 'l' symlink (data = target), 'h' hard link
 * (data = target path), 'c'/'b' device (rdev major/minor), 'p' fifo. */
static inline void layer_add(TestLayer *l, const char *path, char type, unsigned mode, unsigned uid, const char *data,
                             unsigned major, unsigned minor) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, path);
        archive_entry_set_uid(e, uid);
        archive_entry_set_gid(e, uid);
        archive_entry_set_mtime(e, 1700000000, 0);
        archive_entry_set_perm(e, mode);
        size_t len = 0;
        switch (type) {
        case 'f':
                archive_entry_set_filetype(e, AE_IFREG);
                len = data ? strlen(data) : 0;
                archive_entry_set_size(e, (la_int64_t) len);
                break;
        case 'd':
                archive_entry_set_filetype(e, AE_IFDIR);
                break;
        case 'l':
                archive_entry_set_filetype(e, AE_IFLNK);
                archive_entry_set_symlink(e, data);
                break;
        case 'h':
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_hardlink(e, data);
                archive_entry_set_size(e, 0);
                break;
        case 'c':
        case 'b':
                archive_entry_set_filetype(e, type == 'c' ? AE_IFCHR : AE_IFBLK);
                archive_entry_set_rdevmajor(e, major);
                archive_entry_set_rdevminor(e, minor);
                break;
        default:
                archive_entry_set_filetype(e, AE_IFIFO);
        }
        if (archive_write_header(l->a, e) != ARCHIVE_OK)
                abort();
        if (len && archive_write_data(l->a, data, len) != (la_ssize_t) len)
                abort();
        archive_entry_free(e);
}

static inline void file_digest(const char *path, char digest[OCI_DIGEST_STRLEN], size_t *ret_size) {
        char *buf = NULL;
        size_t len = 0;
        if (read_file_at(AT_FDCWD, path, 64 << 20, &buf, &len) < 0 || oci_digest_buffer(buf, len, digest) < 0)
                abort();
        *ret_size = len;
        free(buf);
}

/* Close the layer (gzip it when asked) and move it to
 * <layout>/blobs/sha256/<hex>. */
static inline void layer_end(TestLayer *l, const char *layout) {
        if (archive_write_close(l->a) != ARCHIVE_OK)
                abort();
        archive_write_free(l->a);
        file_digest(l->path, l->diff_id, &l->size);
        if (l->gzip) {
                char *argv[] = { (char *) "gzip", (char *) "-n", (char *) "-f", l->path, NULL };
                if (spawn_run_capture(argv, 30 * USEC_PER_SEC, 0, true, NULL) != 0)
                        abort();
                strcat(l->path, ".gz");
        }
        file_digest(l->path, l->digest, &l->size);
        char dst[1024];
        snprintf(dst, sizeof(dst), "%s/blobs/sha256/%s", layout, l->digest + 7);
        if (rename(l->path, dst) < 0)
                abort();
}

/* Store a text blob; returns its digest and size. */
static inline void blob_put(const char *layout, const char *text, char digest[OCI_DIGEST_STRLEN], size_t *ret_size) {
        if (oci_digest_buffer(text, strlen(text), digest) < 0)
                abort();
        char dst[1024];
        snprintf(dst, sizeof(dst), "%s/blobs/sha256/%s", layout, digest + 7);
        if (write_text(dst, text, 0644) < 0)
                abort();
        *ret_size = strlen(text);
}

static inline void layout_init(const char *layout) {
        char p[1024];
        snprintf(p, sizeof(p), "%s/blobs/sha256", layout);
        if (mkdir_p(p, 0755) < 0)
                abort();
        snprintf(p, sizeof(p), "%s/oci-layout", layout);
        const char *ol = "{\"imageLayoutVersion\":\"1.0.0\"}";
        if (write_text(p, ol, 0644) < 0)
                abort();
}

/* A manifest for the given layers (digest, size, gzip) and a config. */
static inline void image_put(const char *layout, const char *arch, const TestLayer *layers, size_t n,
                             char manifest[OCI_DIGEST_STRLEN], size_t *ret_msize) {
        char config[4096], cd[OCI_DIGEST_STRLEN], body[8192];
        size_t cs;
        int k = snprintf(config, sizeof(config),
                         "{\"architecture\":\"%s\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/bin:/bin\"],"
                         "\"Cmd\":[\"/bin/sh\"],\"WorkingDir\":\"/root\",\"Labels\":{\"x\":\"y\"}},"
                         "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[",
                         arch);
        for (size_t i = 0; i < n; i++)
                k += snprintf(config + k, sizeof(config) - k, "%s\"%s\"", i ? "," : "", layers[i].diff_id);
        snprintf(config + k, sizeof(config) - k, "]}}");
        blob_put(layout, config, cd, &cs);
        k = snprintf(body, sizeof(body),
                     "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                     "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
                     "\"size\":%zu},\"layers\":[",
                     cd, cs);
        for (size_t i = 0; i < n; i++)
                k += snprintf(body + k, sizeof(body) - k,
                              "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar%s\",\"digest\":\"%s\","
                              "\"size\":%zu}",
                              i ? "," : "", layers[i].gzip ? "+gzip" : "", layers[i].digest, layers[i].size);
        snprintf(body + k, sizeof(body) - k, "]}");
        blob_put(layout, body, manifest, ret_msize);
}

static inline void index_put(const char *layout, const char *text) {
        char p[1024];
        snprintf(p, sizeof(p), "%s/index.json", layout);
        if (write_text(p, text, 0644) < 0)
                abort();
}

/* Image archives: a tar.gz written member by member. */
static inline struct archive *tar_begin(const char *path) {
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        archive_write_add_filter_gzip(a);
        archive_write_set_filter_option(a, "gzip", "compression-level", "1");
        if (archive_write_open_filename(a, path) != ARCHIVE_OK)
                abort();
        return a;
}

/* A regular member: data, or size zero bytes when data is NULL. */
static inline void tar_add(struct archive *a, const char *name, const void *data, size_t size) {
        static const char zeros[65536];
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t) size);
        if (archive_write_header(a, e) != ARCHIVE_OK)
                abort();
        for (size_t done = 0; done < size;) {
                size_t n = data ? size - done : (size - done < sizeof(zeros) ? size - done : sizeof(zeros));
                if (archive_write_data(a, data ? (const char *) data + done : zeros, n) != (la_ssize_t) n)
                        abort();
                done += n;
        }
        archive_entry_free(e);
}

static inline void tar_add_symlink(struct archive *a, const char *name, const char *target) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_perm(e, 0777);
        archive_entry_set_symlink(e, target);
        if (archive_write_header(a, e) != ARCHIVE_OK)
                abort();
        archive_entry_free(e);
}

/* Add the file at dir/rel as the member rel. */
static inline void tar_add_file(struct archive *a, const char *dir, const char *rel) {
        char p[1200], *buf = NULL;
        size_t len;
        snprintf(p, sizeof(p), "%s/%s", dir, rel);
        if (read_file_at(AT_FDCWD, p, 64 << 20, &buf, &len) < 0)
                abort();
        tar_add(a, rel, buf, len);
        free(buf);
}

static inline void tar_end(struct archive *a) {
        if (archive_write_close(a) != ARCHIVE_OK)
                abort();
        archive_write_free(a);
}
