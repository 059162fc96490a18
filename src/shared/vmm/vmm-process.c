/* SPDX-License-Identifier: MIT */
/* Host-side process primitives shared by every VMM driver. Stateless: each
 * call gets what it needs as arguments, so any service can use them without
 * reaching back into the daemon. */
#include "vmm-driver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "socket-util.h"
#include "string-util.h"

/* The kernel keeps TASK_COMM_LEN - 1 = 15 bytes of the executable name. */
#define COMM_MAX 15
#define CMDLINE_MAX (64U * 1024U)
#define PIDFILE_MAX 64

static bool comm_matches(const char *actual, const char *want) {
        size_t l = strcspn(actual, "\n");
        size_t w = MIN(strlen(want), (size_t) COMM_MAX);
        return l == w && strncmp(actual, want, w) == 0;
}

int vmm_process_verify(pid_t pid, const char *comm, const char *needle) {
        char dir[32];
        if (pid <= 1 || !comm || !needle || !*needle)
                return -EINVAL;
        snprintf(dir, sizeof(dir), "/proc/%d", (int) pid);
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        if (dfd < 0)
                return dfd == -ENOENT ? -ESRCH : dfd;

        _cleanup_free_ char *c = NULL, *cmdline = NULL;
        size_t len = 0;
        int r = read_virtual_file_at(dfd, "comm", 64, &c, &len);
        if (r < 0)
                return r == -ENOENT ? -ESRCH : r;
        if (!comm_matches(c, comm)) {
                log_debug("pid %d is \"%.*s\", not %s: stale pid", (int) pid, (int) strcspn(c, "\n"), c, comm);
                return -ESRCH;
        }
        r = read_virtual_file_at(dfd, "cmdline", CMDLINE_MAX, &cmdline, &len);
        if (r < 0)
                return r == -ENOENT ? -ESRCH : r;
        /* The needle holds no NUL, so a match never spans two arguments. A
         * zombie has an empty cmdline and fails here too. */
        if (!memmem(cmdline, len, needle, strlen(needle))) {
                log_debug("pid %d (%s) does not mention %s: not this VM", (int) pid, comm, needle);
                return -ESRCH;
        }
        return 0;
}

static bool pidfd_exited(int pidfd) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
}

/* Open the pidfd first and verify afterwards: if the process is still alive
 * after verification, the pidfd and the verified /proc entry are the same
 * process, so a pid recycled in between can never be adopted. */
static int open_verified(pid_t pid, const char *comm, const char *needle, Process *ret) {
        _cleanup_close_ int pidfd = pidfd_open(pid, 0);
        if (pidfd < 0)
                return errno == ESRCH ? -ESRCH : -errno;
        int r = vmm_process_verify(pid, comm, needle);
        if (r < 0)
                return r;
        if (pidfd_exited(pidfd))
                return -ESRCH;
        *ret = (Process){ .pid = pid, .pidfd = TAKE_FD(pidfd) };
        return 0;
}

static int parse_pid(const char *s, pid_t *ret) {
        unsigned long long v;
        _cleanup_free_ char *copy = strndup(s, strcspn(s, "\n"));
        if (!copy)
                return -ENOMEM;
        int r = safe_atou64(copy, &v);
        if (r < 0)
                return r;
        if (v <= 1 || v > INT_MAX)
                return -ERANGE;
        *ret = (pid_t) v;
        return 0;
}

int vmm_process_attach_pidfile(const char *pidfile, const char *comm, const char *needle, Process *ret) {
        _cleanup_free_ char *s = NULL;
        pid_t pid;
        int r = read_file_at(AT_FDCWD, pidfile, PIDFILE_MAX, &s, NULL);
        if (r == -ENOENT)
                return -ESRCH;
        if (r < 0)
                return error_setf(r, "cannot read pidfile %s: %s", pidfile, strerror(-r));
        r = parse_pid(s, &pid);
        if (r < 0)
                return error_setf(-EBADMSG, "pidfile %s does not hold a pid", pidfile);
        return open_verified(pid, comm, needle, ret);
}

int vmm_process_attach_socket(const char *socket_path, const char *comm, const char *needle, Process *ret) {
        _cleanup_close_ int fd = unix_connect(socket_path, 0);
        if (fd == -ENOENT || fd == -ECONNREFUSED)
                return -ESRCH; /* nobody listens: the VMM is gone */
        if (fd < 0)
                return fd;
        struct ucred cred = {};
        socklen_t l = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &l) < 0)
                return -errno;
        if (cred.pid <= 0)
                return -ESRCH;
        return open_verified(cred.pid, comm, needle, ret);
}

static int split_path(const char *path, char **ret_dir, const char **ret_base) {
        const char *slash = strrchr(path, '/');
        if (!slash || !slash[1])
                return -EINVAL;
        char *d = slash == path ? strdup("/") : strndup(path, (size_t) (slash - path));
        if (!d)
                return -ENOMEM;
        *ret_dir = d;
        *ret_base = slash + 1;
        return 0;
}

