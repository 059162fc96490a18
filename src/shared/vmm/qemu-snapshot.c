/* SPDX-License-Identifier: MIT */
/* Saving and loading a QEMU VM's state: the migration stream written to a
 * file QEMU receives as a file descriptor (QMP getfd, "fd:" URI; no shell
 * and no path on QEMU's side), and read back the same way by a QEMU started
 * with "-incoming defer". Progress is followed through QMP MIGRATION events
 * with query-migrate as the authority, so nothing sleeps. */
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "qemu-qmp.h"
#include "string-util.h"

#define QMP_COMMAND_TIMEOUT (10 * USEC_PER_SEC)
#define STATE_FDNAME "banger-state"
#define STATE_TMP "." VMM_STATE_FILE ".tmp"
/* Bytes per second: QEMU's default (32 MiB/s) is meant for live migration
 * over a network; a paused VM saved to a local file should not be throttled. */
#define MIGRATE_MAX_BANDWIDTH (1ULL << 40)

static usec_t left(usec_t deadline) {
        usec_t now = now_monotonic();
        return now < deadline ? MIN(deadline - now, QMP_COMMAND_TIMEOUT) : 0;
}

/* MIGRATION events on, and no bandwidth limit. Both sides of a migration
 * take the same capabilities. */
static int migration_setup(QmpClient *c, bool outgoing, usec_t deadline) {
        _cleanup_(qmp_json_decrefp) json_t *caps =
                json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "events", "state", 1);
        if (!caps)
                return -ENOMEM;
        int r = qmp_client_execute(c, "migrate-set-capabilities", caps, left(deadline), NULL);
        if (r < 0 || !outgoing)
                return r;
        _cleanup_(qmp_json_decrefp) json_t *params =
                json_pack("{s:I}", "max-bandwidth", (json_int_t) MIGRATE_MAX_BANDWIDTH);
        if (!params)
                return -ENOMEM;
        return qmp_client_execute(c, "migrate-set-parameters", params, left(deadline), NULL);
}

/* Until query-migrate says completed (0) or failed; between queries, wait
 * for the next MIGRATION event. */
static int migration_wait(QmpClient *c, const char *what, usec_t deadline) {
        for (;;) {
                _cleanup_(qmp_json_decrefp) json_t *info = NULL;
                int r = qmp_client_execute(c, "query-migrate", NULL, left(deadline), &info);
                if (r < 0)
                        return r;
                const char *status = json_string_value(json_object_get(info, "status"));
                if (streq_ptr(status, "completed"))
                        return 0;
                if (streq_ptr(status, "failed") || streq_ptr(status, "cancelled")) {
                        const char *desc = json_string_value(json_object_get(info, "error-desc"));
                        return error_setf(-EIO, "QEMU failed %s: %s", what, desc ? desc : status);
                }
                r = qmp_client_wait_event(c, "MIGRATION", deadline, NULL);
                if (r == -ETIMEDOUT)
                        return error_setf(r, "QEMU did not finish %s in time", what);
                if (r < 0)
                        return r;
        }
}

/* Open the temporary state file, born 0600; a leftover of an earlier,
 * interrupted save is replaced. */
static int state_tmp_create(int dfd) {
        for (int attempt = 0;; attempt++) {
                int fd = openat(dfd, STATE_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0 || errno != EEXIST || attempt > 0)
                        return fd >= 0 ? fd : -errno;
                if (unlinkat(dfd, STATE_TMP, 0) < 0)
                        return -errno;
        }
}

/* Either side of a migration through fd: setup, hand QEMU the descriptor,
 * command ("migrate" or "migrate-incoming") on the "fd:" URI, wait. */
static int migrate_fd(QmpClient *c, const char *command, int fd, const char *what, usec_t deadline) {
        int r = migration_setup(c, streq(command, "migrate"), deadline);
        if (r >= 0)
                r = qmp_client_add_fd(c, STATE_FDNAME, fd, left(deadline));
        if (r < 0)
                return r;
        _cleanup_(qmp_json_decrefp) json_t *args = json_pack("{s:s}", "uri", "fd:" STATE_FDNAME);
        if (!args)
                return -ENOMEM;
        r = qmp_client_execute(c, command, args, left(deadline), NULL);
        return r < 0 ? r : migration_wait(c, what, deadline);
}

