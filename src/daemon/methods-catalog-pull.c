/* SPDX-License-Identifier: MIT */
/* catalog.list, image.pull and kernel.pull: what the [[catalog]]s offer, and
 * a bundle fetched, verified while it streams, unpacked into a staging
 * directory (images/.pull-*, which the start-up sweep removes if we die) and
 * registered in one transaction. On any failure nothing is registered and
 * the staging directory goes. Workers: downloads take minutes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "catalog-doc.h"
#include "catalog-fetch.h"
#include "catalog-source.h"
#include "daemon.h"
#include "error.h"
#include "file-tree.h"
#include "free-space.h"
#include "fs-util.h"
#include "image-dir.h"
#include "jsonrpc.h"
#include "kernel-store.h"
#include "log.h"
#include "methods.h"
#include "operation.h"
#include "store.h"
#include "string-util.h"
#include "undo.h"

typedef struct PullArgs {
        const char *name;   /* NAME[:VERSION] offered by a catalog, or ... */
        const char *source; /* ... a bundle file or URL, with ... */
        const char *sha256; /* ... its sha256 */
        const char *kind;   /* catalog.list: "image" or "kernel"; NULL: both */
        Daemon *d;
        Progress out; /* where notes go: the RPC call's progress, or a vm.create's */
        usec_t last_note;
        char last_stage[16];
} PullArgs;

/* Byte counters come fast: at most ten notifications a second, but every
 * new stage (a "resume" among "download"s) at once. */
static void note(PullArgs *a, const char *stage, const char *msg, uint64_t done, uint64_t total) {
        usec_t now = now_monotonic();
        if (total && done < total && now - a->last_note < 100 * USEC_PER_MSEC && streq_ptr(stage, a->last_stage))
                return;
        a->last_note = now;
        snprintf(a->last_stage, sizeof(a->last_stage), "%s", stage);
        progress_report(&a->out, stage, msg, done, total);
}

static void rpc_progress(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata) {
        rpc_call_progress(userdata, stage, detail, done, total);
}

static void pull_progress(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata) {
        note(userdata, stage, detail, done, total);
}

static CatalogSource source_of(const ConfigCatalog *c) {
        return (CatalogSource){ .url = c->url, .public_key = c->public_key, .insecure = c->insecure };
}

/* ---- finding a bundle in the catalogs ---- */

typedef struct Offer {
        json_t *entry; /* owned reference */
        char *url;     /* the bundle's, absolute */
} Offer;

static void offer_done(Offer *o) {
        json_decref(o->entry);
        free(o->url);
}

/* The first catalog (in config order) that offers kind name[:version]. A
 * catalog that fails to load or verify is skipped for the next; its error
 * is the answer when no catalog offers it. */
static int catalogs_find(PullArgs *a, const char *kind, const char *name, const char *version, Offer *ret) {
        const BangerConfig *c = &a->d->config;
        char first[512] = "";
        int first_r = 0;
        if (c->n_catalogs == 0)
                return error_setf(-ENOENT, "no catalog is configured: add a [[catalog]] to config.toml "
                                           "(docs/catalogs.md)");
        for (size_t i = 0; i < c->n_catalogs; i++) {
                CatalogSource src = source_of(&c->catalogs[i]);
                json_t *cat = NULL;
                note(a, "catalog", src.url, 0, 0);
                int r = catalog_source_load(&src, &cat, NULL);
                if (r < 0 && first_r == 0) {
                        first_r = r;
                        snprintf(first, sizeof(first), "%s", error_last_message() ?: strerror(-r));
                }
                json_t *e = r < 0 ? NULL : catalog_find(cat, kind, name, version);
                if (e) {
                        ret->entry = json_incref(e);
                        r = catalog_resolve_url(src.url, json_string_value(json_object_get(e, "url")), &ret->url);
                }
                json_decref(cat);
                if (e)
                        return r;
        }
        if (first_r < 0)
                return error_setf(first_r, "%s", first);
        return error_setf(-ENOENT, "no catalog offers %s %s%s%s", streq(kind, "images") ? "image" : "kernel", name,
                          version ? ":" : "", version ?: "");
}

/* ---- the staging directory ---- */

typedef struct Staging {
        int images_fd, fd, root_fd;
        char name[32];
        bool created;
        char *root_path; /* absolute, for kernel_store_import() */
} Staging;

#define STAGING_NULL ((Staging){ .images_fd = -EBADF, .fd = -EBADF, .root_fd = -EBADF })

