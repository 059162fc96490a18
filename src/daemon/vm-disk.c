/* SPDX-License-Identifier: MIT */
/* A VM's disks: the root disk (a clone of the image, patched with the VM's
 * hostname, network and keys) and the work disk. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "ext4-edit.h"
#include "fs-util.h"
#include "guest-patch.h"
#include "log.h"
#include "rootdisk.h"
#include "vm-internal.h"
#include "workdisk.h"

/* The work disk is mounted on /root in the guest, over the root disk's
 * /root: root's authorized_keys must be on it too, or they are hidden. */
static int workdisk_add_keys(int dfd, const char *pubkey) {
        _cleanup_close_ int fd = openat(dfd, "work.img", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        Ext4Image *img = NULL;
        int r = ext4_image_open_fd(fd, &img);
        if (r < 0)
                return r;
        r = ext4_mkdir_p(img, "/.ssh", 0700, 0, 0);
        if (r >= 0)
                r = ext4_write_file(img, "/.ssh/authorized_keys", pubkey, strlen(pubkey), 0600, 0, 0);
        if (r < 0) {
                ext4_image_abort(img);
                return r;
        }
        return ext4_image_close(img);
}

/* Root disk (clone of the image + guest patch) and work disk. */
int vm_make_disks(VmManager *m, const VmRecord *vm, const ImageRecord *img, VmProgress *p) {
        _cleanup_free_ char *dir = vm_state_dir(m, vm->id);
        if (!dir)
                return -ENOMEM;
        int r = mkdirat_private(AT_FDCWD, dir, 0700);
        if (r < 0)
                return error_setf(r, "cannot create %s: %m", dir);
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        if (dfd < 0)
                return error_setf(dfd, "cannot open %s", dir);

        _cleanup_free_ char *base = strdup(img->rootfs_path);
        _cleanup_free_ char *base2 = strdup(img->rootfs_path);
        if (!base || !base2)
                return -ENOMEM;
        _cleanup_close_ int bfd = open_dir_nofollow(AT_FDCWD, dirname(base));
        if (bfd < 0)
                return error_setf(bfd, "cannot open the directory of %s", img->rootfs_path);

        _cleanup_free_ char *pubkey = NULL;
        (void) vm_manager_read_pubkey(m, &pubkey);
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
        r = rootdisk_create(bfd, basename(base2), dfd, "root.img", DISK_CLONE_FILE, &patch, &used);
        if (r < 0)
                return error_setf(r, "root disk: %s", error_last_message() ? error_last_message() : strerror(-r));
        vm_progress(p, vm->id, "disk", "root disk by %s; work disk %llu MiB", disk_clone_method_to_string(used),
                    (unsigned long long) (vm->disk_bytes >> 20));
        if (img->work_seed_path) {
                _cleanup_free_ char *sd = strdup(img->work_seed_path), *sn = strdup(img->work_seed_path);
                _cleanup_close_ int sfd = sd ? open_dir_nofollow(AT_FDCWD, dirname(sd)) : -ENOMEM;
                r = sfd < 0 ? sfd
                            : workdisk_from_seed(sfd, basename(sn), dfd, "work.img", vm->disk_bytes, DISK_CLONE_FILE,
                                                 NULL);
        } else
                r = workdisk_create(dfd, "work.img", vm->disk_bytes);
        if (r >= 0 && pubkey)
                r = workdisk_add_keys(dfd, pubkey);
        if (r < 0) {
                (void) unlinkat(dfd, "root.img", 0);
                (void) unlinkat(dfd, "work.img", 0);
                return error_setf(r, "work disk: %s", error_last_message() ? error_last_message() : strerror(-r));
        }
        return 0;
}

void vm_remove_files(VmManager *m, const char *id) {
        _cleanup_free_ char *dir = vm_state_dir(m, id);
        _cleanup_close_ int dfd = dir ? open_dir_nofollow(AT_FDCWD, dir) : -EBADF;
        if (dfd >= 0) {
                static const char *const names[] = { "root.img", "work.img", "console.log" };
                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        (void) unlinkat(dfd, names[i], 0);
        }
        if (dir && rmdir(dir) < 0 && errno != ENOENT)
                log_warning("cannot remove %s: %m", dir);
}
