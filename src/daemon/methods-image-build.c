/* SPDX-License-Identifier: MIT */
/* image.import (OCI/Docker) and image.build (debootstrap): long work in
 * workers, with progress notifications. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "banger-build.h"
#include "daemon.h"
#include "debootstrap-image.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "jsonrpc.h"
#include "kernel-store.h"
#include "log.h"
#include "oci-import.h"
#include "paths.h"
#include "spawn.h"
#include "string-util.h"

/* Imports read the blob cache, a prune rewrites it: never both at once. */
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;

typedef struct BuildJob {
        Daemon *d;
        RpcCall *call;
        char *name, *source, *kernel, *suite, *mirror;
        usec_t last_note;
} BuildJob;

static void build_job_free(void *p) {
        BuildJob *j = p;
        if (!j)
                return;
        free(j->name);
        free(j->source);
        free(j->kernel);
        free(j->suite);
        free(j->mirror);
        free(j);
}

/* banger-agent: next to bangerd, in the build tree, or installed. */
char *daemon_find_agent(void) {
        static const char *const rel[] = { "banger-agent", "../agent/banger-agent", "../libexec/banger/banger-agent" };
        char *p = find_program_beside_self(rel, ELEMENTSOF(rel));
        if (p)
                return p;
        p = path_join(BANGER_LIBEXECDIR, "banger/banger-agent");
        if (p && access(p, X_OK) < 0) {
                free(p);
                p = NULL;
        }
        return p;
}

static void note(BuildJob *j, const char *stage, const char *msg, uint64_t done, uint64_t total) {
        /* Byte counters come fast: at most ten notifications a second. */
        usec_t now = now_monotonic();
        if (total && done < total && now - j->last_note < 100 * USEC_PER_MSEC)
                return;
        j->last_note = now;
        rpc_call_notify(j->call, "progress",
                        json_pack("{s:s, s:s, s:I, s:I}", "stage", stage, "message", msg ? msg : "", "bytes",
                                  (json_int_t) done, "total", (json_int_t) total));
}

static int oci_progress(OciProgressPhase phase, uint64_t done, uint64_t total, void *userdata) {
        static const char *const names[] = { "download", "unpack", "layers", "write" };
        note(userdata, names[phase], NULL, done, total);
        return 0;
}

static void build_progress(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata) {
        note(userdata, stage, detail, done, total);
}

static json_t *image_json(Store *s, const char *id) {
        ImageRecord img = {};
        if (store_image_get_by_id(s, id, &img) < 0)
                return json_null();
        char ts[40];
        json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:I, s:s?, s:s}", "id", img.id, "name", img.name, "rootfs",
                              img.rootfs_path, "managed", img.managed, "size", (json_int_t) img.size, "source",
                              img.source, "created_at", format_timestamp(ts, sizeof(ts), img.created_at) ? ts : "");
        image_record_done(&img);
        return j;
}

/* The kernel an imported image boots: the one named, else the default
 * image's, else the newest imported. */
static int pick_kernel(Daemon *d, Store *s, const char *name, KernelRecord *ret) {
        if (name)
                return kernel_store_lookup(s, name, ret);
        ImageRecord def = {};
        const char *dn = config_vm_image(&d->config);
        if (dn && store_image_get_by_name(s, dn, &def) >= 0 && def.kernel_id) {
                int r = store_kernel_get_by_id(s, def.kernel_id, ret);
                image_record_done(&def);
                return r;
        }
        image_record_done(&def);
        KernelRecord *list = NULL;
        size_t n = 0;
        int r = store_kernel_list(s, &list, &n);
        if (r >= 0 && n == 0)
                r = error_setf(-ENOENT, "no kernel to pair the image with: import one first (banger kernel import)");
        if (r >= 0) {
                *ret = list[n - 1];
                list[n - 1] = (KernelRecord){};
        }
        kernel_record_array_free(list, n);
        return r;
}