static void staging_done(Staging *st) {
        if (st->created && rm_rf_at(st->images_fd, st->name) < 0)
                log_warning("cannot remove the staging directory images/%s", st->name);
        safe_close(st->root_fd);
        safe_close(st->fd);
        safe_close(st->images_fd);
        free(st->root_path);
}

static int staging_create(Daemon *d, Staging *st) {
        uint32_t salt;
        int r = mkdirat_private(d->state_dir_fd, "images", 0700);
        if (r < 0 || (st->images_fd = open_dir_nofollow(d->state_dir_fd, "images")) < 0)
                return r < 0 ? r : st->images_fd;
        if (getrandom(&salt, sizeof(salt), 0) != sizeof(salt))
                return -EIO;
        snprintf(st->name, sizeof(st->name), ".pull-%08x", salt);
        if (mkdirat(st->images_fd, st->name, 0700) < 0)
                return error_setf(-errno, "cannot create a staging directory in %s/images: %m", d->paths.state_dir);
        st->created = true;
        if ((st->fd = open_dir_nofollow(st->images_fd, st->name)) < 0)
                return st->fd;
        if (mkdirat(st->fd, "root", 0700) < 0 || (st->root_fd = open_dir_nofollow(st->fd, "root")) < 0)
                return -errno;
        if (asprintf(&st->root_path, "%s/images/%s/root", d->paths.state_dir, st->name) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- fetching and unpacking ---- */

static bool is_url(const char *s) {
        return startswith(s, "http://") || startswith(s, "https://") || startswith(s, "file://");
}

static int open_local_bundle(const char *path, const char *sha256) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;
        if (fd < 0)
                return error_setf(-errno, "cannot open %s: %m", path);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return error_setf(-EINVAL, "%s is not a bundle file", path);
        char got[SHA256_HEX_LEN + 1];
        int r = sha256_fd(fd, got, NULL);
        if (r < 0)
                return error_setf(r, "cannot read %s: %s", path, strerror(-r));
        if (!streq(got, sha256))
                return error_setf(-EBADMSG, "%s does not match the sha256 given: refused", path);
        return TAKE_FD(fd);
}

/* A write that found the disk full names the disk; staging_done() then
 * removes what was written. */
static int disk_full(PullArgs *a, int r) {
        if (r != -ENOSPC && r != -EDQUOT)
                return r;
        return error_setf(r,
                          "the disk of %s/images is full: the pull stopped and keeps nothing; free some space there "
                          "and pull again",
                          a->d->paths.state_dir);
}

/* Refused before a byte is written when what is known not to fit. */
static int check_space(PullArgs *a, Staging *st, uint64_t need, const char *what) {
        _cleanup_free_ char *w = NULL;
        if (asprintf(&w, "%s on the disk of %s/images", what, a->d->paths.state_dir) < 0)
                return -ENOMEM;
        return free_space_check(st->fd, need, w);
}

static bool pull_cancelled(void *userdata) {
        return operation_cancelled(operation_current());
}

/* The bundle at url (or a local path when size is 0 and it is no URL),
 * verified, open for reading. */
static int fetch_bundle(PullArgs *a, Staging *st, const char *url, uint64_t size, const char *sha256) {
        if (!is_url(url))
                return open_local_bundle(url, sha256);
        int r = size ? check_space(a, st, size, "the bundle's download") : 0;
        if (r < 0)
                return r;
        _cleanup_close_ int fd =
                openat(st->fd, "bundle.tar.zst", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        CatalogDownload dl = { .url = url,
                               .fd = fd,
                               .size = size,
                               .max = a->d->config.image_import_max,
                               .sha256 = sha256,
                               .progress = { pull_progress, a },
                               .cancelled = pull_cancelled };
        r = catalog_download(&dl);
        if (r < 0)
                return disk_full(a, r);
        if (dl.resumed > 0) {
                char msg[64];
                snprintf(msg, sizeof(msg), "resumed %u time(s) with a Range request", dl.resumed);
                note(a, "download", msg, dl.done, dl.done);
        }
        return TAKE_FD(fd);
}

/* Unpack and check that the bundle is what was asked for. */
static int unpack_bundle(PullArgs *a, Staging *st, int fd, const char *kind, json_t *want, json_t **ret) {
        json_t *m = NULL;
        int r = bundle_read_manifest(fd, &m);
        if (r >= 0)
                r = check_space(a, st, bundle_manifest_unpacked_bytes(m), "the unpacked bundle");
        json_decref(m);
        m = NULL;
        if (r < 0)
                return r;
        r = disk_full(a, bundle_unpack(fd, st->root_fd, a->d->config.image_import_max, &(Progress){ pull_progress, a },
                                       operation_check, &m));
        if (r < 0)
                return r;
        const char *mkind = json_string_value(json_object_get(m, "kind"));
        if (!streq_ptr(mkind, kind))
                r = error_setf(-EBADMSG, "the bundle holds %s %s: pull it with banger %s pull", mkind,
                               json_string_value(json_object_get(m, "name")), mkind);
        else if (want && (!json_equal(json_object_get(m, "name"), json_object_get(want, "name")) ||
                          !json_equal(json_object_get(m, "version"), json_object_get(want, "version"))))
                r = error_setf(-EBADMSG, "the bundle is not the %s %s the catalog lists: refused", kind,
                               json_string_value(json_object_get(want, "name")));
        if (r < 0) {
                json_decref(m);
                return r;
        }
        *ret = m;
        return 0;
}

/* ---- registering ---- */

static json_t *manifest_file(json_t *m, const char *path) {
        size_t i;
        json_t *f;
        json_array_foreach (json_object_get(m, "files"), i, f)
                if (streq_ptr(json_string_value(json_object_get(f, "path")), path))
                        return f;
        return NULL;
}

static int move_in(Staging *st, int idfd, const char *file, UndoStack *undo) {
        if (renameat(st->root_fd, file, idfd, file) < 0)
                return error_setf(-errno, "cannot move the bundle's %s into place: %m", file);
        return undo_push_unlink(undo, idfd, file);
}

static int record_image(PullArgs *a, Store *s, Staging *st, json_t *m, const char *source, KernelRecord *k,
                        bool new_kernel, json_t **ret) {
        Daemon *d = a->d;
        const char *name = json_string_value(json_object_get(m, "name"));
        json_t *rootfs = manifest_file(m, "rootfs.ext4");
        bool seed = manifest_file(m, "work-seed.ext4") != NULL;
        if (!rootfs)
                return error_setf(-EBADMSG, "the image bundle holds no rootfs.ext4");
        _cleanup_undo_ UndoStack undo = UNDO_STACK_INIT;
        _cleanup_close_ int idfd = image_dir_create(d, name, &undo);
        if (idfd < 0)
                return idfd;
        int r = move_in(st, idfd, "rootfs.ext4", &undo);
        if (r >= 0 && seed)
                r = move_in(st, idfd, "work-seed.ext4", &undo);
        _cleanup_free_ char *rootfs_path = NULL, *seed_path = NULL;
        char id[STORE_ID_GENERATED_LEN + 1];
        if (r < 0 || (r = store_id_generate(id)) < 0)
                return r;
        if (asprintf(&rootfs_path, "%s/images/%s/rootfs.ext4", d->paths.state_dir, name) < 0 ||
            (seed && asprintf(&seed_path, "%s/images/%s/work-seed.ext4", d->paths.state_dir, name) < 0))
                return -ENOMEM;
        ImageRecord img = { .id = id,
                            .name = (char *) name,
                            .kernel_id = k->id,
                            .rootfs_path = rootfs_path,
                            .work_seed_path = seed_path,
                            .managed = true,
                            .size = (uint64_t) json_integer_value(json_object_get(rootfs, "size")),
                            .sha256 = (char *) json_string_value(json_object_get(rootfs, "sha256")),
                            .source = (char *) source };
        note(a, "register", name, 0, 0);
        r = store_image_insert_with_kernel(s, new_kernel ? k : NULL, &img);
        if (r == -EEXIST)
                return error_setf(r, "an image or kernel named like the bundle's is already here");
        if (r < 0)
                return r;
        undo_commit(&undo);
        _cleanup_(image_record_done) ImageRecord got = {};
        r = store_image_get_by_id(s, id, &got);
        *ret = r < 0 ? json_null() : image_to_json(s, &got);
        return 0;
}

/* The image's kernel: the one here by that name, else the bundle's own,
 * imported without a row (recorded with the image). */
static int image_kernel(PullArgs *a, Store *s, Staging *st, json_t *m, KernelRecord *k, bool *ret_new) {
        Daemon *d = a->d;
        const char *kname = json_string_value(json_object_get(json_object_get(m, "kernel"), "name"));
        int r = store_kernel_get_by_name(s, kname, k);
        *ret_new = false;
        if (r != -ENOENT)
                return r;
        note(a, "kernel", kname, 0, 0);
        _cleanup_free_ char *from = path_join(st->root_path, "kernel");
        KernelImportOptions o = { .name = kname, .from = from, .progress = { pull_progress, a }, .unrecorded = true };
        if (!from)
                return -ENOMEM;
        r = kernel_store_import(s, d->paths.state_dir, &o, k);
        *ret_new = r >= 0;
        return r;
}

static int register_image(PullArgs *a, Store *s, Staging *st, json_t *m, const char *source, json_t **ret) {
        _cleanup_(image_record_done) ImageRecord existing = {};
        const char *name = json_string_value(json_object_get(m, "name"));
        if (store_image_get_by_name(s, name, &existing) >= 0)
                return error_setf(-EEXIST, "an image named '%s' already exists", name);
        _cleanup_(kernel_record_done) KernelRecord k = {};
        bool new_kernel = false;
        int r = image_kernel(a, s, st, m, &k, &new_kernel);
        if (r >= 0)
                r = record_image(a, s, st, m, source, &k, new_kernel, ret);
        if (r < 0 && new_kernel)
                (void) kernel_store_remove_files(a->d->paths.state_dir, k.name);
        return r;
}

static int register_kernel(PullArgs *a, Store *s, Staging *st, json_t *m, json_t **ret) {
        Daemon *d = a->d;
        _cleanup_free_ char *from = path_join(st->root_path, "kernel");
        KernelImportOptions o = { .name = json_string_value(json_object_get(m, "name")),
                                  .from = from,
                                  .progress = { pull_progress, a } };
        _cleanup_(kernel_record_done) KernelRecord k = {};
        int r = from ? kernel_store_import(s, d->paths.state_dir, &o, &k) : -ENOMEM;
        if (r >= 0)
                *ret = kernel_record_to_json(&k);
        return r;
}

/* ---- image.pull, kernel.pull ---- */

static const RpcParam pull_params[] = {
        { "name", RPC_PARAM_STRING, RPC_ARG(PullArgs, name), .what = "NAME or NAME:VERSION" },
        { "source", RPC_PARAM_STRING, RPC_ARG(PullArgs, source), .what = "a bundle file or URL" },
        { "sha256", RPC_PARAM_STRING, RPC_ARG(PullArgs, sha256), .what = "64 lowercase hex digits" },
        {},
};

static int pull_check(Daemon *d, RpcCall *call, void *args) {
        PullArgs *a = args;
        const char *why = NULL;
        if (!a->name == !a->source)
                why = "give either \"name\" or \"source\"";
        else if (a->source && (!a->sha256 || strlen(a->sha256) != SHA256_HEX_LEN ||
                               strspn(a->sha256, "0123456789abcdef") != SHA256_HEX_LEN))
                why = "\"sha256\" must be 64 lowercase hex digits with \"source\"";
        else if (a->source && (is_url(a->source) ? !catalog_url_is_valid(a->source) : a->source[0] != '/'))
                why = "\"source\" must be an absolute path or an http://, https:// or file:// URL";
        if (!why)
                return 0;
        rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "%s", why);
        return -EINVAL;
}

static int pull(Store *s, PullArgs *a, const char *kind, json_t **ret) {
        Daemon *d = a->d;
        _cleanup_free_ char *name = NULL, *version = NULL;
        _cleanup_(offer_done) Offer offer = {};
        bool image = streq(kind, "image");
        int r = 0;
        if (a->name && (r = catalog_ref_parse(a->name, &name, &version)) >= 0) {
                _cleanup_(image_record_done) ImageRecord img = {};
                _cleanup_(kernel_record_done) KernelRecord k = {};
                if (image ? store_image_get_by_name(s, name, &img) >= 0 : store_kernel_get_by_name(s, name, &k) >= 0)
                        return error_setf(-EEXIST, "%s %s is already here (banger %s rm it first)", kind, name, kind);
                r = catalogs_find(a, image ? "images" : "kernels", name, version, &offer);
        }
        if (r >= 0)
                r = operation_check();
        if (r < 0)
                return r;
        _cleanup_(staging_done) Staging st = STAGING_NULL;
        if ((r = staging_create(d, &st)) < 0)
                return r;
        const char *src = offer.url ?: a->source;
        _cleanup_close_ int fd =
                fetch_bundle(a, &st, src, (uint64_t) json_integer_value(json_object_get(offer.entry, "size")),
                             json_string_value(json_object_get(offer.entry, "sha256")) ?: a->sha256);
        if (fd < 0)
                return fd;
        json_t *m = NULL;
        if ((r = operation_check()) < 0) /* a cancel during the download's last chunk */
                return r;
        r = unpack_bundle(a, &st, fd, kind, offer.entry, &m);
        if (r >= 0)
                r = operation_check(); /* the last point: registering is not cut short */
        if (r >= 0)
                r = image ? register_image(a, s, &st, m, src, ret) : register_kernel(a, s, &st, m, ret);
        json_decref(m);
        return r;
}

static int work_pull(RpcCall *call, Store *s, PullArgs *a, const char *kind, json_t **ret) {
        a->d = rpc_call_daemon(call);
        a->out = (Progress){ rpc_progress, call };
        return pull(s, a, kind, ret);
}

static int work_image_pull(RpcCall *call, Store *s, void *args, json_t **ret) {
        return work_pull(call, s, args, "image", ret);
}

static int work_kernel_pull(RpcCall *call, Store *s, void *args, json_t **ret) {
        return work_pull(call, s, args, "kernel", ret);
}

int catalog_pull_image(Daemon *d, Store *s, const char *name, const Progress *progress) {
        if (d->config.n_catalogs == 0)
                return -ENOENT;
        PullArgs a = { .name = name, .d = d, .out = *progress };
        json_t *res = NULL;
        int r = pull(s, &a, "image", &res);
        json_decref(res);
        return r;
}

/* ---- catalog.list ---- */

static const RpcParam list_params[] = {
        { "kind", RPC_PARAM_STRING, RPC_ARG(PullArgs, kind), .what = "\"image\" or \"kernel\"" },
        {},
};

static bool is_here(Store *s, bool image, const char *name) {
        _cleanup_(image_record_done) ImageRecord img = {};
        _cleanup_(kernel_record_done) KernelRecord k = {};
        return image ? store_image_get_by_name(s, name, &img) >= 0 : store_kernel_get_by_name(s, name, &k) >= 0;
}

static void list_entries(Store *s, const char *catalog_url, json_t *cat, bool image, json_t *out) {
        size_t i;
        json_t *e;
        json_array_foreach (json_object_get(cat, image ? "images" : "kernels"), i, e) {
                _cleanup_free_ char *url = NULL;
                if (catalog_resolve_url(catalog_url, json_string_value(json_object_get(e, "url")), &url) < 0)
                        continue;
                json_t *o = json_deep_copy(e);
                json_object_set_new(o, "url", json_string(url));
                json_object_set_new(o, "catalog", json_string(catalog_url));
                json_object_set_new(o, "here",
                                    json_boolean(is_here(s, image, json_string_value(json_object_get(e, "name")))));
                json_array_append_new(out, o);
        }
}

static int work_catalog_list(RpcCall *call, Store *s, void *args, json_t **ret) {
        PullArgs *a = args;
        const BangerConfig *c = &rpc_call_daemon(call)->config;
        json_t *res = json_pack("{s:[], s:[], s:[]}", "images", "kernels", "catalogs");
        if (!res)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_catalogs; i++) {
                CatalogSource src = source_of(&c->catalogs[i]);
                json_t *cat = NULL;
                bool verified = false;
                error_clear();
                int r = catalog_source_load(&src, &cat, &verified);
                json_array_append_new(json_object_get(res, "catalogs"),
                                      json_pack("{s:s, s:b, s:b, s:s*}", "url", src.url, "ok", r >= 0, "verified",
                                                verified, "error",
                                                r < 0 ? error_last_message() ?: strerror(-r) : NULL));
                if (r < 0)
                        continue;
                if (!a->kind || streq(a->kind, "image"))
                        list_entries(s, src.url, cat, true, json_object_get(res, "images"));
                if (!a->kind || streq(a->kind, "kernel"))
                        list_entries(s, src.url, cat, false, json_object_get(res, "kernels"));
                json_decref(cat);
        }
        *ret = res;
        return 0;
}

const RpcMethod catalog_pull_methods[] = {
        { "catalog.list", list_params, sizeof(PullArgs), .work = work_catalog_list },
        { "image.pull", pull_params, sizeof(PullArgs), NULL, pull_check, .work = work_image_pull, .operation = true,
          .operation_target = "name source", .cancellable = true },
        { "kernel.pull", pull_params, sizeof(PullArgs), NULL, pull_check, .work = work_kernel_pull, .operation = true,
          .operation_target = "name source", .cancellable = true },
        {},
};