int vmm_wait_for_path(const char *path, usec_t timeout) {
        _cleanup_free_ char *dir = NULL;
        const char *base;
        int r = split_path(path, &dir, &base);
        if (r < 0)
                return r;
        usec_t deadline = deadline_from_timeout(timeout);
        _cleanup_close_ int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (ifd < 0)
                return -errno;
        if (inotify_add_watch(ifd, dir, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR | IN_DELETE_SELF) < 0)
                return -errno;
        for (;;) {
                /* Checked after the watch exists, so a creation in between is never missed. */
                struct stat st;
                if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        return 0;
                if (errno != ENOENT)
                        return -errno;
                struct pollfd p = { .fd = ifd, .events = POLLIN };
                r = poll(&p, 1, deadline_poll_ms(deadline));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r == 0)
                        return error_setf(-ETIMEDOUT, "timed out waiting for %s to appear", path);
                char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                while (read(ifd, buf, sizeof(buf)) > 0)
                        ;
        }
}

int vmm_open_log(const char *path) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
        if (fd < 0)
                return error_setf(-errno, "cannot open VM log %s: %m", path);
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
                int r = -errno;
                close(fd);
                return error_setf(r, "cannot open VM log %s: %m", path);
        }
        return fd;
}

int vmm_chown_socket(const char *path, uid_t uid, gid_t gid) {
        /* O_PATH so a socket can be opened at all; O_NOFOLLOW so a symlink
         * planted in its place is never followed to some other file. */
        _cleanup_close_ int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return error_setf(-errno, "cannot open socket %s: %m", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode))
                return error_setf(-ENOTSOCK, "%s is not a socket", path);
        if (st.st_uid == uid && st.st_gid == gid)
                return 0;
        if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
                return error_setf(-errno, "cannot hand socket %s to uid %u: %m", path, (unsigned) uid);
        return 0;
}

int vmm_prepare_run_dir(const char *path) {
        int r = mkdirat_private(AT_FDCWD, path, 0700);
        if (r < 0)
                return error_setf(r, "cannot create runtime directory %s: %s", path, strerror(-r));
        _cleanup_close_ int fd = open_dir_nofollow(AT_FDCWD, path);
        if (fd < 0)
                return error_setf(fd, "cannot open runtime directory %s (a symlink?): %s", path, strerror(-fd));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != geteuid())
                return error_setf(-EPERM, "runtime directory %s is owned by uid %u, not by us", path,
                                  (unsigned) st.st_uid);
        /* A directory left behind with looser bits is tightened, never trusted. */
        if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
                return -errno;
        return 0;
}

int vmm_process_kill(Process *p) {
        if (!p || p->pidfd < 0)
                return -ESRCH;
        int r = process_signal(p, SIGKILL);
        if (r < 0 && r != -ESRCH)
                return r;
        r = process_wait(p, 5 * USEC_PER_SEC, NULL);
        if (r < 0 && r != -ESRCH)
                return r;
        process_release(p);
        return 0;
}

/* The whole file, exclusively: the lock says "a VMM of this run dir lives". */
static struct flock whole_file_lock(short type) {
        return (struct flock){ .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
}

static int lock_take(int run_dir_fd, const char *run_dir) {
        _cleanup_close_ int fd = openat(run_dir_fd, VMM_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return error_setf(-errno, "cannot open %s/%s: %m", run_dir, VMM_LOCK_FILE);
        struct flock l = whole_file_lock(F_WRLCK);
        if (fcntl(fd, F_OFD_SETLK, &l) < 0) {
                if (errno == EAGAIN || errno == EACCES)
                        return error_setf(-EBUSY, "a VMM of this VM still runs (it holds %s/%s)", run_dir,
                                          VMM_LOCK_FILE);
                return error_setf(-errno, "cannot lock %s/%s: %m", run_dir, VMM_LOCK_FILE);
        }
        return TAKE_FD(fd);
}

int vmm_lock_held(const char *run_dir) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, run_dir);
        if (dfd < 0)
                return dfd == -ENOENT ? 0 : dfd;
        _cleanup_close_ int fd = openat(dfd, VMM_LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        struct flock l = whole_file_lock(F_WRLCK);
        if (fcntl(fd, F_OFD_GETLK, &l) < 0)
                return -errno;
        return l.l_type != F_UNLCK;
}

int vmm_lock_check_free(const char *run_dir) {
        int r = vmm_lock_held(run_dir);
        if (r < 0)
                return error_setf(r, "cannot check %s/%s: %s", run_dir, VMM_LOCK_FILE, strerror(-r));
        if (r > 0)
                return error_setf(-EBUSY, "a VMM of this VM still runs (it holds %s/%s)", run_dir, VMM_LOCK_FILE);
        return 0;
}

int vmm_spawn(char *const argv[], SpawnOptions *o, const char *run_dir, const char *pidfile_name, Process *ret) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, run_dir);
        if (dfd < 0)
                return error_setf(dfd, "cannot open runtime directory %s: %s", run_dir, strerror(-dfd));
        /* Taken before the fork and handed to the child, which keeps it across
         * exec: from the fork on, the lock is held exactly as long as the VMM
         * (or what it is yet to become) lives, so recovery can tell "gone" from
         * "not identifiable yet", whenever the daemon died. */
        _cleanup_close_ int lock = lock_take(dfd, run_dir);
        if (lock < 0)
                return lock;
        o->keep_fd = lock;
        o->pidfile_dir_fd = dfd;
        o->pidfile_name = pidfile_name;
        int r = spawn_process(argv, o, ret);
        o->keep_fd = o->pidfile_dir_fd = -EBADF;
        o->pidfile_name = NULL;
        if (r < 0)
                return error_setf(r, "cannot start %s: %s", argv[0], strerror(-r));
        return 0;
}
