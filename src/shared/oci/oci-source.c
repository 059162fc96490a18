/* SPDX-License-Identifier: MIT */
#include "oci-source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "oci-archive.h"
#include "oci-digest.h"
#include "oci-limits.h"
#include "oci-ref.h"
#include "oci-registry.h"
#include "oci-tree.h"
#include "path-beneath.h"
#include "string-util.h"

#define INDEX_DEPTH_MAX 3

void oci_image_parts_done(OciImageParts *p) {
        safe_close(p->dirfd);
        free(p->manifest_digest);
        oci_image_config_done(&p->config);
        strv_free(p->layer_paths);
        strv_free(p->layer_digests);
        free(p->layer_sizes);
        strv_free(p->blobs);
        for (size_t i = 0; i < p->n_blobs; i++)
                safe_close(p->blob_fds[i]);
        free(p->blob_fds);
        free(p->blob_downloaded);
        if (p->staging_name) {
                int r = oci_rm_rf_at(p->staging_parent_fd, p->staging_name);
                if (r < 0)
                        log_debug("cannot remove staging directory %s: %s", p->staging_name, strerror(-r));
        }
        safe_close(p->staging_parent_fd);
        free(p->staging_name);
        *p = (OciImageParts){ .dirfd = -EBADF, .staging_parent_fd = -EBADF };
}

int oci_image_parts_layer_fd(const OciImageParts *p, size_t i) {
        return p->blob_fds && i + 1 < p->n_blobs ? p->blob_fds[i + 1] : -EBADF;
}

void oci_image_parts_publish(const OciImageParts *p, int cache_dirfd) {
        for (size_t i = 0; i < p->n_blobs; i++) {
                if (!p->blob_downloaded[i])
                        continue;
                int r = oci_cache_blob_publish(cache_dirfd, p->blob_fds[i], p->blobs[i]);
                if (r < 0)
                        log_debug("cannot keep blob %s in the cache: %s", p->blobs[i], strerror(-r));
        }
}

int oci_rm_rf_at(int parent_fd, const char *name) {
        if (unlinkat(parent_fd, name, 0) == 0)
                return 0;
        if (errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return -errno;
        int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        int r = 0;
        for (struct dirent *de; (de = readdir(d));) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                int k = oci_rm_rf_at(dirfd(d), de->d_name);
                if (k < 0 && r == 0)
                        r = k;
        }
        closedir(d);
        if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && r == 0)
                r = -errno;
        return r;
}

static int read_fd_all(int fd, size_t max, char **ret, size_t *ret_len) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        size_t len = (size_t) st.st_size;
        _cleanup_free_ char *buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t k = loop_read(fd, buf, len);
        if (k < 0)
                return (int) k;
        if ((size_t) k != len)
                return -EIO;
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int read_beneath(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open_beneath(dirfd, path, O_RDONLY | O_NOCTTY, 0);
        if (fd < 0)
                return error_setf(fd, "cannot open %s: %s", path, strerror(-fd));
        int r = read_fd_all(fd, max, ret, ret_len);
        if (r == -EFBIG)
                return error_setf(r, "%s is larger than %zu bytes", path, max);
        if (r < 0)
                return error_setf(r, "cannot read %s: %s", path, strerror(-r));
        return 0;
}

/* Where the documents of an image (index, manifests, configs) are read
 * from: a directory, or an archive's members kept in memory by its scan. */
typedef struct DocSource {
        int dirfd;
        OciArchive *archive;
} DocSource;

static int doc_read(const DocSource *src, const char *path, size_t max, char **ret, size_t *ret_len) {
        if (src->archive)
                return oci_archive_read_json(src->archive, path, max, ret, ret_len);
        return read_beneath(src->dirfd, path, max, ret, ret_len);
}

