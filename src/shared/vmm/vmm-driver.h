/* SPDX-License-Identifier: MIT */
#pragma once

/* One table of operations per VMM. The daemon drives VMs through this table
 * without knowing which VMM sits behind it. Every operation may block (HTTP
 * over a Unix socket, QMP, waiting for a socket to appear) and always has a
 * deadline; the daemon calls them from worker threads, never from its event
 * loop. Failures return -errno; where a richer cause exists (Firecracker's
 * fault_message word for word, a QMP error description) it is recorded with
 * error_setf() (see error.h). Timeouts waiting for exit return -ETIMEDOUT and
 * nothing else does, so callers can tell "still running" from real errors. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spawn.h"
#include "vmm-kind.h"
#include "time-util.h"

#define VMM_MAX_DRIVES 4
#define VMM_MAX_NICS 2

typedef struct VmmDrive {
        const char *id;   /* "rootfs", "work": [a-z0-9_]+ */
        const char *path; /* disk image file */
        bool read_only;
        bool is_root;
} VmmDrive;

typedef struct VmmNic {
        const char *id;  /* "eth0" */
        const char *tap; /* host TAP device name */
        const char *mac; /* "02:fc:xx:xx:xx:xx" */
} VmmNic;

/* Everything a driver needs to launch and configure one VM. Strings are
 * borrowed for the duration of the call. */
typedef struct VmmConfig {
        const char *vm_id;        /* short unique id, [a-z0-9]+, <= 16 chars */
        const char *run_dir;      /* per-VM runtime dir, 0700, owned by the daemon's user; sockets go here */
        const char *log_path;     /* VMM stdout/stderr and the guest console are appended here (a file or a FIFO) */
        const char *console_path; /* where that output can be read back, for error messages (NULL: log_path) */
        const char *binary;       /* VMM binary (absolute path or name looked up in PATH) */

        const char *kernel; /* Firecracker: must be an ELF vmlinux */
        const char *initrd; /* optional */
        const char *cmdline;

        unsigned vcpus;
        unsigned long long mem_mib;

        VmmDrive drives[VMM_MAX_DRIVES];
        size_t n_drives;
        VmmNic nics[VMM_MAX_NICS];
        size_t n_nics;

        unsigned vsock_cid; /* guest CID for vsock (>= 3) */

        /* When the daemon runs as root on behalf of another user, the API
         * socket is handed to this owner after launch (uid 0: leave it). */
        uid_t owner_uid;
        gid_t owner_gid;

        /* Restore instead of boot: launch() loads the state that save_state()
         * wrote into this directory, and the VM waits, paused, for start().
         * The drives must be copies of the saved VM's disks, in the same
         * order; MAC, TAP and vsock paths may differ. restore_version must
         * equal version() of the binary, or launch() refuses before asking
         * the VMM (-EPROTONOSUPPORT: a VMM cannot load another version's state). */
        const char *restore_dir;
        const char *restore_version;
        /* The caller compared restore_version with version() of this binary
         * just before (a resume): launch() does not run the binary again. */
        bool restore_version_checked;

        /* Firecracker jailer mode (ignored by QEMU). */
        bool jailer;
        const char *jailer_binary;
        const char *jailer_chroot_base;
        uid_t jailer_uid;
        gid_t jailer_gid;
} VmmConfig;

/* Handles of one running VMM process. Persisted fields (pid, sockets) are
 * what the daemon stores so it can re-attach after a restart. */
typedef struct VmmInstance {
        VmmKind kind;
        Process proc;               /* {pid, pidfd}; pidfd -EBADF when not attached */
        char *api_socket;           /* Firecracker API socket or QEMU QMP socket */
        char *agent_socket;         /* Firecracker vsock UDS (needs CONNECT handshake) or QEMU virtio-serial socket */
        bool agent_needs_handshake; /* true: speak "CONNECT <port>\n" / "OK <port>\n" first */
        char *pidfile;              /* where the driver recorded the VMM pid, if any */
        char *chroot_dir;           /* jailer chroot root, or NULL */
} VmmInstance;

