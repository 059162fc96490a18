/* SPDX-License-Identifier: MIT */
#include "workdisk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk-fault.h"
#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "path-beneath.h"
#include "spawn.h"
#include "undo.h"

#define TOOL_TIMEOUT (120 * USEC_PER_SEC)
#define TOOL_OUTPUT_MAX 8192
#define TOOL_ARGS_MAX 16

/* The daemon's PATH may lack sbin; e2fsprogs live there on Debian. */
static char *find_sbin_tool(const char *name) {
        char *p = find_executable(name);
        if (p)
                return p;
        const char *dirs[] = { "/usr/sbin", "/sbin" };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                char *c = NULL;
                if (asprintf(&c, "%s/%s", dirs[i], name) < 0)
                        return NULL;
                if (access(c, X_OK) == 0)
                        return c;
                free(c);
        }
        return NULL;
}

static void trim_trailing(char *s) {
        size_t l = strlen(s);
        while (l > 0 && (s[l - 1] == '\n' || s[l - 1] == ' '))
                s[--l] = '\0';
}

int disk_run_e2fs_tool(const char *tool, const char *const *args, int fd, int ok_max) {
        _cleanup_free_ char *exe = find_sbin_tool(tool);
        if (!exe)
                return error_setf(-ENOENT, "%s not found (install e2fsprogs)", tool);
        char dev[64];
        snprintf(dev, sizeof(dev), "/proc/%d/fd/%d", (int) getpid(), fd);
        char *argv[TOOL_ARGS_MAX + 3];
        size_t n = 0;
        argv[n++] = exe;
        for (size_t i = 0; args && args[i]; i++) {
                if (n >= TOOL_ARGS_MAX)
                        return -E2BIG;
                argv[n++] = (char *) args[i];
        }
        argv[n++] = dev;
        argv[n] = NULL;
        _cleanup_free_ char *out = NULL;
        int r = spawn_run_capture(argv, TOOL_TIMEOUT, TOOL_OUTPUT_MAX, true, &out);
        if (r == -ETIMEDOUT)
                return error_setf(r, "%s timed out", tool);
        if (r < 0)
                return error_setf(r, "cannot run %s: %s", tool, strerror(-r));
        if (r > ok_max) {
                if (out)
                        trim_trailing(out);
                return error_setf(-EIO, "%s failed (exit %d): %s", tool, r, out && *out ? out : "(no output)");
        }
        return 0;
}

int workdisk_create(int dirfd, const char *name, uint64_t size) {
        if (size < WORKDISK_MIN_SIZE)
                return error_setf(-EINVAL, "work disk size %llu is below the minimum of 16 MiB",
                                  (unsigned long long) size);
        _cleanup_undo_ UndoStack undo = UNDO_STACK_INIT;
        int r = disk_fault_point("workdisk-create");
        if (r < 0)
                return r;
        _cleanup_close_ int fd = open_beneath(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOCTTY, 0600);
        if (fd < 0)
                return error_setf(fd, "cannot create work disk %s: %s", name, strerror(-fd));
        if ((r = undo_push_unlink(&undo, dirfd, name)) < 0)
                return r;
        if ((r = disk_fault_point("workdisk-truncate")) < 0)
                return r;
        if (ftruncate(fd, (off_t) size) < 0)
                return error_setf(-errno, "cannot size work disk %s: %s", name, strerror(errno));
        if ((r = disk_fault_point("workdisk-mkfs")) < 0)
                return r;
        /* Lazy init and no discard: a fresh sparse file is already zero, so
         * formatting 64 GiB costs the same as 1 GiB. */
        /* metadata_csum_seed: a clone of a template can take a UUID of its
         * own without every checksum being rewritten. */
        const char *args[] = { "-F", "-q",
                               "-b", "4096",
                               "-m", "0",
                               "-L", "banger-work",
                               "-O", "metadata_csum_seed",
                               "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                               NULL };
        if ((r = disk_run_e2fs_tool("mkfs.ext4", args, fd, 0)) < 0)
                return r;
        if ((r = disk_sync_commit(fd, name, "workdisk-fsync", &undo)) < 0)
                return r;
        return 0;
}

static int workdisk_grow(int fd, const char *name, uint64_t size) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (size == 0 || size == (uint64_t) st.st_size)
                return 0;
        if (size < (uint64_t) st.st_size)
                return error_setf(-EINVAL, "work disk size %llu is smaller than the seed (%llu bytes)",
                                  (unsigned long long) size, (unsigned long long) st.st_size);
        int r = disk_fault_point("workdisk-extend");
        if (r < 0)
                return r;
        if (ftruncate(fd, (off_t) size) < 0)
                return error_setf(-errno, "cannot extend %s: %s", name, strerror(errno));
        if ((r = disk_fault_point("workdisk-resize2fs")) < 0)
                return r;
        const char *args[] = { NULL };
        return disk_run_e2fs_tool("resize2fs", args, fd, 0);
}

