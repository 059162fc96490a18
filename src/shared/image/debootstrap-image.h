/* SPDX-License-Identifier: MIT */
#pragma once

/* The default image: a Debian root filesystem made with debootstrap (no VM
 * needed), with systemd, openssh-server and banger-agent, paired with the
 * kernel of Debian's linux-image-amd64 of the same suite.
 *
 * Stages, reported through the progress callback:
 *   debootstrap  debootstrap --variant=minbase into a temporary directory
 *                (detail: its "I: ..." lines)
 *   kernel       the kernel package named by the suite's verified index,
 *                downloaded (bytes) and unpacked; its modules go into the
 *                rootfs; imported into the kernel store as "<name>-kernel"
 *   initramfs    busybox + virtio/ext4 modules + switch_root
 *   rootfs       guest configuration, then mkfs.ext4 -d (nothing mounted)
 *   register     the image row
 *
 * Files: <state>/images/<name>/rootfs.ext4. Everything is built under
 * <state>/images/.tmp-<name>-XXXXXX and removed on failure; the kernel is
 * removed again if the image cannot be registered, so nothing is left
 * half-registered. Needs root (debootstrap creates device nodes and
 * root-owned files): -EPERM otherwise. A progress that says cancel
 * (progress_check) stops the build between stages and in debootstrap's run
 * (its whole process group is killed), which rolls back as a failure does;
 * the register is its point of no return (progress_commit). */

#include "progress.h"
#include "store.h"

#define DEBOOTSTRAP_IMAGE_DIR "images"
#define DEBOOTSTRAP_ROOTFS_NAME "rootfs.ext4"
/* Packages on top of minbase: the smallest set that boots with systemd,
 * answers ssh and lets the agent configure the network. */
#define DEBOOTSTRAP_INCLUDE "systemd-sysv,udev,kmod,openssh-server,iproute2,ca-certificates"
#define DEBOOTSTRAP_ROOTFS_MIN (1ULL << 30)

typedef struct DebootstrapImageOptions {
        const char *name;      /* image name; the kernel becomes "<name>-kernel" */
        const char *suite;     /* "bookworm" */
        const char *mirror;    /* "http://deb.debian.org/debian" */
        const char *agent;     /* banger-agent binary, installed as /usr/local/bin/banger-agent */
        const char *busybox;   /* static busybox for the initramfs; NULL: /bin/busybox */
        const char *cache_dir; /* optional: kernel packages kept here (by SHA256) across builds */
        Progress progress;
} DebootstrapImageOptions;

/* Build and register. On success *ret (may be NULL) is the image record. */
int debootstrap_image_build(Store *s, const char *state_dir, const DebootstrapImageOptions *o, ImageRecord *ret);

/* A suite name debootstrap accepts here: [a-z0-9-]{1,32}. */
bool debootstrap_suite_is_valid(const char *suite);