void vmm_instance_done(VmmInstance *vm); /* frees strings, closes pidfd; does not kill */

/* What save_state() writes into its directory (mode 0600, complete or not
 * at all): the VM's CPU and device state (for QEMU also its memory), and
 * Firecracker's separate memory file. */
#define VMM_STATE_FILE "vm.state"
#define VMM_MEMORY_FILE "vm.mem"

typedef struct VmmSavedState {
        uint64_t state_bytes;
        uint64_t memory_bytes; /* 0 when the memory is inside the state file */
} VmmSavedState;

typedef struct VmmDriver {
        VmmKind kind;
        const char *name;

        /* Is this VMM usable on this host? 0, or -errno with error_setf() saying why. */
        int (*probe)(const char *binary);

        /* Prepare the run dir and start the VMM process (own session, umask 077 so
         * sockets are 0600 from birth, stdout/stderr to log_path), then wait until
         * its control socket answers (deadline). The VM is configured but not yet
         * running when this returns: QEMU gets its whole config on the command
         * line and starts paused (-S); Firecracker is configured over its API. */
        int (*launch)(const VmmConfig *c, usec_t timeout, VmmInstance *ret);

        /* Boot the configured VM (Firecracker InstanceStart, QMP cont). */
        int (*start)(VmmInstance *vm);

        /* Ask the guest to shut down (Ctrl-Alt-Del, ACPI powerdown). Does not wait. */
        int (*request_shutdown)(VmmInstance *vm);

        int (*pause)(VmmInstance *vm);
        int (*resume)(VmmInstance *vm);

        /* Save the VM's state into dir (absolute, an existing directory of the
         * daemon's user): pauses it if it runs, and leaves it paused. Each
         * file is written under a temporary name and renamed when complete,
         * so dir never holds a partial VMM_STATE_FILE; on failure nothing new
         * is left in dir. The timeout bounds the whole save. */
        int (*save_state)(VmmInstance *vm, const char *dir, usec_t timeout, VmmSavedState *ret);

        /* A save_state() its caller did not see to the end (the daemon was
         * killed): stop it if it still writes and return once the VMM is
         * done with it, the VM paused. NULL: a save cannot outlive its call. */
        int (*cancel_save)(VmmInstance *vm, usec_t timeout);

        /* The version the binary reports (its first line of --version, e.g.
         * "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"),
         * recorded with a saved state and compared before a restore. */
        int (*version)(const char *binary, char **ret);

        /* "running", "paused", "not started": a short string into *ret (static). */
        int (*query_state)(VmmInstance *vm, const char **ret);

        /* Wait for the VMM process to exit; -ETIMEDOUT when the deadline passes. */
        int (*wait_exit)(VmmInstance *vm, usec_t timeout);

        /* SIGKILL through the pidfd and reap; removes sockets and pidfile. */
        int (*kill)(VmmInstance *vm);

        /* Re-attach after a daemon restart: find the pid from the pidfile or the
         * socket, verify /proc/<pid>/comm and cmdline name this VM (never trust a
         * stale number), open a pidfd. -ESRCH when the VM is not running. */
        int (*attach)(const VmmConfig *c, VmmInstance *ret);

        /* Connect to the guest agent on the given port; returns a connected fd
         * ready for the agent protocol (handshake already done), or -errno. */
        int (*connect_agent)(VmmInstance *vm, unsigned port, usec_t timeout);
} VmmDriver;

extern const VmmDriver vmm_driver_firecracker;
extern const VmmDriver vmm_driver_qemu;

const VmmDriver *vmm_driver_get(VmmKind k);

/* Graceful stop: request_shutdown(), wait_exit() until the deadline, then
 * kill() (which also removes sockets). Returns 0 when the VMM exited by
 * itself, 1 when it had to be killed (shutdown ignored or refused), -errno
 * when even that failed. */
int vmm_stop(const VmmDriver *d, VmmInstance *vm, usec_t timeout);

/* The binary's first line of `binary --version`, trimmed (vmm-process.c). */
int vmm_binary_version(const char *binary, char **ret);