static int work_import(RpcCall *call, void *userdata, json_t **ret) {
        BuildJob *j = userdata;
        j->call = call;
        Daemon *d = j->d;
        Store *s = NULL;
        int r = store_open(d->paths.db_path, STORE_OPEN_NO_MIGRATE, &s);
        if (r < 0)
                return r;
        KernelRecord k = {};
        _cleanup_free_ char *agent = daemon_find_agent();
        _cleanup_free_ char *imgdir = NULL, *cache = path_join(d->paths.cache_dir, "oci"), *images = NULL,
                            *rootfs = NULL;
        _cleanup_close_ int cfd = -EBADF, ifd = -EBADF, idfd = -EBADF;
        if (asprintf(&imgdir, "%s/images/%s", d->paths.state_dir, j->name) < 0 || !cache) {
                r = -ENOMEM;
                goto out;
        }
        r = pick_kernel(d, s, j->kernel, &k);
        if (r < 0)
                goto out;
        images = path_join(d->paths.state_dir, "images");
        if ((r = paths_ensure_private_dir(cache, &cfd)) < 0 || (r = paths_ensure_private_dir(images, &ifd)) < 0)
                goto out;
        r = mkdirat_private(ifd, j->name, 0700);
        if (r == 0)
                r = error_setf(-EEXIST, "%s already exists", imgdir);
        if (r < 0)
                goto out;
        idfd = open_dir_nofollow(ifd, j->name);
        if (idfd < 0) {
                r = idfd;
                goto rmdir;
        }
        OciImportOptions o = { .source = j->source, .kind = OCI_SOURCE_AUTO, .cache_dirfd = cfd, .out_dirfd = idfd,
                               .out_name = "rootfs.ext4", .agent_path = agent, .max_bytes = d->config.image_import_max,
                               .progress = oci_progress, .userdata = j };
        OciImportResult res = {};
        /* Held until blobs.json names this image's blobs: a prune in between
         * would take them. */
        pthread_rwlock_rdlock(&cache_lock);
        r = oci_import(&o, &res);
        if (r < 0)
                pthread_rwlock_unlock(&cache_lock);
        if (r < 0)
                goto rmdir;
        char id[STORE_ID_GENERATED_LEN + 1];
        rootfs = path_join(imgdir, "rootfs.ext4");
        r = rootfs ? store_id_generate(id) : -ENOMEM;
        ImageRecord img = { .id = id, .name = j->name, .kernel_id = k.id, .rootfs_path = rootfs, .managed = true,
                            .size = res.image_size, .source = j->source };
        if (r >= 0)
                r = store_image_insert(s, &img);
        if (r >= 0) {
                /* The cached blobs this image came from, for image.cache_prune. */
                json_t *blobs = json_array();
                for (char **b = res.blobs; b && *b; b++)
                        json_array_append_new(blobs, json_string(*b));
                _cleanup_free_ char *text = json_dumps(blobs, JSON_COMPACT);
                json_decref(blobs);
                if (text)
                        (void) write_file_atomic_at(idfd, "blobs.json", text, strlen(text), 0600);
        }
        pthread_rwlock_unlock(&cache_lock);
        oci_import_result_done(&res);
        if (r < 0) {
                (void) unlinkat(idfd, "rootfs.ext4", 0);
                (void) unlinkat(idfd, "blobs.json", 0);
                goto rmdir;
        }
        *ret = image_json(s, id);
        goto out;
rmdir:
        (void) unlinkat(ifd, j->name, AT_REMOVEDIR);
out:
        kernel_record_done(&k);
        store_close(s);
        return r;
}

static int want(RpcCall *call, json_t *params, const char *key, bool required, bool name, char **ret) {
        json_t *v = json_object_get(params, key);
        if (!v && !required)
                return 0;
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4096 ||
            (name && !name_is_valid(json_string_value(v)))) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"%s\" must be %s", key,
                                     name ? "a name: [a-z0-9][a-z0-9-]{0,62}" : "a non-empty string");
                return -EINVAL;
        }
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

static int method_image_import(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "name", "source", "kernel", NULL };
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        BuildJob *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->d = d;
        if (want(call, params, "name", true, true, &j->name) < 0 || want(call, params, "source", true, false, &j->source) < 0 ||
            want(call, params, "kernel", false, true, &j->kernel) < 0) {
                build_job_free(j);
                return 0;
        }
        return rpc_call_defer(call, work_import, j, build_job_free);
}

static int work_build(RpcCall *call, void *userdata, json_t **ret) {
        BuildJob *j = userdata;
        j->call = call;
        Daemon *d = j->d;
        Store *s = NULL;
        int r = store_open(d->paths.db_path, STORE_OPEN_NO_MIGRATE, &s);
        if (r < 0)
                return r;
        _cleanup_free_ char *agent = daemon_find_agent();
        _cleanup_free_ char *cache = path_join(d->paths.cache_dir, "debs");
        if (!agent) {
                store_close(s);
                return error_setf(-ENOENT, "cannot find banger-agent next to bangerd or in %s/banger", BANGER_LIBEXECDIR);
        }
        int cfd = -EBADF;
        if (cache && paths_ensure_private_dir(cache, &cfd) >= 0)
                safe_close(cfd);
        DebootstrapImageOptions o = { .name = j->name, .suite = j->suite, .mirror = j->mirror, .agent = agent,
                                      .cache_dir = cache, .progress = { build_progress, j } };
        ImageRecord img = {};
        r = debootstrap_image_build(s, d->paths.state_dir, &o, &img);
        if (r >= 0)
                *ret = image_json(s, img.id);
        image_record_done(&img);
        store_close(s);
        return r;
}

static int method_image_build(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "name", "suite", "mirror", NULL };
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        BuildJob *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->d = d;
        if (want(call, params, "name", true, true, &j->name) < 0 || want(call, params, "suite", false, false, &j->suite) < 0 ||
            want(call, params, "mirror", false, false, &j->mirror) < 0) {
                build_job_free(j);
                return 0;
        }
        if (!j->suite)
                j->suite = strdup(d->config.debootstrap_suite);
        if (!j->mirror)
                j->mirror = strdup(d->config.debootstrap_mirror);
        if (!j->suite || !debootstrap_suite_is_valid(j->suite)) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"suite\" must be a Debian suite name");
                build_job_free(j);
                return 0;
        }
        if (!startswith(j->mirror, "http://") && !startswith(j->mirror, "https://")) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"mirror\" must be an http(s) URL");
                build_job_free(j);
                return 0;
        }
        return rpc_call_defer(call, work_build, j, build_job_free);
}

