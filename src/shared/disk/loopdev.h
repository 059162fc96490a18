/* SPDX-License-Identifier: MIT */
#pragma once

/* Loop devices: attach a backing file (by fd, so the file was opened safely
 * beneath the state directory), detach with retry, and list what is bound to
 * which file so reconcile can find devices backed by managed files. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

enum {
        LOOP_ATTACH_READ_ONLY = 1 << 0,
        /* Detach automatically when the last opener (our fd, a dm table, a
         * mount) goes away: nothing leaks if the caller crashes. */
        LOOP_ATTACH_AUTOCLEAR = 1 << 1,
};

typedef struct LoopDevice {
        int nr;
        int fd;     /* open on the device node; -EBADF once released */
        char *node; /* "/dev/loopN" */
} LoopDevice;

#define LOOP_DEVICE_NULL ((LoopDevice){ .nr = -1, .fd = -EBADF })

/* Bind backing_fd to a free loop device (LOOP_CTL_GET_FREE + LOOP_CONFIGURE,
 * retrying when another process wins the race for the same device). */
int loop_attach(int backing_fd, unsigned flags, LoopDevice *ret);

/* Close our fd (with AUTOCLEAR this lets the device go once unused). */
void loop_device_release(LoopDevice *d);
/* Detach explicitly and release. */
int loop_device_detach(LoopDevice *d);

/* Detach /dev/loopN: LOOP_CLR_FD, retrying -EBUSY with backoff; a device
 * already unbound or gone is success. If the device is still open (e.g.
 * mounted) the kernel defers the detach to the last close. */
int loop_detach(const char *node);

typedef struct LoopInfo {
        char *node;    /* "/dev/loopN" */
        char *backing; /* backing file path as the kernel reports it */
        bool deleted;  /* backing file was unlinked (" (deleted)" stripped) */
} LoopInfo;

void loop_info_free_many(LoopInfo *l, size_t n);

/* Every bound loop device with its backing file (/sys/block/loop*). */
int loop_list(LoopInfo **ret, size_t *ret_n);

/* Only devices whose backing file lies under dir (an absolute path). */
int loop_list_beneath(const char *dir, LoopInfo **ret, size_t *ret_n);

/* true when path is dir itself or below it (string check on clean paths). */
bool path_is_beneath(const char *path, const char *dir);

/* Is /dev/loop<nr> bound to the file with this st_dev/st_ino (as the kernel
 * recorded them at attach, LOOP_GET_STATUS64)? 1 yes, 0 no or unbound. */
int loop_is_bound_to(int nr, dev_t dev, ino_t ino);

/* A bound loop device whose backing file is st_dev/st_ino, whatever name
 * the file has now: 1 with *ret_nr, 0 when there is none. */
int loop_find_by_backing(dev_t dev, ino_t ino, int *ret_nr);