static int save_to_fd(QmpClient *c, int fd, usec_t deadline) {
        int r = qmp_client_execute(c, "stop", NULL, left(deadline), NULL);
        if (r >= 0)
                r = migrate_fd(c, "migrate", fd, "saving the VM state", deadline);
        if (r < 0)
                /* Stop a migration still writing into the file we remove. */
                (void) qmp_client_execute(c, "migrate_cancel", NULL, left(deadline), NULL);
        return r;
}

static int state_commit(int dfd, int fd, VmmSavedState *ret) {
        struct stat st;
        if (fsync(fd) < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size == 0)
                return error_setf(-EIO, "QEMU wrote an empty state file");
        if (renameat(dfd, STATE_TMP, dfd, VMM_STATE_FILE) < 0 || fsync(dfd) < 0)
                return -errno;
        *ret = (VmmSavedState){ .state_bytes = (uint64_t) st.st_size };
        return 0;
}

int qemu_save_state(VmmInstance *vm, const char *dir, usec_t timeout, VmmSavedState *ret) {
        if (!vm || !vm->api_socket || !dir || !ret)
                return -EINVAL;
        usec_t deadline = deadline_from_timeout(timeout);
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        if (dfd < 0)
                return error_setf(dfd, "cannot open the state directory %s: %s", dir, strerror(-dfd));
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        int r = qmp_client_connect(vm->api_socket, left(deadline), &c);
        if (r == -ENOENT || r == -ECONNREFUSED)
                return error_setf(-ESRCH, "QEMU is not running (nothing listens on %s)", vm->api_socket);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = state_tmp_create(dfd);
        if (fd < 0)
                return error_setf(fd, "cannot create a state file in %s: %s", dir, strerror(-fd));
        usec_t t0 = now_monotonic();
        r = save_to_fd(c, fd, deadline);
        if (r >= 0)
                r = state_commit(dfd, fd, ret);
        if (r < 0) {
                (void) unlinkat(dfd, STATE_TMP, 0);
                return r;
        }
        log_debug("QEMU saved %llu bytes of state in %llu ms", (unsigned long long) ret->state_bytes,
                  (unsigned long long) ((now_monotonic() - t0) / USEC_PER_MSEC));
        return 0;
}

/* migrate_cancel, then until query-migrate says nothing runs. */
int qemu_cancel_save(VmmInstance *vm, usec_t timeout) {
        if (!vm || !vm->api_socket)
                return -EINVAL;
        usec_t deadline = deadline_from_timeout(timeout);
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        int r = qmp_client_connect(vm->api_socket, left(deadline), &c);
        if (r >= 0)
                r = qmp_client_execute(c, "migrate_cancel", NULL, left(deadline), NULL);
        while (r >= 0) {
                _cleanup_(qmp_json_decrefp) json_t *info = NULL;
                r = qmp_client_execute(c, "query-migrate", NULL, left(deadline), &info);
                const char *status = json_string_value(json_object_get(info, "status"));
                if (r < 0 || !status || streq(status, "none") || streq(status, "completed") ||
                    streq(status, "failed") || streq(status, "cancelled"))
                        break;
                if (now_monotonic() >= deadline)
                        return error_setf(-ETIMEDOUT, "QEMU did not end the interrupted save in time");
                /* The save turned MIGRATION events on; ask again at the next or soon. */
                r = qmp_client_wait_event(c, "MIGRATION", MIN(deadline, now_monotonic() + 200 * USEC_PER_MSEC), NULL);
                if (r == -ETIMEDOUT)
                        r = 0;
        }
        return r < 0 ? r : 0;
}

int qemu_load_state(const char *qmp_socket, const char *dir, usec_t deadline) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        if (dfd < 0)
                return error_setf(dfd, "cannot open the saved state in %s: %s", dir, strerror(-dfd));
        _cleanup_close_ int fd = openat(dfd, VMM_STATE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return error_setf(-errno, "the saved state %s/%s cannot be opened: %m", dir, VMM_STATE_FILE);
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        int r = qmp_client_connect(qmp_socket, left(deadline), &c);
        return r < 0 ? r : migrate_fd(c, "migrate-incoming", fd, "loading the saved state", deadline);
}

int qemu_version(const char *binary, char **ret) {
        return vmm_binary_version(binary && *binary ? binary : QEMU_DEFAULT_BINARY, ret);
}
