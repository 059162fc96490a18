/* SPDX-License-Identifier: MIT */
#pragma once

/* Where banger keeps things, and the hardening of its runtime directory.
 *
 * User mode:   config $XDG_CONFIG_HOME/banger (~/.config/banger),
 *              state  $XDG_STATE_HOME/banger  (~/.local/state/banger),
 *              cache  $XDG_CACHE_HOME/banger  (~/.cache/banger),
 *              runtime $XDG_RUNTIME_DIR/banger, or without XDG_RUNTIME_DIR
 *              /tmp/banger-runtime-<uid> (only if it is a real directory
 *              owned by us with mode 0700; refused otherwise).
 * System mode: /etc/banger, /var/lib/banger, /var/cache/banger, /run/banger. */

#include <stdbool.h>
#include <sys/types.h>

typedef struct BangerPaths {
        bool system;
        bool runtime_is_fallback; /* /tmp/banger-runtime-<uid> */
        char *config_dir;
        char *state_dir;
        char *cache_dir;
        char *runtime_dir;
        char *socket_path; /* <runtime>/bangerd.sock */
        char *db_path;     /* <state>/banger.db */
        char *log_path;    /* <state>/bangerd.log */
} BangerPaths;

/* Compute the paths (no filesystem access). -EINVAL with error_setf() when
 * the environment gives nothing usable (no HOME, a relative XDG path). */
int paths_resolve(bool system, BangerPaths *ret);
void paths_done(BangerPaths *p);

/* Create or verify the runtime directory and return an O_DIRECTORY fd to it.
 * A regular runtime dir is created 0700 (umask narrowed during mkdir) and an
 * existing one with looser bits is tightened back to 0700 through its fd.
 * The /tmp fallback is never tightened or adopted: it must be a directory
 * (not a symlink, also not one swapped in after a check: it is opened with
 * O_NOFOLLOW and fstat'ed), owned by our uid, mode exactly 0700; missing, it
 * is created 0700. Anything else is refused with -EPERM and a message naming
 * the path and the problem. */
int paths_ensure_runtime_dir(const BangerPaths *p, int *ret_fd);

/* Create the directory (and missing parents: parents 0755, the leaf 0700)
 * and return an fd to it. An existing leaf with group/other bits is
 * tightened to 0700. */
int paths_ensure_private_dir(const char *path, int *ret_fd);

/* Verify an already-open directory fd: a directory, owned by uid, no
 * group/other bits. Returns 0 or -EPERM with a message naming path. */
int paths_check_private_dir_fd(int fd, const char *path, uid_t uid);
