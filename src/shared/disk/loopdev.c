/* SPDX-License-Identifier: MIT */
#include "loopdev.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "disk-fault.h"
#include "error.h"
#include "fs-util.h"
#include "string-util.h"
#include "time-util.h"

#define LOOP_ATTACH_TRIES 16
#define LOOP_DETACH_TRIES 10

static int loop_get_free(void) {
        int r = disk_fault_point("loop-get-free");
        if (r < 0)
                return r;
        _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
                return error_setf(-errno, "cannot open /dev/loop-control: %s", strerror(errno));
        int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (nr < 0)
                return error_setf(-errno, "LOOP_CTL_GET_FREE failed: %s", strerror(errno));
        return nr;
}

/* One attempt; -EBUSY means another process bound the device first. */
static int loop_try_configure(int nr, int backing_fd, unsigned flags, int *ret_fd) {
        char node[32];
        snprintf(node, sizeof(node), "/dev/loop%d", nr);
        int r = disk_fault_point("loop-open");
        if (r < 0)
                return r;
        int oflags = (flags & LOOP_ATTACH_READ_ONLY) ? O_RDONLY : O_RDWR;
        _cleanup_close_ int fd = open(node, oflags | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return error_setf(-errno, "cannot open %s: %s", node, strerror(errno));
        r = disk_fault_point("loop-configure");
        if (r < 0)
                return r;
        struct loop_config cfg = { .fd = (unsigned) backing_fd };
        if (flags & LOOP_ATTACH_READ_ONLY)
                cfg.info.lo_flags |= LO_FLAGS_READ_ONLY;
        if (flags & LOOP_ATTACH_AUTOCLEAR)
                cfg.info.lo_flags |= LO_FLAGS_AUTOCLEAR;
        if (ioctl(fd, LOOP_CONFIGURE, &cfg) < 0) {
                if (errno == EBUSY)
                        return -EBUSY;
                return error_setf(-errno, "LOOP_CONFIGURE on %s failed: %s", node, strerror(errno));
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int loop_attach(int backing_fd, unsigned flags, LoopDevice *ret) {
        for (unsigned i = 0; i < LOOP_ATTACH_TRIES; i++) {
                int nr = loop_get_free();
                if (nr < 0)
                        return nr;
                _cleanup_close_ int fd = -EBADF;
                int r = loop_try_configure(nr, backing_fd, flags, &fd);
                if (r == -EBUSY)
                        continue;
                if (r < 0)
                        return r;
                char *node = NULL;
                if (asprintf(&node, "/dev/loop%d", nr) < 0) {
                        (void) ioctl(fd, LOOP_CLR_FD, 0);
                        return -ENOMEM;
                }
                *ret = (LoopDevice){ .nr = nr, .fd = TAKE_FD(fd), .node = node };
                return 0;
        }
        return error_setf(-EBUSY, "no free loop device after %d attempts", LOOP_ATTACH_TRIES);
}

void loop_device_release(LoopDevice *d) {
        if (!d)
                return;
        d->fd = safe_close(d->fd);
        free(d->node);
        *d = LOOP_DEVICE_NULL;
}

int loop_device_detach(LoopDevice *d) {
        int r = d->node ? loop_detach(d->node) : 0;
        loop_device_release(d);
        return r;
}

int loop_detach(const char *node) {
        _cleanup_close_ int fd = open(node, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT || errno == ENXIO || errno == ENODEV ? 0 : -errno;
        unsigned delay = 10;
        for (unsigned i = 0;; i++) {
                if (ioctl(fd, LOOP_CLR_FD, 0) >= 0)
                        return 0;
                if (errno == ENXIO) /* not bound: already detached */
                        return 0;
                if (errno != EBUSY || i >= LOOP_DETACH_TRIES)
                        return error_setf(-errno, "cannot detach %s: %s", node, strerror(errno));
                sleep_ms(delay);
                delay = MIN(delay * 2, 320u);
        }
}

void loop_info_free_many(LoopInfo *l, size_t n) {
        for (size_t i = 0; l && i < n; i++) {
                free(l[i].node);
                free(l[i].backing);
        }
        free(l);
}

bool path_is_beneath(const char *path, const char *dir) {
        size_t l = strlen(dir);
        while (l > 1 && dir[l - 1] == '/')
                l--;
        if (strncmp(path, dir, l) != 0)
                return false;
        return path[l] == '\0' || path[l] == '/' || (l == 1 && dir[0] == '/');
}

/* Read /sys/block/<name>/loop/backing_file; -ENOENT when unbound. */
static int loop_read_backing(int sysfd, const char *name, LoopInfo *ret) {
        char rel[300];
        snprintf(rel, sizeof(rel), "%s/loop/backing_file", name);
        _cleanup_free_ char *s = NULL;
        int r = read_file_at(sysfd, rel, 8192, &s, NULL);
        if (r < 0)
                return r;
        s[strcspn(s, "\n")] = '\0';
        bool deleted = endswith(s, " (deleted)");
        if (deleted)
                s[strlen(s) - strlen(" (deleted)")] = '\0';
        char *node = NULL;
        if (asprintf(&node, "/dev/%s", name) < 0)
                return -ENOMEM;
        *ret = (LoopInfo){ .node = node, .backing = TAKE_PTR(s), .deleted = deleted };
        return 0;
}

static int loop_list_filtered(const char *dir, LoopInfo **ret, size_t *ret_n) {
        DIR *d = opendir("/sys/block");
        if (!d)
                return -errno;
        LoopInfo *list = NULL;
        size_t n = 0;
        int r = 0;
        for (struct dirent *de; (de = readdir(d));) {
                if (!startswith(de->d_name, "loop"))
                        continue;
                LoopInfo li;
                int k = loop_read_backing(dirfd(d), de->d_name, &li);
                if (k == -ENOENT)
                        continue; /* not bound (sysfs reading races are fine) */
                if (k < 0) {
                        r = k;
                        break;
                }
                if (dir && !path_is_beneath(li.backing, dir)) {
                        free(li.node);
                        free(li.backing);
                        continue;
                }
                LoopInfo *nl = reallocarray(list, n + 1, sizeof(LoopInfo));
                if (!nl) {
                        free(li.node);
                        free(li.backing);
                        r = -ENOMEM;
                        break;
                }
                list = nl;
                list[n++] = li;
        }
        closedir(d);
        if (r < 0) {
                loop_info_free_many(list, n);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int loop_list(LoopInfo **ret, size_t *ret_n) {
        return loop_list_filtered(NULL, ret, ret_n);
}

int loop_list_beneath(const char *dir, LoopInfo **ret, size_t *ret_n) {
        if (!dir || dir[0] != '/')
                return -EINVAL;
        return loop_list_filtered(dir, ret, ret_n);
}

/* The backing file's st_dev/st_ino of /dev/loop<nr>: 0, or -ENXIO when the
 * device is unbound or gone. */
static int loop_backing_id(int nr, dev_t *ret_dev, ino_t *ret_ino) {
        char node[32];
        snprintf(node, sizeof(node), "/dev/loop%d", nr);
        _cleanup_close_ int fd = open(node, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return errno == ENOENT || errno == ENODEV ? -ENXIO : -errno;
        struct loop_info64 info;
        if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
                return -errno; /* ENXIO: not bound */
        *ret_dev = (dev_t) info.lo_device;
        *ret_ino = (ino_t) info.lo_inode;
        return 0;
}

int loop_is_bound_to(int nr, dev_t dev, ino_t ino) {
        dev_t d;
        ino_t i;
        int r = loop_backing_id(nr, &d, &i);
        if (r == -ENXIO)
                return 0;
        if (r < 0)
                return r;
        return d == dev && i == ino;
}

int loop_find_by_backing(dev_t dev, ino_t ino, int *ret_nr) {
        DIR *d = opendir("/sys/block");
        if (!d)
                return -errno;
        int r = 0;
        for (struct dirent *de; r == 0 && (de = readdir(d));) {
                const char *n = startswith(de->d_name, "loop");
                if (!n || !*n || strlen(n) > 7 || strspn(n, "0123456789") != strlen(n))
                        continue;
                char rel[300];
                snprintf(rel, sizeof(rel), "%s/loop/backing_file", de->d_name);
                if (faccessat(dirfd(d), rel, F_OK, 0) < 0)
                        continue; /* unbound */
                int nr = atoi(n);
                r = loop_is_bound_to(nr, dev, ino);
                if (r > 0)
                        *ret_nr = nr;
        }
        closedir(d);
        return r;
}