/* launch() with c->restore_dir: the recorded version against the binary's;
 * 0 or -EPROTONOSUPPORT with error_setf() naming both. */
int vmm_restore_version_check(const VmmDriver *d, const VmmConfig *c);

/* Move src_name into dst_dirfd as dst_name: rename, or a copy (then fsync,
 * then unlink of the source) across filesystems. */
int vmm_move_file(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name);

/* Copy what in holds into a new file (O_EXCL, born with mode) beneath
 * dst_dirfd, synced; copy_file_range() reflinks where the filesystem can.
 * The new file is removed on failure. */
int vmm_copy_file_at(int in, int dst_dirfd, const char *dst_name, mode_t mode);

/* Shared process primitives every driver uses (vmm-process.c). */

/* Verify that pid is alive and is this VM's VMM: /proc/<pid>/comm equals
 * comm (e.g. "firecracker", "qemu-system-x86") and its cmdline contains
 * needle (the VM's socket path). Returns 0, -ESRCH (gone or reused pid). */
int vmm_process_verify(pid_t pid, const char *comm, const char *needle);

/* Read a pid from a pidfile (opened O_NOFOLLOW), then verify as above and
 * open a pidfd into *ret. */
int vmm_process_attach_pidfile(const char *pidfile, const char *comm, const char *needle, Process *ret);

/* Wait for a path to appear (inotify on its directory, deadline). */
int vmm_wait_for_path(const char *path, usec_t timeout);

/* The VMM's stdout/stderr: log_path opened for appending (a file, created
 * 0600, or the daemon's console FIFO), blocking like a file. A FIFO nobody
 * reads fails (ENXIO) instead of hanging. */
int vmm_open_log(const char *path);

/* Hand a socket to the owning user (fchownat without following links). */
int vmm_chown_socket(const char *path, uid_t uid, gid_t gid);

/* Find the process listening on a Unix socket (SO_PEERCRED), verify it as
 * vmm_process_verify() does and open a pidfd into *ret. -ESRCH when nobody
 * (or a different program) listens there. */
int vmm_process_attach_socket(const char *socket_path, const char *comm, const char *needle, Process *ret);

/* Create (or re-tighten) a per-VM runtime directory: mode 0700, owned by us,
 * never a symlink. */
int vmm_prepare_run_dir(const char *path);

/* SIGKILL through the pidfd and wait (bounded) for the process to go. */
int vmm_process_kill(Process *p);

/* The liveness lock of a VMM: an OFD write lock on <run_dir>/VMM_LOCK_FILE
 * that the VMM process holds from its fork to its death. */
#define VMM_LOCK_FILE "vmm.lock"

/* Start a VMM as spawn_process() does, with the liveness lock taken (-EBUSY
 * when another process holds it: a VMM of this VM still runs) and handed to
 * the child as fd SPAWN_KEEP_FD, and, when pidfile_name is not NULL, the
 * child's pid written by the child itself into <run_dir>/<pidfile_name>
 * before it execs. Whatever moment the caller dies at after the fork, the
 * process is either identifiable by its pidfile or still holds the lock. */
int vmm_spawn(char *const argv[], SpawnOptions *o, const char *run_dir, const char *pidfile_name, Process *ret);

/* 1: some process holds the liveness lock of run_dir; 0: none (or no lock
 * file); -errno. */
int vmm_lock_held(const char *run_dir);

/* 0 when no process holds the liveness lock of run_dir; -EBUSY (with a
 * message naming the lock) when one does. A launch asks before it removes
 * the files a previous VMM of the VM left: a live one keeps them. */
int vmm_lock_check_free(const char *run_dir);

/* attach(), but a VMM that cannot be identified yet while its liveness lock
 * is held (a start cut short between the fork and the moment the VMM can be
 * found by pidfile or socket) is waited for, up to timeout: -ESRCH only when
 * the lock is free (the VMM is gone), -EBUSY when it is still held at the
 * deadline (something of this VM runs and cannot be identified). */
int vmm_attach_wait(const VmmDriver *d, const VmmConfig *c, usec_t timeout, VmmInstance *ret);
