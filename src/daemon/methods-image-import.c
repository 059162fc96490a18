/* SPDX-License-Identifier: MIT */
/* image.import (OCI/Docker), image.build (debootstrap) and
 * image.cache_prune: long work in workers, with progress notifications. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "banger-build.h"
#include "daemon.h"
#include "debootstrap-image.h"
#include "error.h"
#include "fs-util.h"
#include "image-dir.h"
#include "jsonrpc.h"
#include "kernel-store.h"
#include "methods.h"
#include "oci-import.h"
#include "operation.h"
#include "store.h"
#include "string-util.h"
#include "undo.h"

/* Imports read the blob cache, a prune rewrites it: never both at once. */
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;

typedef struct ImportArgs {
        const char *name, *source, *kernel, *suite, *mirror;
        RpcCall *call;    /* set by the worker, for progress */
        usec_t last_note; /* the worker's own */
} ImportArgs;

static void note(ImportArgs *a, const char *stage, const char *msg, uint64_t done, uint64_t total) {
        /* Byte counters come fast: at most ten notifications a second. */
        usec_t now = now_monotonic();
        if (total && done < total && now - a->last_note < 100 * USEC_PER_MSEC)
                return;
        a->last_note = now;
        rpc_call_progress(a->call, stage, msg, done, total);
}

static int oci_progress(OciProgressPhase phase, uint64_t done, uint64_t total, void *userdata) {
        static const char *const names[] = { "download", "unpack", "layers", "write" };
        note(userdata, names[phase], NULL, done, total);
        return operation_cancelled(operation_current()); /* the import stops and leaves nothing */
}

static void build_progress(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata) {
        note(userdata, stage, detail, done, total);
}

static json_t *image_json_by_id(Store *s, const char *id) {
        _cleanup_(image_record_done) ImageRecord img = {};
        return store_image_get_by_id(s, id, &img) < 0 ? json_null() : image_to_json(s, &img);
}

/* ---- image.import ---- */

static const RpcParam import_params[] = {
        { "name", RPC_PARAM_NAME, RPC_ARG(ImportArgs, name), true },
        { "source", RPC_PARAM_STRING, RPC_ARG(ImportArgs, source), true },
        { "kernel", RPC_PARAM_NAME, RPC_ARG(ImportArgs, kernel) },
        {},
};

/* The kernel an imported image boots: the one named, else the default
 * image's, else the newest imported. */
static int pick_kernel(Daemon *d, Store *s, const char *name, KernelRecord *ret) {
        if (name)
                return kernel_store_lookup(s, name, ret);
        _cleanup_(image_record_done) ImageRecord def = {};
        const char *dn = config_vm_image(&d->config);
        if (dn && store_image_get_by_name(s, dn, &def) >= 0 && def.kernel_id)
                return store_kernel_get_by_id(s, def.kernel_id, ret);
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

/* Import into idfd and record the image. The cache lock is held until
 * blobs.json names this image's blobs: a prune in between would take them. */
static int import_and_record(ImportArgs *a, Store *s, const KernelRecord *k, int cfd, int idfd, UndoStack *undo,
                             char id[static STORE_ID_GENERATED_LEN + 1]) {
        Daemon *d = rpc_call_daemon(a->call);
        _cleanup_free_ char *agent = daemon_find_agent(), *rootfs = NULL;
        if (asprintf(&rootfs, "%s/images/%s/rootfs.ext4", d->paths.state_dir, a->name) < 0)
                return -ENOMEM;
        OciImportOptions o = { .source = a->source,
                               .kind = OCI_SOURCE_AUTO,
                               .cache_dirfd = cfd,
                               .out_dirfd = idfd,
                               .out_name = "rootfs.ext4",
                               .agent_path = agent,
                               .max_bytes = d->config.image_import_max,
                               .progress = oci_progress,
                               .userdata = a };
        _cleanup_(oci_import_result_done) OciImportResult res = {};
        int r = undo_push_unlink(undo, idfd, "rootfs.ext4");
        if (r >= 0)
                r = undo_push_unlink(undo, idfd, "blobs.json");
        if (r < 0 || (r = store_id_generate(id)) < 0)
                return r;
        pthread_rwlock_rdlock(&cache_lock);
        r = oci_import(&o, &res);
        ImageRecord img = { .id = id,
                            .name = (char *) a->name,
                            .kernel_id = k->id,
                            .rootfs_path = rootfs,
                            .managed = true,
                            .size = res.image_size,
                            .source = (char *) a->source };
        if (r >= 0)
                r = store_image_insert(s, &img);
        if (r >= 0)
                image_dir_write_blobs(idfd, res.blobs);
        pthread_rwlock_unlock(&cache_lock);
        return r;
}

static int work_import(RpcCall *call, Store *s, void *args, json_t **ret) {
        ImportArgs *a = args;
        a->call = call;
        Daemon *d = rpc_call_daemon(call);
        _cleanup_(kernel_record_done) KernelRecord k = {};
        int r = pick_kernel(d, s, a->kernel, &k);
        if (r < 0)
                return r;
        _cleanup_free_ char *cache = path_join(d->paths.cache_dir, "oci");
        _cleanup_close_ int cfd = -EBADF;
        r = cache ? paths_ensure_private_dir(cache, &cfd) : -ENOMEM;
        if (r < 0)
                return r;
        _cleanup_undo_ UndoStack undo = UNDO_STACK_INIT;
        _cleanup_close_ int idfd = image_dir_create(d, a->name, &undo);
        if (idfd < 0)
                return idfd;
        char id[STORE_ID_GENERATED_LEN + 1];
        r = import_and_record(a, s, &k, cfd, idfd, &undo, id);
        if (r < 0)
                return r;
        undo_commit(&undo);
        *ret = image_json_by_id(s, id);
        return 0;
}

/* ---- image.build ---- */

static const RpcParam build_params[] = {
        { "name", RPC_PARAM_NAME, RPC_ARG(ImportArgs, name), true },
        { "suite", RPC_PARAM_STRING, RPC_ARG(ImportArgs, suite), .what = "a Debian suite name" },
        { "mirror", RPC_PARAM_STRING, RPC_ARG(ImportArgs, mirror), .what = "an http(s) URL" },
        {},
};

static void build_defaults(Daemon *d, void *args) {
        ImportArgs *a = args;
        a->suite = d->config.debootstrap_suite;
        a->mirror = d->config.debootstrap_mirror;
}

static int build_check(Daemon *d, RpcCall *call, void *args) {
        ImportArgs *a = args;
        if (!a->suite || !debootstrap_suite_is_valid(a->suite))
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"suite\" must be a Debian suite name");
        else if (!a->mirror || (!startswith(a->mirror, "http://") && !startswith(a->mirror, "https://")))
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"mirror\" must be an http(s) URL");
        else
                return 0;
        return -EINVAL;
}