/* At start: image directories no row names are what an interrupted import
 * or build left (a row is only added once the files are complete). */
void daemon_sweep_images(Daemon *d) {
        _cleanup_free_ char *images = path_join(d->paths.state_dir, "images");
        _cleanup_close_ int ifd = images ? open_dir_nofollow(AT_FDCWD, images) : -EBADF;
        DIR *dir = ifd >= 0 ? fdopendir(fcntl(ifd, F_DUPFD_CLOEXEC, 3)) : NULL;
        if (!dir)
                return;
        rewinddir(dir);
        for (struct dirent *de; (de = readdir(dir));) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                ImageRecord img = {};
                bool known = name_is_valid(de->d_name) && store_image_get_by_name(d->store, de->d_name, &img) >= 0;
                image_record_done(&img);
                if (known)
                        continue;
                log_info("removing %s/%s: left by an interrupted import or build", images, de->d_name);
                if (rm_rf_at(ifd, de->d_name) < 0)
                        log_warning("cannot remove %s/%s", images, de->d_name);
        }
        closedir(dir);
}

/* ---- image.cache_prune ---- */

typedef struct PruneCtx {
        json_t *keep;    /* digest -> true */
        json_t *removed; /* [{digest, bytes}] */
} PruneCtx;

static bool prune_keep(const char *digest, void *userdata) {
        return json_object_get(((PruneCtx *) userdata)->keep, digest) != NULL;
}

static void prune_visit(const char *digest, uint64_t size, void *userdata) {
        json_array_append_new(((PruneCtx *) userdata)->removed,
                              json_pack("{s:s, s:I}", "digest", digest, "bytes", (json_int_t) size));
}

/* Every blob some imported image still names in its blobs.json. */
static void collect_kept_blobs(const char *state_dir, json_t *keep) {
        _cleanup_free_ char *images = path_join(state_dir, "images");
        _cleanup_close_ int ifd = images ? open_dir_nofollow(AT_FDCWD, images) : -EBADF;
        DIR *d = ifd >= 0 ? fdopendir(fcntl(ifd, F_DUPFD_CLOEXEC, 3)) : NULL;
        if (!d)
                return;
        rewinddir(d);
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_close_ int dfd = open_dir_nofollow(ifd, de->d_name);
                _cleanup_free_ char *text = NULL;
                if (dfd < 0 || read_file_at(dfd, "blobs.json", 1 << 20, &text, NULL) < 0)
                        continue;
                json_t *arr = json_loads(text, 0, NULL);
                size_t i;
                json_t *v;
                json_array_foreach(arr, i, v) if (json_is_string(v)) json_object_set_new(keep, json_string_value(v), json_true());
                json_decref(arr);
        }
        closedir(d);
}

typedef struct PruneJob {
        Daemon *d;
        bool dry_run;
} PruneJob;

static int work_prune(RpcCall *call, void *userdata, json_t **ret) {
        PruneJob *j = userdata;
        _cleanup_free_ char *cache = path_join(j->d->paths.cache_dir, "oci");
        _cleanup_close_ int cfd = cache ? open_dir_nofollow(AT_FDCWD, cache) : -ENOMEM;
        PruneCtx ctx = { .keep = json_object(), .removed = json_array() };
        OciPruneStats st = {};
        int r = 0;
        if (cfd >= 0) {
                pthread_rwlock_wrlock(&cache_lock);
                collect_kept_blobs(j->d->paths.state_dir, ctx.keep);
                r = oci_cache_prune(cfd, j->dry_run, prune_keep, prune_visit, &ctx, &st);
                pthread_rwlock_unlock(&cache_lock);
        } else if (cfd != -ENOENT)
                r = cfd;
        if (r >= 0)
                *ret = json_pack("{s:b, s:O, s:I, s:I, s:I}", "dry_run", j->dry_run, "removed", ctx.removed, "blobs",
                                 (json_int_t) st.n_blobs, "bytes", (json_int_t) st.bytes, "kept",
                                 (json_int_t) json_object_size(ctx.keep));
        json_decref(ctx.keep);
        json_decref(ctx.removed);
        return r;
}

static int method_cache_prune(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "dry_run", NULL };
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        json_t *v = json_object_get(params, "dry_run");
        if (v && !json_is_boolean(v)) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"dry_run\" must be true or false");
                return 0;
        }
        PruneJob *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        *j = (PruneJob){ .d = d, .dry_run = json_is_true(v) };
        return rpc_call_defer(call, work_prune, j, free);
}

const RpcMethod image_build_methods[] = {
        { "image.cache_prune", method_cache_prune },
        { "image.import", method_image_import },
        { "image.build", method_image_build },
        {},
};
