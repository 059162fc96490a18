/* SPDX-License-Identifier: MIT */
/* kernel.* and image.*: the catalogue of what VMs boot. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "disk-clone.h"
#include "paths.h"
#include "error.h"
#include "fs-util.h"
#include "jsonrpc.h"
#include "kernel-store.h"
#include "log.h"
#include "string-util.h"
#include "vm-manager.h"

typedef struct ImageJob {
        Daemon *d;
        char *name, *from, *rootfs, *kernel, *work_seed;
} ImageJob;

static void image_job_free(void *p) {
        ImageJob *j = p;
        if (!j)
                return;
        free(j->name);
        free(j->from);
        free(j->rootfs);
        free(j->kernel);
        free(j->work_seed);
        free(j);
}

static int want_str(RpcCall *call, json_t *params, const char *key, bool required, bool path, char **ret) {
        json_t *v = json_object_get(params, key);
        if (!v && !required)
                return 0;
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4096) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"%s\" must be a non-empty string", key);
                return -EINVAL;
        }
        const char *s = json_string_value(v);
        if (path && s[0] != '/') {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"%s\" must be an absolute path", key);
                return -EINVAL;
        }
        if (!path && !name_is_valid(s)) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"%s\" must be a name: [a-z0-9][a-z0-9-]{0,62}", key);
                return -EINVAL;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* The methods whose only parameter is "name": check it, then do the work in
 * a worker. */
static int defer_by_name(Daemon *d, RpcCall *call, json_t *params, RpcWorkFn work) {
        static const char *const keys[] = { "name", NULL };
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        ImageJob *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->d = d;
        if (want_str(call, params, "name", true, false, &j->name) < 0) {
                image_job_free(j);
                return 0;
        }
        return rpc_call_defer(call, work, j, image_job_free);
}

static void notify_progress(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata) {
        RpcCall *call = userdata;
        rpc_call_notify(call, "progress",
                        json_pack("{s:s, s:s, s:I, s:I}", "stage", stage, "message", detail ? detail : "", "bytes",
                                  (json_int_t) done, "total", (json_int_t) total));
}

static int with_store(Daemon *d, Store **ret) {
        return store_open(d->paths.db_path, STORE_OPEN_NO_MIGRATE, ret);
}

/* ---- kernels ---- */

static int work_kernel_import(RpcCall *call, void *userdata, json_t **ret) {
        ImageJob *j = userdata;
        Store *s = NULL;
        int r = with_store(j->d, &s);
        if (r < 0)
                return r;
        KernelImportOptions o = { .name = j->name, .from = j->from, .initrd = j->rootfs, /* the initrd path */
                                  .progress = { notify_progress, call } };
        KernelRecord k = {};
        r = kernel_store_import(s, j->d->paths.state_dir, &o, &k);
        if (r >= 0)
                *ret = kernel_record_to_json(&k);
        kernel_record_done(&k);
        store_close(s);
        return r;
}

static int method_kernel_import(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "name", "from", "initrd", NULL };
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        ImageJob *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->d = d;
        if (want_str(call, params, "name", true, false, &j->name) < 0 || want_str(call, params, "from", true, true, &j->from) < 0 ||
            want_str(call, params, "initrd", false, true, &j->rootfs) < 0) {
                image_job_free(j);
                return 0;
        }
        return rpc_call_defer(call, work_kernel_import, j, image_job_free);
}

static int method_kernel_list(Daemon *d, RpcCall *call, json_t *params) {
        if (rpc_params_check_keys(call, params, (const char *const[]){ NULL }) < 0)
                return 0;
        json_t *r = NULL;
        int k = kernel_store_list_json(d->store, &r);
        if (k < 0)
                return k;
        rpc_call_reply(call, r);
        return 0;
}

static int method_kernel_show(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "name", NULL };
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        _cleanup_free_ char *name = NULL;
        if (want_str(call, params, "name", true, false, &name) < 0)
                return 0;
        json_t *r = NULL;
        int k = kernel_store_show_json(d->store, name, &r);
        if (k < 0)
                return k;
        rpc_call_reply(call, r);
        return 0;
}

static int work_kernel_rm(RpcCall *call, void *userdata, json_t **ret) {
        ImageJob *j = userdata;
        Store *s = NULL;
        int r = with_store(j->d, &s);
        if (r < 0)
                return r;
        r = kernel_store_remove(s, j->d->paths.state_dir, j->name);
        store_close(s);
        if (r >= 0)
                *ret = json_pack("{s:s}", "removed", j->name);
        return r;
}

static int method_kernel_rm(Daemon *d, RpcCall *call, json_t *params) {
        return defer_by_name(d, call, params, work_kernel_rm);
}