static int work_build(RpcCall *call, Store *s, void *args, json_t **ret) {
        ImportArgs *a = args;
        a->call = call;
        Daemon *d = rpc_call_daemon(call);
        _cleanup_free_ char *agent = daemon_find_agent();
        if (!agent)
                return error_setf(-ENOENT, "cannot find banger-agent next to bangerd or in %s/banger",
                                  BANGER_LIBEXECDIR);
        _cleanup_free_ char *cache = path_join(d->paths.cache_dir, "debs");
        _cleanup_close_ int cfd = -EBADF;
        if (cache)
                (void) paths_ensure_private_dir(cache, &cfd);
        DebootstrapImageOptions o = { .name = a->name,
                                      .suite = a->suite,
                                      .mirror = a->mirror,
                                      .agent = agent,
                                      .cache_dir = cache,
                                      .progress = { build_progress, a, operation_progress_cancel } };
        _cleanup_(image_record_done) ImageRecord img = {};
        int r = debootstrap_image_build(s, d->paths.state_dir, &o, &img);
        if (r >= 0)
                *ret = image_json_by_id(s, img.id);
        return r;
}

/* ---- image.cache_prune ---- */

typedef struct PruneArgs {
        bool dry_run;
        json_t *keep;    /* digest -> true */
        json_t *removed; /* [{digest, bytes}] */
} PruneArgs;

static const RpcParam prune_params[] = {
        { "dry_run", RPC_PARAM_BOOL, RPC_ARG(PruneArgs, dry_run) },
        {},
};

static bool prune_keep(const char *digest, void *userdata) {
        return json_object_get(((PruneArgs *) userdata)->keep, digest) != NULL;
}

static void prune_visit(const char *digest, uint64_t size, void *userdata) {
        json_array_append_new(((PruneArgs *) userdata)->removed,
                              json_pack("{s:s, s:I}", "digest", digest, "bytes", (json_int_t) size));
}

static int work_prune(RpcCall *call, Store *s, void *args, json_t **ret) {
        PruneArgs *a = args;
        Daemon *d = rpc_call_daemon(call);
        _cleanup_free_ char *cache = path_join(d->paths.cache_dir, "oci");
        _cleanup_close_ int cfd = cache ? open_dir_nofollow(AT_FDCWD, cache) : -ENOMEM;
        if (cfd < 0 && cfd != -ENOENT)
                return cfd;
        a->keep = json_object();
        a->removed = json_array();
        OciPruneStats st = {};
        int r = 0;
        if (cfd >= 0) {
                pthread_rwlock_wrlock(&cache_lock);
                image_dirs_collect_blobs(d, a->keep);
                r = oci_cache_prune(cfd, a->dry_run, prune_keep, prune_visit, a, &st);
                pthread_rwlock_unlock(&cache_lock);
        }
        if (r >= 0)
                *ret = json_pack("{s:b, s:O, s:I, s:I, s:I}", "dry_run", a->dry_run, "removed", a->removed, "blobs",
                                 (json_int_t) st.n_blobs, "bytes", (json_int_t) st.bytes, "kept",
                                 (json_int_t) json_object_size(a->keep));
        json_decref(a->keep);
        json_decref(a->removed);
        return r;
}

const RpcMethod image_import_methods[] = {
        { "image.import", import_params, sizeof(ImportArgs), .work = work_import, .operation = true,
          .operation_target = "name", .cancellable = true },
        { "image.build", build_params, sizeof(ImportArgs), build_defaults, build_check, .work = work_build,
          .operation = true, .operation_target = "name", .cancellable = true },
        { "image.cache_prune", prune_params, sizeof(PruneArgs), .work = work_prune },
        {},
};
