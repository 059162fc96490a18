/* SPDX-License-Identifier: MIT */
/* image.register, list, show, delete and promote: the catalogue of root
 * filesystems VMs boot. Register, delete and promote touch files a client
 * names and write the database: workers, so a slow disk or a busy database
 * never stalls the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "disk-clone.h"
#include "error.h"
#include "fs-util.h"
#include "image-dir.h"
#include "kernel-store.h"
#include "log.h"
#include "methods.h"
#include "operation.h"
#include "path-beneath.h"
#include "store.h"
#include "string-util.h"
#include "vm-manager.h"
#include "undo.h"

json_t *image_to_json(Store *s, const ImageRecord *img) {
        _cleanup_(kernel_record_done) KernelRecord k = {};
        const char *kname = NULL;
        if (img->kernel_id && store_kernel_get_by_id(s, img->kernel_id, &k) >= 0)
                kname = k.name;
        char ts[40];
        return json_pack("{s:s, s:s, s:s?, s:s, s:s?, s:b, s:I, s:s?, s:s}", "id", img->id, "name", img->name, "kernel",
                         kname, "rootfs", img->rootfs_path, "work_seed", img->work_seed_path, "managed", img->managed,
                         "size", (json_int_t) img->size, "source", img->source, "created_at",
                         format_timestamp(ts, sizeof(ts), img->created_at) ? ts : "");
}

int image_lookup(Store *s, const char *ref, ImageRecord *ret) {
        int r = store_image_get_by_name(s, ref, ret);
        if (r == -ENOENT)
                r = store_image_get_by_id(s, ref, ret);
        if (r == -ENOENT || r == -EINVAL)
                return error_setf(-ENOENT, "no image named '%s'", ref);
        return r;
}

/* ---- image.register ---- */

typedef struct RegisterArgs {
        const char *name, *rootfs, *kernel, *work_seed;
} RegisterArgs;

static const RpcParam register_params[] = {
        { "name", RPC_PARAM_NAME, RPC_ARG(RegisterArgs, name), true },
        { "rootfs", RPC_PARAM_PATH, RPC_ARG(RegisterArgs, rootfs), true },
        { "kernel", RPC_PARAM_NAME, RPC_ARG(RegisterArgs, kernel), true },
        { "work_seed", RPC_PARAM_PATH, RPC_ARG(RegisterArgs, work_seed) },
        {},
};