/* ---- images ---- */

static json_t *image_to_json(Store *s, const ImageRecord *img) {
        KernelRecord k = {};
        const char *kname = NULL;
        if (img->kernel_id && store_kernel_get_by_id(s, img->kernel_id, &k) >= 0)
                kname = k.name;
        char ts[40];
        json_t *j = json_pack("{s:s, s:s, s:s?, s:s, s:s?, s:b, s:I, s:s?, s:s}", "id", img->id, "name", img->name,
                              "kernel", kname, "rootfs", img->rootfs_path, "work_seed", img->work_seed_path, "managed",
                              img->managed, "size", (json_int_t) img->size, "source", img->source, "created_at",
                              format_timestamp(ts, sizeof(ts), img->created_at) ? ts : "");
        kernel_record_done(&k);
        return j;
}

static int image_lookup(Store *s, const char *ref, ImageRecord *ret) {
        int r = store_image_get_by_name(s, ref, ret);
        if (r == -ENOENT)
                r = store_image_get_by_id(s, ref, ret);
        if (r == -ENOENT || r == -EINVAL)
                return error_setf(-ENOENT, "no image named '%s'", ref);
        return r;
}

static int check_image_file(const char *path, uint64_t *ret_size) {
        /* O_NONBLOCK: a FIFO planted at the path must not hang the event loop. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return error_setf(-errno, "cannot open %s: %m", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return error_setf(-EINVAL, "%s is not a regular file", path);
        unsigned char magic[2];
        if (pread(fd, magic, 2, 1080) != 2 || magic[0] != 0x53 || magic[1] != 0xef)
                return error_setf(-EINVAL, "%s is not an ext2/3/4 filesystem image", path);
        *ret_size = (uint64_t) st.st_size;
        return 0;
}

/* Register and delete touch files a client names and write the database:
 * workers, so a slow disk or a busy database never stalls the event loop. */
static int work_image_register(RpcCall *call, void *userdata, json_t **ret) {
        ImageJob *j = userdata;
        uint64_t size = 0, seed_size = 0;
        int r = check_image_file(j->rootfs, &size);
        if (r >= 0 && j->work_seed)
                r = check_image_file(j->work_seed, &seed_size);
        if (r < 0)
                return r;
        Store *s = NULL;
        if ((r = with_store(j->d, &s)) < 0)
                return r;
        KernelRecord k = {};
        r = kernel_store_lookup(s, j->kernel, &k);
        if (r < 0) {
                char why[512];
                snprintf(why, sizeof(why), "%s", error_last_message() ? error_last_message() : strerror(-r));
                error_setf(r, "kernel '%s': %s", j->kernel, why);
                store_close(s);
                return r;
        }
        char id[STORE_ID_GENERATED_LEN + 1];
        r = store_id_generate(id);
        ImageRecord img = { .id = id, .name = j->name, .kernel_id = k.id, .rootfs_path = j->rootfs,
                            .work_seed_path = j->work_seed, .managed = false, .size = size, .source = j->rootfs };
        if (r >= 0)
                r = store_image_insert(s, &img);
        if (r == -EEXIST)
                r = error_setf(-EEXIST, "an image named '%s' already exists", j->name);
        if (r >= 0) {
                ImageRecord got = {};
                r = store_image_get_by_id(s, id, &got);
                if (r >= 0)
                        *ret = image_to_json(s, &got);
                image_record_done(&got);
        }
        kernel_record_done(&k);
        store_close(s);
        return r;
}

static int method_image_register(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "name", "rootfs", "kernel", "work_seed", NULL };
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        ImageJob *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->d = d;
        if (want_str(call, params, "name", true, false, &j->name) < 0 ||
            want_str(call, params, "rootfs", true, true, &j->rootfs) < 0 ||
            want_str(call, params, "kernel", true, false, &j->kernel) < 0 ||
            want_str(call, params, "work_seed", false, true, &j->work_seed) < 0) {
                image_job_free(j);
                return 0;
        }
        return rpc_call_defer(call, work_image_register, j, image_job_free);
}

static int method_image_list(Daemon *d, RpcCall *call, json_t *params) {
        if (rpc_params_check_keys(call, params, (const char *const[]){ NULL }) < 0)
                return 0;
        ImageRecord *list = NULL;
        size_t n = 0;
        int r = store_image_list(d->store, &list, &n);
        if (r < 0)
                return r;
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, image_to_json(d->store, &list[i]));
        image_record_array_free(list, n);
        rpc_call_reply(call, json_pack("{s:o}", "images", arr));
        return 0;
}

