/* SPDX-License-Identifier: MIT */
#pragma once

/* Files written into a guest root image before boot, through ext4-edit
 * (libext2fs, nothing mounted): hostname, /etc/hosts, the network
 * configuration the guest agent reads (docs/guest-config.md), the resolver,
 * root's authorized_keys, and user file copies. */

#include <stddef.h>
#include <sys/types.h>

#define GUEST_PATCH_DNS_MAX 3
#define GUEST_PATCH_FILES_MAX 64
#define GUEST_PATCH_KEYS_MAX (256U << 10)

typedef struct GuestFileCopy {
        int src_fd;             /* regular file opened by the caller */
        const char *guest_path; /* absolute path in the guest */
        mode_t mode;            /* permission bits */
        uid_t uid;
        gid_t gid;
} GuestFileCopy;

typedef struct GuestPatch {
        const char *hostname;                     /* required: the VM name */
        const char *address;                      /* "172.16.0.2/24"; NULL: no network.conf */
        const char *gateway;                      /* "172.16.0.1" */
        const char *mac;                          /* "02:fc:00:00:00:02" */
        const char *dns[GUEST_PATCH_DNS_MAX + 1]; /* NULL-terminated; empty: resolv.conf left alone */
        const char *authorized_keys;              /* NULL: left alone */
        const GuestFileCopy *files;
        size_t n_files;
} GuestPatch;

/* Check every field (hostname syntax, addresses, MAC, key text, guest
 * paths) before anything is written. */
int guest_patch_validate(const GuestPatch *p);

/* Apply to the ext4 image open at image_fd (read-write); the image is
 * fsynced once written (ext4_image_close()), so the caller need not. */
int guest_patch_apply_fd(int image_fd, const GuestPatch *p);

/* Apply to the image at image_path (opened O_NOFOLLOW). Prefer the _fd
 * variant with a file opened beneath the state directory. */
int guest_patch_apply(const char *image_path, const GuestPatch *p);

/* The generated texts, exposed for tests and for the docs' examples. */
int guest_patch_format_hosts(const GuestPatch *p, char **ret);
int guest_patch_format_network(const GuestPatch *p, char **ret);
int guest_patch_format_resolv(const GuestPatch *p, char **ret);
