/* SPDX-License-Identifier: MIT */
/* A VM's disks: the root disk (a clone of the image, patched with the VM's
 * hostname, network and keys) and the work disk. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "console-stream.h"
#include "error.h"
#include "ext4-edit.h"
#include "fs-util.h"
#include "guest-patch.h"
#include "log.h"
#include "path-beneath.h"
#include "rootdisk.h"
#include "vm-internal.h"
#include "workdisk.h"

/* The work disk is mounted on /root in the guest, over the root disk's
 * /root: root's authorized_keys must be on it too, or they are hidden. A
 * clone of the work disk template takes a UUID of its own in the same
 * edit (one open and flush of the image, not two). */
static int workdisk_finish(int dfd, const char *pubkey, bool new_identity) {
        if (!pubkey && !new_identity)
                return 0;
        _cleanup_close_ int fd = openat(dfd, "work.img", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        Ext4Image *img = NULL;
        int r = ext4_image_open_fd(fd, &img);
        if (r < 0)
                return r;
        r = new_identity ? ext4_image_new_identity(img) : 0;
        if (r >= 0 && pubkey)
                r = ext4_mkdir_p(img, "/.ssh", 0700, 0, 0);
        if (r >= 0 && pubkey)
                r = ext4_write_file(img, "/.ssh/authorized_keys", pubkey, strlen(pubkey), 0600, 0, 0);
        if (r < 0) {
                ext4_image_abort(img);
                return r;
        }
        return ext4_image_close(img);
}

/* The work disk templates (workdisk_create_cached()) live in the state
 * directory, on the filesystem of the VMs' disks, so a clone is a reflink. */
static int work_template_dir_open(Daemon *d) {
        int r = mkdirat_private(d->state_dir_fd, "work-templates", 0700);
        return r < 0 ? r : open_dir_nofollow(d->state_dir_fd, "work-templates");
}

/* The directory of an image's file and the file's name in it: through the
 * state directory for a managed image, else at the path it was registered
 * with (a file of the user's, wherever it is). */
static int open_image_file_dir(Daemon *d, const char *path, const char **ret_name) {
        const char *rel = daemon_state_relative(d, path);
        if (rel)
                return open_parent_beneath(d->state_dir_fd, rel, ret_name);
        const char *slash = strrchr(path, '/');
        if (!slash || !slash[1])
                return -EINVAL;
        _cleanup_free_ char *dir = strndup(path, (size_t) (slash - path));
        if (!dir)
                return -ENOMEM;
        *ret_name = slash + 1;
        return open_dir_nofollow(AT_FDCWD, dir[0] ? dir : "/");
}

static int make_work_disk(VmManager *m, const VmRecord *vm, const ImageRecord *img, int dfd, const char *pubkey) {
        bool cloned = false;
        int r;
        if (img->work_seed_path) {
                const char *seed = NULL;
                _cleanup_close_ int sfd = open_image_file_dir(m->d, img->work_seed_path, &seed);
                r = sfd < 0 ? sfd
                            : workdisk_from_seed(sfd, seed, dfd, "work.img", vm->disk_bytes, DISK_CLONE_FILE, NULL);
        } else {
                _cleanup_close_ int tfd = work_template_dir_open(m->d);
                r = tfd < 0 ? workdisk_create(dfd, "work.img", vm->disk_bytes)
                            : workdisk_create_cached(tfd, dfd, "work.img", vm->disk_bytes, &cloned);
        }
        return r < 0 ? r : workdisk_finish(dfd, pubkey, cloned);
}

/* The work disk is made in a thread of its own while the root disk is: each
 * waits mostly for its fsyncs, which then overlap. */
typedef struct WorkDiskJob {
        VmManager *m;
        const VmRecord *vm;
        const ImageRecord *img;
        int dfd;
        const char *pubkey;
        int r;
        char err[512];
} WorkDiskJob;

static void *work_disk_main(void *p) {
        WorkDiskJob *j = p;
        error_clear();
        j->r = make_work_disk(j->m, j->vm, j->img, j->dfd, j->pubkey);
        if (j->r < 0)
                snprintf(j->err, sizeof(j->err), "%s", error_last_message() ? error_last_message() : strerror(-j->r));
        return NULL;
}

static int root_disk(VmManager *m, const VmRecord *vm, const ImageRecord *img, int dfd, const char *pubkey,
                     VmProgress *p) {
        const char *base = NULL;
        _cleanup_close_ int bfd = open_image_file_dir(m->d, img->rootfs_path, &base);
        if (bfd < 0)
                return error_setf(bfd, "cannot open the directory of %s", img->rootfs_path);
        char address[64];
        snprintf(address, sizeof(address), "%s/%u", vm->ip, host_prefix(m->host));
        GuestPatch patch = {
                .hostname = vm->name,
                .address = address,
                .gateway = host_bridge_ip(m->host),
                .mac = vm->mac,
                .dns = { host_bridge_ip(m->host), NULL },
                .authorized_keys = pubkey,
        };
        DiskCloneMethod used = 0;
        vm_progress(p, vm->id, "disk", "cloning %s", img->rootfs_path);
        int r = rootdisk_create(bfd, base, dfd, "root.img", DISK_CLONE_FILE, &patch, &used);
        if (r < 0)
                return error_setf(r, "root disk: %s", error_last_message() ? error_last_message() : strerror(-r));
        vm_progress(p, vm->id, "disk", "root disk by %s; work disk %llu MiB", disk_clone_method_to_string(used),
                    (unsigned long long) (vm->disk_bytes >> 20));
        return 0;
}

/* Root disk (clone of the image + guest patch) and work disk. */
int vm_make_disks(VmManager *m, const VmRecord *vm, const ImageRecord *img, VmProgress *p) {
        _cleanup_close_ int dfd = vm_dir_open(m, VM_DIR_STATE, vm->id, true);
        if (dfd < 0)
                return error_setf(dfd, "cannot create %s/vms/%s: %s", m->d->paths.state_dir, vm->id, strerror(-dfd));
        _cleanup_free_ char *pubkey = NULL;
        (void) vm_manager_read_pubkey(m, &pubkey);

        WorkDiskJob job = { .m = m, .vm = vm, .img = img, .dfd = dfd, .pubkey = pubkey };
        pthread_t thread;
        bool threaded = pthread_create(&thread, NULL, work_disk_main, &job) == 0;
        int r = root_disk(m, vm, img, dfd, pubkey, p);
        if (threaded)
                (void) pthread_join(thread, NULL);
        else if (r >= 0)
                work_disk_main(&job);
        if (r >= 0 && job.r < 0)
                r = error_setf(job.r, "work disk: %s", job.err);
        if (r < 0) {
                (void) unlinkat(dfd, "root.img", 0);
                (void) unlinkat(dfd, "work.img", 0);
        }
        return r;
}

void vm_remove_files(VmManager *m, const char *id) {
        _cleanup_close_ int dfd = vm_dir_open(m, VM_DIR_STATE, id, false);
        if (dfd >= 0) {
                static const char *const names[] = { "root.img", "work.img", CONSOLE_LOG_NAME, CONSOLE_LOG_OLD_NAME,
                                                     CONSOLE_PIPE_NAME };
                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        (void) unlinkat(dfd, names[i], 0);
        }
        vm_remove_restore_copies(m, id);
        vm_suspend_remove_files(m, id);
        console_stream_close(m->d->consoles, id);
        int r = vm_dir_remove(m, VM_DIR_STATE, id);
        if (r < 0)
                log_warning_errno(r, "cannot remove %s/vms/%s: %m", m->d->paths.state_dir, id);
}