int workdisk_from_seed(int seed_dirfd, const char *seed_name, int dirfd, const char *name, uint64_t size,
                       DiskCloneMethod allowed, DiskCloneMethod *ret_used) {
        _cleanup_undo_ UndoStack undo = UNDO_STACK_INIT;
        DiskCloneMethod used = 0;
        /* The work disk must be a complete file: dm-snapshot is not an option. */
        _cleanup_close_ int fd = disk_clone_file_open(seed_dirfd, seed_name, dirfd, name, allowed, &undo, &used);
        if (fd < 0)
                return fd;
        int r;
        if ((r = disk_fault_point("workdisk-e2fsck")) < 0)
                return r;
        /* resize2fs insists on a freshly checked filesystem; exit 1 means
         * e2fsck fixed something, which is fine for a just-cloned seed. */
        const char *fsck_args[] = { "-f", "-p", NULL };
        if ((r = disk_run_e2fs_tool("e2fsck", fsck_args, fd, 1)) < 0)
                return r;
        if ((r = workdisk_grow(fd, name, size)) < 0)
                return r;
        if ((r = disk_sync_commit(fd, name, "workdisk-fsync", &undo)) < 0)
                return r;
        if (ret_used)
                *ret_used = used;
        return 0;
}

/* The template's name for size bytes; 1 when it is there. */
static int template_lookup(int template_dirfd, uint64_t size, char name[static 64]) {
        snprintf(name, 64, "work-%llu.ext4", (unsigned long long) size);
        struct stat st;
        if (fstatat(template_dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return S_ISREG(st.st_mode) && (uint64_t) st.st_size == size ? 1 : -EBADFD;
        return errno == ENOENT ? 0 : -errno;
}

static int template_count(int template_dirfd) {
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(template_dirfd, ".", &d);
        if (r < 0)
                return r;
        int n = 0;
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] != '.';
        return n;
}

/* Format a template under a name of this thread's, then rename it into
 * place (a concurrent create may have placed one: either will do). */
static int template_make(int template_dirfd, const char *name, uint64_t size) {
        char tmp[96];
        snprintf(tmp, sizeof(tmp), ".%s.%d", name, (int) gettid());
        (void) unlinkat(template_dirfd, tmp, 0);
        int r = workdisk_create(template_dirfd, tmp, size);
        if (r < 0)
                return r;
        if (renameat(template_dirfd, tmp, template_dirfd, name) < 0) {
                r = -errno;
                (void) unlinkat(template_dirfd, tmp, 0);
                return error_setf(r, "cannot rename work disk template %s: %s", name, strerror(-r));
        }
        return 0;
}

int workdisk_create_cached(int template_dirfd, int dirfd, const char *name, uint64_t size, bool *ret_cloned) {
        if (size < WORKDISK_MIN_SIZE)
                return workdisk_create(dirfd, name, size); /* refused there */
        char tname[64];
        int r = template_lookup(template_dirfd, size, tname);
        if (r == 0) {
                int n = template_count(template_dirfd);
                if (n < 0 || n >= WORKDISK_TEMPLATES_MAX) {
                        *ret_cloned = false;
                        return workdisk_create(dirfd, name, size);
                }
                r = template_make(template_dirfd, tname, size);
        }
        if (r < 0)
                return r;
        _cleanup_undo_ UndoStack undo = UNDO_STACK_INIT;
        _cleanup_close_ int fd = disk_clone_file_open(template_dirfd, tname, dirfd, name, DISK_CLONE_FILE, &undo, NULL);
        if (fd < 0)
                return fd;
        /* Not synced: the caller's edit of the clone (a UUID of its own)
         * ends with the flush that syncs it. */
        undo_commit(&undo);
        *ret_cloned = true;
        return 0;
}
