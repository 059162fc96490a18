/* SPDX-License-Identifier: MIT */
#pragma once

/* The Firecracker driver (vmm_driver_firecracker) and the pieces it is made
 * of, public so they can be tested on their own: version check, paths and
 * argv for plain and jailer mode, chroot preparation, snapshots. */

#include "vmm-driver.h"

#define FC_COMM "firecracker"
#define FC_MIN_MAJOR 1U
#define FC_MIN_MINOR 5U
#define FC_MIN_PATCH 0U

/* Names inside the per-VM run dir (or the jailer chroot), kept short so that
 * socket paths fit sun_path. */
#define FC_API_SOCKET_NAME "fc.sock"
#define FC_VSOCK_NAME "v.sock"
#define FC_PIDFILE_NAME "fc.pid"

typedef struct FcVersion {
        unsigned major, minor, patch;
} FcVersion;

/* Parse "Firecracker v1.7.0" (the first line of `firecracker --version`). */
int fc_parse_version(const char *output, FcVersion *ret);
/* 0 when v >= 1.5.0, else -EPROTONOSUPPORT with error_setf() saying so. */
int fc_version_check(const FcVersion *v);

/* The binary to run: the configured one, else "firecracker" from PATH.
 * Returns a new absolute path or NULL with error_setf() saying why. */
char *fc_resolve_binary(const char *configured);

/* Where one VM's files live, as seen by the host and as seen by Firecracker
 * (the two differ only inside a jailer chroot). */
typedef struct FcPaths {
        char *api_socket;     /* host path */
        char *api_socket_arg; /* --api-sock argument */
        char *vsock;          /* host path of the vsock UDS */
        char *vsock_arg;      /* uds_path sent to Firecracker */
        char *pidfile;
        char *chroot_dir; /* jailer: <base>/<exec name>/<id>/root, else NULL */
} FcPaths;

int fc_paths_build(const VmmConfig *c, const char *fc_binary, FcPaths *ret);
void fc_paths_done(FcPaths *p);

/* The command line: "firecracker --api-sock S --id ID", or in jailer mode
 * "jailer --id ID --exec-file FC --uid U --gid G --chroot-base-dir B -- --api-sock /fc.sock". */
int fc_build_argv(const VmmConfig *c, const char *fc_binary, const char *jailer_binary, const FcPaths *p,
                  char ***ret_argv);

/* Jailer mode: create the chroot root (owned by the jailer uid), hard-link
 * (or, across filesystems, copy) kernel, initrd and drives into it, and
 * return in *ret_names the paths Firecracker must be given (relative to the
 * chroot): kernel, initrd (or "" when there is none), one per drive, then,
 * for a restore, the saved state and memory files. */
int fc_jail_prepare(const VmmConfig *c, const FcPaths *p, char ***ret_names);

/* Without the jailer: the same list of names, for Firecracker running in the
 * run dir. Each drive is a symlink there, "drive-<id>", given to Firecracker
 * by that relative name, so a saved state names no VM's own path and a copy
 * of the disks in another VM's run dir is what a restore opens. */
int fc_run_dir_names(const VmmConfig *c, char ***ret_names);

/* Where the VM's files are, from Firecracker's point of view. */
typedef struct FcFiles {
        const char *kernel, *initrd;
        const char *drives[VMM_MAX_DRIVES];
        const char *state, *memory; /* a restore: the saved state and memory */
} FcFiles;

/* firecracker-snapshot.c: the driver's save_state() and version().
 * Firecracker saves only a paused VM: a running one is paused first
 * (PATCH /vm), one not started yet is refused with -EBUSY. */
int fc_save_state(VmmInstance *vm, const char *dir, usec_t timeout, VmmSavedState *ret);
int fc_version(const char *binary, char **ret);
