/* SPDX-License-Identifier: MIT */
/* What both drivers need to save and restore a VM's state: the VMM binary's
 * version (a saved state loads only into the version that wrote it) and
 * moving a finished state file into place. */
#include "vmm-driver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "string-util.h"

#define VERSION_TIMEOUT (10 * USEC_PER_SEC)
#define VERSION_OUT_MAX 4096
#define VERSION_LINE_MAX 200

int vmm_binary_version(const char *binary, char **ret) {
        _cleanup_free_ char *path = find_executable(binary);
        if (!path)
                return error_setf(-ENOENT, "VMM binary %s not found", binary);
        char *argv[] = { path, "--version", NULL };
        _cleanup_free_ char *out = NULL;
        int r = spawn_run_capture(argv, VERSION_TIMEOUT, VERSION_OUT_MAX, true, &out);
        if (r < 0)
                return error_setf(r, "cannot run %s --version: %s", path, strerror(-r));
        if (r != 0)
                return error_setf(-ENOEXEC, "%s --version exited with status %d", path, r);
        const char *line = out + strspn(out, " \t\r\n");
        size_t len = strcspn(line, "\r\n");
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
                len--;
        if (len == 0 || len > VERSION_LINE_MAX)
                return error_setf(-EBADMSG, "%s --version printed no usable version line", path);
        char *v = strndup(line, len);
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

int vmm_restore_version_check(const VmmDriver *d, const VmmConfig *c) {
        if (!c->restore_version || !*c->restore_version)
                return error_setf(-EINVAL, "a saved state without its VMM version cannot be restored safely");
        if (c->restore_version_checked)
                return 0;
        _cleanup_free_ char *have = NULL;
        int r = d->version(c->binary, &have);
        if (r < 0)
                return r;
        if (!streq(have, c->restore_version))
                return error_setf(-EPROTONOSUPPORT,
                                  "the state was saved by \"%s\" but this host runs \"%s\"; %s cannot load a state "
                                  "saved by another version",
                                  c->restore_version, have, d->name);
        return 0;
}

int vmm_copy_file_at(int in, int dst_dirfd, const char *dst_name, mode_t mode) {
        _cleanup_close_ int out =
                openat(dst_dirfd, dst_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (out < 0)
                return -errno;
        int r = 0;
        for (;;) {
                ssize_t n = copy_file_range(in, NULL, out, NULL, 1U << 30, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        r = -errno;
                if (n <= 0)
                        break;
        }
        if (r >= 0 && fsync(out) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dst_dirfd, dst_name, 0);
        return r;
}

static int copy_then_unlink(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name) {
        _cleanup_close_ int in = openat(src_dirfd, src_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
                return -errno;
        (void) unlinkat(dst_dirfd, dst_name, 0);
        int r = vmm_copy_file_at(in, dst_dirfd, dst_name, 0600);
        if (r < 0)
                return r;
        return unlinkat(src_dirfd, src_name, 0) < 0 ? -errno : 0;
}

int vmm_move_file(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name) {
        if (renameat(src_dirfd, src_name, dst_dirfd, dst_name) >= 0)
                return 0;
        if (errno != EXDEV)
                return -errno;
        return copy_then_unlink(src_dirfd, src_name, dst_dirfd, dst_name);
}
