/* SPDX-License-Identifier: MIT */
/* image.bundle and kernel.bundle: one registered image (with its kernel) or
 * kernel written as a bundle file a team can publish (bundle.h). Hashing
 * and compressing take seconds to minutes: workers, with progress. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bundle.h"
#include "daemon.h"
#include "error.h"
#include "kernel-store.h"
#include "methods.h"
#include "operation.h"
#include "store.h"

typedef struct BundleArgs {
        const char *name, *output, *version, *description;
} BundleArgs;

static const RpcParam bundle_params[] = {
        { "name", RPC_PARAM_NAME, RPC_ARG(BundleArgs, name), true },
        { "output", RPC_PARAM_PATH, RPC_ARG(BundleArgs, output), true },
        { "version", RPC_PARAM_STRING, RPC_ARG(BundleArgs, version) },
        { "description", RPC_PARAM_STRING, RPC_ARG(BundleArgs, description) },
        {},
};

static void bundle_progress(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata) {
        rpc_call_progress(userdata, stage, detail, done, total);
}

/* An image has no version of its own: the day it was made stands for one. */
static const char *default_version(const KernelRecord *k, const ImageRecord *img, char *buf, size_t len) {
        if (!img)
                return k->version && bundle_version_is_valid(k->version) ? k->version : "1";
        time_t t = (time_t) (img->created_at / USEC_PER_SEC);
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y.%m.%d", &tm) == 0)
                return "1";
        return buf;
}

static int bundle_reply(const BundleArgs *a, const char *version, json_t **ret) {
        *ret = json_pack("{s:s, s:s, s:s}", "name", a->name, "version", version, "output", a->output);
        return *ret ? 0 : -ENOMEM;
}

static int run_bundle(RpcCall *call, const BundleArgs *a, const KernelRecord *k, const ImageRecord *img, json_t **ret) {
        char day[16];
        const char *version = a->version ? a->version : default_version(k, img, day, sizeof(day));
        if (!bundle_version_is_valid(version))
                return error_setf(-EINVAL, "'%s' is not a valid version (letters, digits and ._+~- only)", version);
        BundleOptions o = {
                .name = a->name,
                .version = version,
                .description = a->description,
                .kernel = k,
                .image = img,
                .output = a->output,
                .progress = { bundle_progress, call, operation_progress_cancel },
        };
        int r = bundle_write(&o);
        return r < 0 ? r : bundle_reply(a, version, ret);
}

static int work_image_bundle(RpcCall *call, Store *s, void *args, json_t **ret) {
        BundleArgs *a = args;
        _cleanup_(image_record_done) ImageRecord img = {};
        _cleanup_(kernel_record_done) KernelRecord k = {};
        int r = image_lookup(s, a->name, &img);
        if (r < 0)
                return r;
        if (!img.kernel_id)
                return error_setf(-EINVAL, "image %s has no kernel: a bundle carries the kernel it boots", img.name);
        r = store_kernel_get_by_id(s, img.kernel_id, &k);
        if (r < 0)
                return error_setf(r, "the kernel of image %s is missing from the store", img.name);
        return run_bundle(call, a, &k, &img, ret);
}

static int work_kernel_bundle(RpcCall *call, Store *s, void *args, json_t **ret) {
        BundleArgs *a = args;
        _cleanup_(kernel_record_done) KernelRecord k = {};
        int r = kernel_store_lookup(s, a->name, &k);
        if (r < 0)
                return error_setf(r, "no kernel named '%s'", a->name);
        return run_bundle(call, a, &k, NULL, ret);
}

const RpcMethod catalog_methods[] = {
        { "image.bundle", bundle_params, sizeof(BundleArgs), .work = work_image_bundle, .operation = true,
          .operation_target = "name", .cancellable = true },
        { "kernel.bundle", bundle_params, sizeof(BundleArgs), .work = work_kernel_bundle, .operation = true,
          .operation_target = "name", .cancellable = true },
        {},
};