static int method_image_show(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "name", NULL };
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        _cleanup_free_ char *name = NULL;
        if (want_str(call, params, "name", true, false, &name) < 0)
                return 0;
        ImageRecord img = {};
        int r = image_lookup(d->store, name, &img);
        if (r < 0)
                return r;
        rpc_call_reply(call, image_to_json(d->store, &img));
        image_record_done(&img);
        return 0;
}

static int work_image_delete(RpcCall *call, void *userdata, json_t **ret) {
        ImageJob *j = userdata;
        Store *s = NULL;
        int r = with_store(j->d, &s);
        if (r < 0)
                return r;
        ImageRecord img = {};
        r = image_lookup(s, j->name, &img);
        if (r >= 0)
                r = store_image_delete(s, img.id);
        if (r >= 0 && img.managed) {
                if (unlink(img.rootfs_path) < 0 && errno != ENOENT)
                        log_warning("cannot remove %s: %m", img.rootfs_path);
                if (img.work_seed_path)
                        (void) unlink(img.work_seed_path);
                /* Managed files live in <state>/images/<name>/. */
                _cleanup_free_ char *dir = strdup(img.rootfs_path);
                char *slash = dir ? strrchr(dir, '/') : NULL;
                if (slash) {
                        *slash = '\0';
                        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
                        if (dfd >= 0)
                                (void) unlinkat(dfd, "blobs.json", 0);
                        (void) rmdir(dir);
                }
        }
        if (r >= 0)
                *ret = json_pack("{s:s}", "removed", img.name);
        image_record_done(&img);
        store_close(s);
        return r;
}

static int method_image_delete(Daemon *d, RpcCall *call, json_t *params) {
        return defer_by_name(d, call, params, work_image_delete);
}

/* Copy a registered image's rootfs into banger's own store, so the image no
 * longer depends on a file someone else may move or change. */
static int work_image_promote(RpcCall *call, void *userdata, json_t **ret) {
        ImageJob *j = userdata;
        Store *s = NULL;
        int r = with_store(j->d, &s);
        if (r < 0)
                return r;
        ImageRecord img = {};
        _cleanup_free_ char *images = path_join(j->d->paths.state_dir, "images"), *dir = NULL, *dst = NULL;
        _cleanup_free_ char *src_dir = NULL;
        _cleanup_close_ int ifd = -EBADF, dfd = -EBADF, sfd = -EBADF;
        r = image_lookup(s, j->name, &img);
        if (r < 0)
                goto out;
        if (img.managed) {
                *ret = image_to_json(s, &img);
                goto out;
        }
        if (!images || asprintf(&dir, "%s/%s", images, img.name) < 0 || !(dst = path_join(dir, "rootfs.ext4")) ||
            !(src_dir = strdup(img.rootfs_path))) {
                r = -ENOMEM;
                goto out;
        }
        char *slash = strrchr(src_dir, '/');
        *slash = '\0';
        if ((r = paths_ensure_private_dir(images, &ifd)) < 0)
                goto out;
        r = mkdirat_private(ifd, img.name, 0700);
        if (r == 0)
                r = error_setf(-EEXIST, "%s already exists", dir);
        if (r < 0)
                goto out;
        dfd = open_dir_nofollow(ifd, img.name);
        sfd = open_dir_nofollow(AT_FDCWD, src_dir[0] ? src_dir : "/");
        DiskCloneMethod used = 0;
        r = dfd < 0 ? dfd : sfd < 0 ? sfd : disk_clone(sfd, slash + 1, dfd, "rootfs.ext4", DISK_CLONE_FILE, &used);
        if (r >= 0) {
                free(img.rootfs_path);
                img.rootfs_path = TAKE_PTR(dst);
                img.managed = true;
                r = store_image_update(s, &img);
        }
        if (r < 0) {
                if (dfd >= 0)
                        (void) unlinkat(dfd, "rootfs.ext4", 0);
                (void) unlinkat(ifd, img.name, AT_REMOVEDIR);
                goto out;
        }
        rpc_call_notify(call, "progress", json_pack("{s:s, s:s}", "stage", "copy", "message",
                                                    disk_clone_method_to_string(used)));
        *ret = image_to_json(s, &img);
out:
        image_record_done(&img);
        store_close(s);
        return r;
}

static int method_image_promote(Daemon *d, RpcCall *call, json_t *params) {
        return defer_by_name(d, call, params, work_image_promote);
}

const RpcMethod image_methods[] = {
        { "image.promote", method_image_promote },
        { "kernel.import", method_kernel_import }, { "kernel.list", method_kernel_list },
        { "kernel.show", method_kernel_show },     { "kernel.rm", method_kernel_rm },
        { "image.register", method_image_register }, { "image.list", method_image_list },
        { "image.show", method_image_show },       { "image.delete", method_image_delete },
        {},
};
