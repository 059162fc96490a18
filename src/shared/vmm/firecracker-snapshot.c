/* SPDX-License-Identifier: MIT */
/* Firecracker snapshots: PUT /snapshot/create of a paused VM (a Full
 * snapshot: state file plus memory file, each written under a temporary name
 * and renamed when Firecracker reports success), the version a snapshot
 * belongs to, and the run-dir names that keep a saved state free of any one
 * VM's paths. The load itself is fc_configure()'s PUT /snapshot/load. */
#include "firecracker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "firecracker-api.h"
#include "fs-util.h"
#include "log.h"
#include "string-util.h"

#define STATE_TMP "." VMM_STATE_FILE ".tmp"
#define MEMORY_TMP "." VMM_MEMORY_FILE ".tmp"
#define DRIVE_NAME_MAX 96

static int link_drive(int dfd, const VmmDrive *d, char *name, size_t size) {
        snprintf(name, size, "drive-%s", d->id);
        if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        if (symlinkat(d->path, dfd, name) < 0)
                return error_setf(-errno, "cannot link drive %s into the run dir: %m", d->id);
        return 0;
}

int fc_run_dir_names(const VmmConfig *c, char ***ret_names) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, c->run_dir);
        if (dfd < 0)
                return error_setf(dfd, "cannot open the run dir %s: %s", c->run_dir, strerror(-dfd));
        size_t n = 2 + c->n_drives + (c->restore_dir ? 2 : 0);
        _cleanup_strv_free_ char **names = calloc(n + 1, sizeof(char *));
        if (!names)
                return -ENOMEM;
        names[0] = strdup(c->kernel);
        names[1] = strdup(c->initrd ? c->initrd : "");
        if (!names[0] || !names[1])
                return -ENOMEM;
        for (size_t i = 0; i < c->n_drives; i++) {
                char name[DRIVE_NAME_MAX];
                int r = link_drive(dfd, &c->drives[i], name, sizeof(name));
                if (r < 0)
                        return r;
                if (!(names[2 + i] = strdup(name)))
                        return -ENOMEM;
        }
        if (c->restore_dir) {
                names[2 + c->n_drives] = path_join(c->restore_dir, VMM_STATE_FILE);
                names[3 + c->n_drives] = path_join(c->restore_dir, VMM_MEMORY_FILE);
                if (!names[2 + c->n_drives] || !names[3 + c->n_drives])
                        return -ENOMEM;
        }
        *ret_names = TAKE_PTR(names);
        return 0;
}

int fc_version(const char *binary, char **ret) {
        _cleanup_free_ char *path = fc_resolve_binary(binary);
        if (!path)
                return -ENOENT;
        return vmm_binary_version(path, ret);
}

/* Where Firecracker writes: its chroot in jailer mode (paths as it sees
 * them there), else the target directory itself. */
typedef struct SaveTarget {
        int src_dfd;                            /* directory the files appear in */
        char state[PATH_MAX], memory[PATH_MAX]; /* paths sent to Firecracker */
} SaveTarget;

static int save_target_open(VmmInstance *vm, const char *dir, SaveTarget *t) {
        const char *where = vm->chroot_dir ? vm->chroot_dir : dir;
        t->src_dfd = open_dir_nofollow(AT_FDCWD, where);
        if (t->src_dfd < 0)
                return error_setf(t->src_dfd, "cannot open %s: %s", where, strerror(-t->src_dfd));
        const char *prefix = vm->chroot_dir ? "" : dir;
        snprintf(t->state, sizeof(t->state), "%s/%s", prefix, STATE_TMP);
        snprintf(t->memory, sizeof(t->memory), "%s/%s", prefix, MEMORY_TMP);
        /* Leftovers of an interrupted save would make Firecracker fail. */
        (void) unlinkat(t->src_dfd, STATE_TMP, 0);
        (void) unlinkat(t->src_dfd, MEMORY_TMP, 0);
        return 0;
}

static void save_cleanup(int src_dfd, int dfd) {
        const char *const names[] = { STATE_TMP, MEMORY_TMP };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                (void) unlinkat(src_dfd, names[i], 0);
                (void) unlinkat(dfd, names[i], 0);
        }
}

static int file_size_synced(int dfd, const char *name, uint64_t *ret) {
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fsync(fd) < 0 || fstat(fd, &st) < 0)
                return -errno;
        *ret = (uint64_t) st.st_size;
        return 0;
}

/* Temporary files into the target dir (jailer: out of the chroot), synced,
 * then renamed: the memory file first, so a complete state file always has
 * its memory next to it. */
static int save_commit(int src_dfd, int dfd, VmmSavedState *ret) {
        int r = vmm_move_file(src_dfd, MEMORY_TMP, dfd, MEMORY_TMP);
        if (r >= 0)
                r = vmm_move_file(src_dfd, STATE_TMP, dfd, STATE_TMP);
        if (r >= 0)
                r = file_size_synced(dfd, MEMORY_TMP, &ret->memory_bytes);
        if (r >= 0)
                r = file_size_synced(dfd, STATE_TMP, &ret->state_bytes);
        if (r >= 0 && renameat(dfd, MEMORY_TMP, dfd, VMM_MEMORY_FILE) < 0)
                r = -errno;
        if (r >= 0 && renameat(dfd, STATE_TMP, dfd, VMM_STATE_FILE) < 0)
                r = -errno;
        if (r >= 0 && fsync(dfd) < 0)
                r = -errno;
        return r;
}

int fc_save_state(VmmInstance *vm, const char *dir, usec_t timeout, VmmSavedState *ret) {
        if (!vm || !vm->api_socket || !dir || !ret)
                return -EINVAL;
        _cleanup_free_ char *state = NULL;
        int r = fc_api_get_state(vm->api_socket, MIN(timeout, FC_API_TIMEOUT), &state);
        if (r < 0)
                return r;
        /* Firecracker creates snapshots of paused VMs only. */
        if (streq(state, "Running"))
                r = fc_api_patch_vm(vm->api_socket, "Paused");
        else if (!streq(state, "Paused"))
                r = error_setf(-EBUSY, "Firecracker cannot save a VM that is %s", state);
        if (r < 0)
                return r;
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        if (dfd < 0)
                return error_setf(dfd, "cannot open the state directory %s: %s", dir, strerror(-dfd));
        SaveTarget t = { .src_dfd = -EBADF };
        r = save_target_open(vm, dir, &t);
        _cleanup_close_ int src_dfd = t.src_dfd;
        if (r < 0)
                return r;
        r = fc_api_send(vm->api_socket, "PUT", "/snapshot/create", fc_json_snapshot_create(t.state, t.memory), timeout);
        VmmSavedState saved = {};
        if (r >= 0)
                r = save_commit(src_dfd, dfd, &saved);
        if (r < 0) {
                save_cleanup(src_dfd, dfd);
                return r;
        }
        *ret = saved;
        return 0;
}