static int check_image_file(const char *path, uint64_t *ret_size) {
        /* O_NONBLOCK: a FIFO planted at the path must not hang the worker. */
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

static int work_image_register(RpcCall *call, Store *s, void *args, json_t **ret) {
        RegisterArgs *a = args;
        uint64_t size = 0, seed_size = 0;
        int r = check_image_file(a->rootfs, &size);
        if (r >= 0 && a->work_seed)
                r = check_image_file(a->work_seed, &seed_size);
        if (r < 0)
                return r;
        _cleanup_(kernel_record_done) KernelRecord k = {};
        r = kernel_store_lookup(s, a->kernel, &k);
        if (r < 0) {
                char why[512];
                snprintf(why, sizeof(why), "%s", error_last_message() ? error_last_message() : strerror(-r));
                return error_setf(r, "kernel '%s': %s", a->kernel, why);
        }
        char id[STORE_ID_GENERATED_LEN + 1];
        r = store_id_generate(id);
        ImageRecord img = { .id = id,
                            .name = (char *) a->name,
                            .kernel_id = k.id,
                            .rootfs_path = (char *) a->rootfs,
                            .work_seed_path = (char *) a->work_seed,
                            .size = size,
                            .source = (char *) a->rootfs };
        if (r >= 0)
                r = store_image_insert(s, &img);
        if (r == -EEXIST)
                return error_setf(-EEXIST, "an image named '%s' already exists", a->name);
        _cleanup_(image_record_done) ImageRecord got = {};
        if (r >= 0)
                r = store_image_get_by_id(s, id, &got);
        if (r >= 0)
                *ret = image_to_json(s, &got);
        return r;
}

/* ---- image.list, image.show ---- */

static int method_image_list(Daemon *d, RpcCall *call, void *args) {
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

static int method_image_show(Daemon *d, RpcCall *call, void *args) {
        _cleanup_(image_record_done) ImageRecord img = {};
        int r = image_lookup(d->store, ((RpcNameArgs *) args)->name, &img);
        if (r < 0)
                return r;
        rpc_call_reply(call, image_to_json(d->store, &img));
        return 0;
}

/* ---- image.delete ---- */

typedef struct DeleteArgs {
        const char *name;
        bool force;
} DeleteArgs;

static const RpcParam delete_params[] = {
        { "name", RPC_PARAM_NAME, RPC_ARG(DeleteArgs, name), true },
        { "force", RPC_PARAM_BOOL, RPC_ARG(DeleteArgs, force) },
        {},
};

static void names_add(char *names, size_t size, const char *name) {
        if (strlen(names) + strlen(name) + 3 < size)
                strcat(strcat(names, names[0] ? ", " : ""), name);
}

/* A VM made from the image keeps it (and its templates, which a refused
 * delete must not touch); the error names its snapshots too unless force. */
static int image_refuse_if_used(Store *s, const ImageRecord *img, bool force) {
        VmRecord *vms = NULL;
        SnapshotRecord *snaps = NULL;
        size_t n_vms = 0, n_snaps = 0;
        int r = store_vm_list(s, &vms, &n_vms);
        if (r >= 0)
                r = store_snapshot_list_by_image(s, img->id, &snaps, &n_snaps);
        char users[256] = "", kept[256] = "";
        for (size_t i = 0; r >= 0 && i < n_vms; i++)
                if (streq_ptr(vms[i].image_id, img->id))
                        names_add(users, sizeof(users), vms[i].name);
        for (size_t i = 0; r >= 0 && i < n_snaps && !force; i++)
                if (snaps[i].kind != SNAPSHOT_TEMPLATE)
                        names_add(kept, sizeof(kept), snaps[i].name);
        vm_record_array_free(vms, n_vms);
        snapshot_record_array_free(snaps, n_snaps);
        if (r < 0 || !users[0])
                return r;
        return error_setf(-EBUSY, "image %s is still in use by VM(s) %s%s%s", img->name, users,
                          kept[0] ? "; snapshot(s) " : "", kept);
}

static int work_image_delete(RpcCall *call, Store *s, void *args, json_t **ret) {
        Daemon *d = rpc_call_daemon(call);
        DeleteArgs *a = args;
        _cleanup_(image_record_done) ImageRecord img = {};
        char what[96];
        int r = image_lookup(s, a->name, &img);
        if (r >= 0)
                r = image_refuse_if_used(s, &img, a->force);
        if (r >= 0) {
                /* Snapshots made from it first (the store would refuse). */
                snprintf(what, sizeof(what), "image %s", img.name);
                r = snapshot_dependents_delete(d->vms, s, img.id, NULL, what, a->force);
        }
        if (r >= 0)
                r = store_image_delete(s, img.id);
        if (r < 0)
                return r;
        if (img.managed)
                image_dir_remove(d, &img);
        *ret = json_pack("{s:s}", "removed", img.name);
        return 0;
}

/* ---- image.promote ---- */

/* Clone the rootfs a client registered (any path it names) into
 * images/<name>/rootfs.ext4; *ret_path is the new file's full path. */
static int promote_copy(Daemon *d, const ImageRecord *img, UndoStack *undo, DiskCloneMethod *used, char **ret_path) {
        _cleanup_free_ char *src_dir = strdup(img->rootfs_path), *dst = NULL;
        char *slash = src_dir ? strrchr(src_dir, '/') : NULL;
        if (!slash || asprintf(&dst, "%s/images/%s/rootfs.ext4", d->paths.state_dir, img->name) < 0)
                return -ENOMEM;
        *slash = '\0';
        _cleanup_close_ int dfd = image_dir_create(d, img->name, undo);
        if (dfd < 0)
                return dfd;
        /* The source is wherever the client registered it. */
        _cleanup_close_ int sfd = open_dir_nofollow(AT_FDCWD, src_dir[0] ? src_dir : "/");
        int r = sfd < 0 ? sfd : undo_push_unlink(undo, dfd, "rootfs.ext4");
        if (r >= 0)
                r = disk_clone(sfd, slash + 1, dfd, "rootfs.ext4", DISK_CLONE_FILE, used);
        if (r < 0)
                return r;
        *ret_path = TAKE_PTR(dst);
        return 0;
}

/* Copy a registered image's rootfs into banger's own store, so the image no
 * longer depends on a file someone else may move or change. */
static int work_image_promote(RpcCall *call, Store *s, void *args, json_t **ret) {
        Daemon *d = rpc_call_daemon(call);
        _cleanup_(image_record_done) ImageRecord img = {};
        int r = image_lookup(s, ((RpcNameArgs *) args)->name, &img);
        if (r < 0)
                return r;
        if (!img.managed) {
                _cleanup_undo_ UndoStack undo = UNDO_STACK_INIT;
                DiskCloneMethod used = 0;
                char *path = NULL;
                r = operation_check();
                if (r >= 0)
                        r = promote_copy(d, &img, &undo, &used, &path);
                if (r < 0)
                        return r;
                /* The point of no return (operation.h): a cancel until here
                 * leaves the image as it was and no copy. */
                r = operation_commit("has copied the root filesystem and is recording the image managed");
                if (r < 0) {
                        free(path);
                        return r;
                }
                free(img.rootfs_path);
                img.rootfs_path = path;
                img.managed = true;
                r = store_image_update(s, &img);
                if (r < 0)
                        return r;
                undo_commit(&undo);
                rpc_call_notify(call, "progress",
                                json_pack("{s:s, s:s}", "stage", "copy", "message", disk_clone_method_to_string(used)));
        }
        *ret = image_to_json(s, &img);
        return 0;
}

const RpcMethod image_methods[] = {
        { "image.register", register_params, sizeof(RegisterArgs), .work = work_image_register },
        { "image.list", .run = method_image_list },
        { "image.show", rpc_name_params, sizeof(RpcNameArgs), .run = method_image_show },
        { "image.delete", delete_params, sizeof(DeleteArgs), .work = work_image_delete },
        { "image.promote", rpc_name_params, sizeof(RpcNameArgs), .work = work_image_promote, .operation = true,
          .operation_target = "name", .cancellable = true },
        {},
};