static bool doc_has(const DocSource *src, const char *path) {
        if (src->archive)
                return oci_archive_has(src->archive, path);
        struct stat st;
        return fstatat(src->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* A document blob (manifest, index, config) of an OCI layout, verified:
 * never more than its descriptor says, nor than OCI_JSON_MAX. */
static int read_blob(const DocSource *src, const OciDescriptor *d, const char *what, char **ret, size_t *ret_len) {
        if (d->size > OCI_JSON_MAX)
                return error_setf(-EFBIG, "the %s is %" PRIu64 " bytes, more than the %u a JSON document may have",
                                  what, d->size, OCI_JSON_MAX);
        _cleanup_free_ char *path = NULL, *buf = NULL;
        size_t len;
        if (asprintf(&path, "blobs/sha256/%s", oci_digest_hex(d->digest)) < 0)
                return -ENOMEM;
        int r = doc_read(src, path, (size_t) d->size, &buf, &len);
        if (r < 0)
                return r;
        char got[OCI_DIGEST_STRLEN];
        if ((r = oci_digest_buffer(buf, len, got)) < 0)
                return r;
        if (!streq(got, d->digest))
                return error_setf(-EBADMSG, "digest mismatch for blob %s: got %s", d->digest, got);
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int parts_alloc_layers(OciImageParts *p, size_t n) {
        p->layer_paths = calloc(n + 1, sizeof(char *));
        p->layer_digests = calloc(n + 1, sizeof(char *));
        p->layer_sizes = calloc(n + 1, sizeof(uint64_t));
        return p->layer_paths && p->layer_digests && p->layer_sizes ? 0 : -ENOMEM;
}

/* Layers and config named by a manifest, in blobs/sha256/ of dirfd. */
static int parts_from_manifest(OciImageParts *p, const OciManifest *m, const char *config, size_t config_len) {
        int r = oci_image_config_parse(config, config_len, &p->config);
        if (r < 0)
                return r;
        if ((r = parts_alloc_layers(p, m->n_layers)) < 0)
                return r;
        for (size_t i = 0; i < m->n_layers; i++) {
                if (asprintf(&p->layer_paths[i], "blobs/sha256/%s", oci_digest_hex(m->layers[i].digest)) < 0 ||
                    !(p->layer_digests[i] = strdup(m->layers[i].digest)))
                        return -ENOMEM;
                p->layer_sizes[i] = m->layers[i].size;
                p->n_layers++;
        }
        return 0;
}

static int layout_load(const OciImportOptions *o, const DocSource *src, OciImageParts *p) {
        _cleanup_free_ char *doc = NULL;
        size_t len;
        int r = doc_read(src, "index.json", OCI_JSON_MAX, &doc, &len);
        if (r < 0)
                return r;
        OciDescriptor d = {};
        for (unsigned depth = 0;; depth++) {
                OciDocumentKind kind = OCI_DOCUMENT_INDEX;
                if (depth > 0 && (r = oci_document_kind(doc, len, d.media_type, &kind)) < 0)
                        break;
                if (kind == OCI_DOCUMENT_MANIFEST)
                        break;
                if (depth >= INDEX_DEPTH_MAX) {
                        r = error_setf(-ELOOP, "image indexes nest too deeply");
                        break;
                }
                oci_descriptor_done(&d);
                if ((r = oci_index_select(doc, len, o->os, o->arch, &d)) < 0)
                        break;
                free(TAKE_PTR(doc));
                if ((r = read_blob(src, &d, "image manifest", &doc, &len)) < 0)
                        break;
        }
        OciManifest m = {};
        _cleanup_free_ char *config = NULL;
        size_t config_len = 0;
        if (r == 0)
                r = oci_manifest_parse(doc, len, &m);
        if (r == 0)
                r = read_blob(src, &m.config, "image config", &config, &config_len);
        if (r == 0)
                r = parts_from_manifest(p, &m, config, config_len);
        if (r == 0)
                p->manifest_digest = TAKE_PTR(d.digest);
        oci_manifest_done(&m);
        oci_descriptor_done(&d);
        return r;
}

/* docker save names layers "<id>/layer.tar", "<hex>.tar" or (Docker 25+)
 * "blobs/sha256/<hex>": the first two hold the uncompressed tar, whose
 * digest is the config's diff_id. */
static int docker_layer_digest(const char *path, const OciImageConfig *c, size_t i, char **ret) {
        const char *hex = startswith(path, "blobs/sha256/");
        char buf[OCI_DIGEST_STRLEN];
        if (hex && snprintf(buf, sizeof(buf), "sha256:%s", hex) > 0 && oci_digest_is_valid(buf))
                *ret = strdup(buf);
        else if (i < c->n_diff_ids)
                *ret = strdup(c->diff_ids[i]);
        else
                return error_setf(-EBADMSG, "docker archive: layer %s has no diff_id in the image config", path);
        return *ret ? 0 : -ENOMEM;
}

static int docker_load(const DocSource *src, OciImageParts *p) {
        _cleanup_free_ char *doc = NULL, *config = NULL;
        size_t len, config_len;
        int r = doc_read(src, "manifest.json", OCI_JSON_MAX, &doc, &len);
        if (r < 0)
                return r;
        DockerArchiveManifest m = {};
        if ((r = docker_archive_manifest_parse(doc, len, &m)) < 0)
                return r;
        r = doc_read(src, m.config_path, OCI_JSON_MAX, &config, &config_len);
        if (r == 0)
                r = oci_image_config_parse(config, config_len, &p->config);
        if (r == 0)
                r = parts_alloc_layers(p, m.n_layers);
        for (size_t i = 0; r == 0 && i < m.n_layers; i++) {
                r = docker_layer_digest(m.layer_paths[i], &p->config, i, &p->layer_digests[i]);
                if (r == 0 && !(p->layer_paths[i] = strdup(m.layer_paths[i])))
                        r = -ENOMEM;
                if (r == 0)
                        p->n_layers++;
        }
        docker_archive_manifest_done(&m);
        return r;
}

static int load_docs(const OciImportOptions *o, const DocSource *src, OciImageParts *p) {
        bool oci = doc_has(src, "index.json"), docker = doc_has(src, "manifest.json");
        if (o->kind == OCI_SOURCE_OCI_LAYOUT || (o->kind == OCI_SOURCE_AUTO && oci)) {
                if (!oci)
                        return error_setf(-EINVAL, "%s is not an OCI layout (no index.json)", o->source);
                return layout_load(o, src, p);
        }
        if (!docker)
                return error_setf(-EINVAL, "%s is neither an OCI layout nor a docker save archive", o->source);
        return docker_load(src, p);
}

static int staging_create(int cache_dirfd, OciImageParts *p) {
        int r = mkdirat_private(cache_dirfd, "tmp", 0700);
        if (r < 0)
                return error_setf(r, "cannot create the staging area: %s", strerror(-r));
        p->staging_parent_fd = open_dir_nofollow(cache_dirfd, "tmp");
        if (p->staging_parent_fd < 0)
                return error_setf(p->staging_parent_fd, "cannot open the staging area: %s",
                                  strerror(-p->staging_parent_fd));
        uint64_t rnd;
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                return -errno;
        if (asprintf(&p->staging_name, "import-%016llx", (unsigned long long) rnd) < 0) {
                p->staging_name = NULL;
                return -ENOMEM;
        }
        if (mkdirat(p->staging_parent_fd, p->staging_name, 0700) < 0) {
                r = -errno;
                free(TAKE_PTR(p->staging_name));
                return r;
        }
        p->dirfd = open_dir_nofollow(p->staging_parent_fd, p->staging_name);
        return p->dirfd < 0 ? p->dirfd : 0;
}

/* Point each layer at the member that holds it (through docker save's
 * symlinks) and mark it for extraction; a layout's layer must be exactly as
 * long as its descriptor says. */
static int archive_want_layers(OciArchive *a, OciImageParts *p) {
        for (size_t i = 0; i < p->n_layers; i++) {
                char *real = NULL;
                uint64_t size;
                int r = oci_archive_want(a, p->layer_paths[i], &real, &size);
                if (r < 0)
                        return r;
                free(p->layer_paths[i]);
                p->layer_paths[i] = real;
                if (p->layer_sizes[i] && size != p->layer_sizes[i])
                        return error_setf(-EBADMSG, "layer %s is %" PRIu64 " bytes, the manifest says %" PRIu64,
                                          p->layer_digests[i], size, p->layer_sizes[i]);
        }
        return 0;
}

/* Read the documents from the archive's scan, then unpack only the layers
 * they name into a private staging directory. */
static int archive_load(const OciImportOptions *o, int fd, OciImageParts *p) {
        _cleanup_(oci_archive_done) OciArchive a = { .fd = fd, .o = o, .max_bytes = oci_import_max(o) };
        int r = oci_archive_scan(&a);
        if (r < 0)
                return r;
        const DocSource src = { .dirfd = -EBADF, .archive = &a };
        if ((r = load_docs(o, &src, p)) < 0 || (r = archive_want_layers(&a, p)) < 0)
                return r;
        if ((r = staging_create(o->cache_dirfd, p)) < 0)
                return r;
        return oci_archive_extract(&a, p->dirfd);
}

typedef struct DownloadCtx {
        const OciImportOptions *o;
        uint64_t base, total;
} DownloadCtx;

static int download_progress(uint64_t done, void *userdata) {
        DownloadCtx *d = userdata;
        if (!d->o->progress)
                return 0;
        return d->o->progress(OCI_PHASE_DOWNLOAD, d->base + done, d->total, d->o->userdata);
}

/* Follow the reference through an index to the manifest for os/arch. */
static int registry_manifest(OciRegistry *reg, const OciRef *ref, const OciImportOptions *o, OciImageParts *p,
                             OciManifest *ret) {
        _cleanup_free_ char *ref_copy = strdup(oci_ref_reference(ref));
        if (!ref_copy)
                return -ENOMEM;
        char *reference = TAKE_PTR(ref_copy);
        uint64_t size = 0; /* a tag's manifest has no descriptor, so no size */
        int r = 0;
        for (unsigned depth = 0; r == 0; depth++) {
                _cleanup_free_ char *body = NULL, *ctype = NULL, *digest = NULL;
                size_t len;
                OciDocumentKind kind;
                r = oci_registry_get_manifest(reg, reference, size, &body, &len, &ctype, &digest);
                if (r == 0)
                        r = oci_document_kind(body, len, ctype, &kind);
                if (r < 0)
                        break;
                if (kind == OCI_DOCUMENT_MANIFEST) {
                        p->manifest_digest = TAKE_PTR(digest);
                        r = oci_manifest_parse(body, len, ret);
                        break;
                }
                OciDescriptor d = {};
                if (depth >= INDEX_DEPTH_MAX)
                        r = error_setf(-ELOOP, "image indexes nest too deeply");
                else if ((r = oci_index_select(body, len, o->os, o->arch, &d)) == 0) {
                        free(reference);
                        reference = TAKE_PTR(d.digest);
                        size = d.size;
                }
                oci_descriptor_done(&d);
        }
        free(reference);
        return r;
}

/* Checked before anything is downloaded: the config is a JSON document,
 * and the blobs (so any one of them) add up to no more than the limit. */
static int registry_check_sizes(const OciImportOptions *o, const OciManifest *m, uint64_t *ret_total) {
        uint64_t max = oci_import_max(o), total = 0;
        if (m->config.size > OCI_JSON_MAX)
                return error_setf(-EFBIG,
                                  "the image config is %" PRIu64 " bytes, more than the %u a JSON document may have",
                                  m->config.size, OCI_JSON_MAX);
        for (size_t i = 0; i <= m->n_layers; i++) {
                uint64_t size = i == 0 ? m->config.size : m->layers[i - 1].size;
                if (size > max - total)
                        return oci_limit_error(max, "the blobs of image %s add up to", o->source);
                total += size;
        }
        *ret_total = total;
        return 0;
}

/* The config and the layers into the cache, each held to its descriptor's size. */
static int registry_fetch_blobs(OciRegistry *reg, const OciImportOptions *o, const OciManifest *m, OciImageParts *p) {
        DownloadCtx d = { .o = o };
        int r = registry_check_sizes(o, m, &d.total);
        if (r < 0)
                return r;
        p->blobs = calloc(m->n_layers + 2, sizeof(char *));
        p->blob_fds = calloc(m->n_layers + 1, sizeof(int));
        p->blob_downloaded = calloc(m->n_layers + 1, sizeof(bool));
        if (!p->blobs || !p->blob_fds || !p->blob_downloaded)
                return -ENOMEM;
        for (size_t i = 0; i <= m->n_layers; i++) {
                const OciDescriptor *desc = i == 0 ? &m->config : &m->layers[i - 1];
                int fd = -EBADF;
                /* A blob the manifest names twice is downloaded once. */
                for (size_t k = 0; k < p->n_blobs && fd < 0; k++)
                        if (streq(p->blobs[k], desc->digest) && (fd = fcntl(p->blob_fds[k], F_DUPFD_CLOEXEC, 3)) < 0)
                                return -errno;
                if (fd < 0 && (r = oci_registry_fetch_blob(reg, o->cache_dirfd, desc->digest, desc->size,
                                                           download_progress, &d, &fd, &p->blob_downloaded[i])) < 0)
                        return r;
                p->blob_fds[i] = fd;
                p->n_blobs++;
                d.base += desc->size;
                if (!(p->blobs[i] = strdup(desc->digest)))
                        return -ENOMEM;
        }
        return 0;
}

static int registry_load(const OciImportOptions *o, OciImageParts *p) {
        OciRef ref = {};
        int r = oci_ref_parse(o->source, &ref);
        if (r < 0)
                return r;
        _cleanup_oci_registry_ OciRegistry *reg = NULL;
        OciManifest m = {};
        r = oci_registry_new(&ref, &reg);
        if (r == 0)
                r = registry_manifest(reg, &ref, o, p, &m);
        oci_ref_done(&ref);
        if (r == 0)
                r = registry_fetch_blobs(reg, o, &m, p);
        _cleanup_free_ char *config = NULL;
        size_t config_len = 0;
        if (r == 0)
                r = oci_cache_blob_dir(o->cache_dirfd, &p->dirfd);
        if (r == 0 && (r = read_fd_all(p->blob_fds[0], OCI_JSON_MAX, &config, &config_len)) < 0)
                r = error_setf(r, "cannot read the image config: %s", strerror(-r));
        if (r == 0)
                r = parts_from_manifest(p, &m, config, config_len);
        /* Layers are read from the cache directory itself: names are the hex. */
        for (size_t i = 0; r == 0 && i < p->n_layers; i++) {
                char *hex = strdup(oci_digest_hex(p->layer_digests[i]));
                if (!hex) {
                        r = -ENOMEM;
                        break;
                }
                free(p->layer_paths[i]);
                p->layer_paths[i] = hex;
        }
        oci_manifest_done(&m);
        return r;
}

int oci_source_open(const OciImportOptions *o, OciImageParts *ret) {
        OciImageParts p = { .dirfd = -EBADF, .staging_parent_fd = -EBADF };
        int r;
        _cleanup_close_ int fd = -EBADF;
        if (o->kind != OCI_SOURCE_REGISTRY)
                fd = open(o->source, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); /* a FIFO: no wait */
        struct stat st = {};
        if (fd >= 0 && fstat(fd, &st) < 0)
                return -errno;
        if (o->kind == OCI_SOURCE_REGISTRY || (o->kind == OCI_SOURCE_AUTO && fd < 0 && errno == ENOENT))
                r = registry_load(o, &p);
        else if (fd < 0)
                return error_setf(-errno, "cannot open %s: %m", o->source);
        else if (S_ISDIR(st.st_mode)) {
                p.dirfd = TAKE_FD(fd);
                r = load_docs(o, &(const DocSource){ .dirfd = p.dirfd }, &p);
        } else if (S_ISREG(st.st_mode))
                r = archive_load(o, fd, &p);
        else
                return error_setf(-EBADFD, "%s is neither a directory nor a regular file", o->source);
        if (r < 0) {
                oci_image_parts_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}
