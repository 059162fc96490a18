/* SPDX-License-Identifier: MIT */
#include "dm-snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "disk-clone.h"
#include "disk-fault.h"
#include "error.h"
#include "fs-util.h"
#include "loopdev.h"
#include "spawn.h"
#include "string-util.h"
#include "undo.h"

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

#define DMSETUP_TIMEOUT (30 * USEC_PER_SEC)
#define DM_CHUNK_SECTORS "8" /* 4 KiB chunks: the page size, dm's default */

static int run_dmsetup(char *const *args) {
        _cleanup_free_ char *exe = find_executable("dmsetup");
        if (!exe && access("/usr/sbin/dmsetup", X_OK) == 0)
                exe = strdup("/usr/sbin/dmsetup");
        if (!exe)
                return error_setf(-ENOENT, "dmsetup not found (install dmsetup)");
        char *argv[12] = { exe };
        for (size_t i = 0; args[i] && i + 2 < ELEMENTSOF(argv); i++)
                argv[i + 1] = args[i];
        _cleanup_free_ char *out = NULL;
        int r = spawn_run_capture(argv, DMSETUP_TIMEOUT, 4096, true, &out);
        if (r < 0)
                return error_setf(r, "cannot run dmsetup: %s", strerror(-r));
        if (r != 0)
                return error_setf(-EIO, "dmsetup %s failed: %s", args[0], out ? out : "");
        return 0;
}

static int undo_loop(const char *node, void *data) {
        return loop_detach(node);
}

static int undo_dm(const char *name, void *data) {
        return dm_snapshot_remove(name);
}

/* Attach the file open on fd and record the detach. */
static int attach_recorded(UndoStack *undo, int fd, bool ro, LoopDevice *ret) {
        int r = loop_attach(fd, LOOP_ATTACH_AUTOCLEAR | (ro ? LOOP_ATTACH_READ_ONLY : 0), ret);
        if (r < 0)
                return r;
        return undo_push(undo, "loop", ret->node, undo_loop, NULL, NULL);
}

int dm_snapshot_assemble(int base_fd, int cow_fd, const char *dm_name, char **ret_device) {
        if (!disk_dm_available())
                return error_setf(-EOPNOTSUPP, "device-mapper not available: /dev/mapper/control missing");
        if (!dm_name || !name_is_valid(dm_name))
                return error_setf(-EINVAL, "invalid dm device name");
        if (base_fd < 0 || cow_fd < 0)
                return -EBADF;
        _cleanup_undo_ UndoStack undo = UNDO_STACK_INIT;
        _cleanup_(loop_device_release) LoopDevice base = LOOP_DEVICE_NULL, cow = LOOP_DEVICE_NULL;
        int r = attach_recorded(&undo, base_fd, true, &base);
        if (r < 0)
                return r;
        if ((r = attach_recorded(&undo, cow_fd, false, &cow)) < 0)
                return r;
        uint64_t bytes = 0;
        if (ioctl(base.fd, BLKGETSIZE64, &bytes) < 0)
                return -errno;
        char table[256];
        snprintf(table, sizeof(table), "0 %" PRIu64 " snapshot %s %s P " DM_CHUNK_SECTORS, bytes / 512, base.node,
                 cow.node);
        if ((r = disk_fault_point("dm-create")) < 0)
                return r;
        char *args[] = { "create", (char *) dm_name, "--table", table, NULL };
        if ((r = run_dmsetup(args)) < 0)
                return r;
        if ((r = undo_push(&undo, "dm", dm_name, undo_dm, NULL, NULL)) < 0)
                return r;
        char *dev = NULL;
        if (asprintf(&dev, "/dev/mapper/%s", dm_name) < 0)
                return -ENOMEM;
        undo_commit(&undo);
        *ret_device = dev;
        return 0; /* our loop fds close here; the dm table keeps the loops */
}

/* Find dm-N whose dm/name is name; -ENOENT when there is none. */
static int dm_find(const char *name, char **ret_sysname) {
        _cleanup_(closedirp) DIR *d = opendir("/sys/block");
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                if (!startswith(de->d_name, "dm-"))
                        continue;
                char rel[300];
                snprintf(rel, sizeof(rel), "%s/dm/name", de->d_name);
                _cleanup_free_ char *s = NULL;
                if (read_file_at(dirfd(d), rel, 4096, &s, NULL) < 0)
                        continue;
                s[strcspn(s, "\n")] = '\0';
                if (streq(s, name))
                        return (*ret_sysname = strdup(de->d_name)) ? 0 : -ENOMEM;
        }
        return -ENOENT;
}

int dm_snapshot_remove(const char *dm_name) {
        _cleanup_free_ char *sys = NULL;
        int r = dm_find(dm_name, &sys);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        char *args[] = { "remove", "--retry", (char *) dm_name, NULL };
        return run_dmsetup(args);
}

void dm_device_free_many(DmDevice *l, size_t n) {
        for (size_t i = 0; l && i < n; i++) {
                free(l[i].name);
                strv_free(l[i].backings);
        }
        free(l);
}

/* Backing files of the loop devices under /sys/block/<sys>/slaves. */
static int dm_slave_backings(int sysfd, const char *sys, char ***ret) {
        char rel[300];
        snprintf(rel, sizeof(rel), "%s/slaves", sys);
        int fd = openat(sysfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        _cleanup_(closedirp) DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        size_t n = 0;
        if (!l)
                return -ENOMEM;
        for (struct dirent *de; (de = readdir(d));) {
                if (!startswith(de->d_name, "loop"))
                        continue;
                snprintf(rel, sizeof(rel), "%s/loop/backing_file", de->d_name);
                char *s = NULL;
                if (read_file_at(dirfd(d), rel, 8192, &s, NULL) < 0)
                        continue;
                s[strcspn(s, "\n")] = '\0';
                char **nl = reallocarray(l, n + 2, sizeof(char *));
                if (!nl) {
                        free(s);
                        return -ENOMEM;
                }
                l = nl;
                l[n++] = s;
                l[n] = NULL;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int dm_list(DmDevice **ret, size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = opendir("/sys/block");
        if (!d)
                return -errno;
        DmDevice *list = NULL;
        size_t n = 0;
        int r = 0;
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                if (!startswith(de->d_name, "dm-"))
                        continue;
                char rel[300];
                snprintf(rel, sizeof(rel), "%s/dm/name", de->d_name);
                DmDevice dev = {};
                if (read_file_at(dirfd(d), rel, 4096, &dev.name, NULL) < 0)
                        continue; /* vanished meanwhile */
                dev.name[strcspn(dev.name, "\n")] = '\0';
                r = dm_slave_backings(dirfd(d), de->d_name, &dev.backings);
                if (r == -ENOENT)
                        r = 0; /* no slaves directory: nothing stacked below */
                DmDevice *nl = r < 0 ? NULL : reallocarray(list, n + 1, sizeof(DmDevice));
                if (!nl) {
                        free(dev.name);
                        strv_free(dev.backings);
                        r = r < 0 ? r : -ENOMEM;
                        break;
                }
                list = nl;
                list[n++] = dev;
        }
        if (r < 0) {
                dm_device_free_many(list, n);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}
