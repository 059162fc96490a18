/* SPDX-License-Identifier: MIT */
#pragma once

/* What `banger system install` puts on a host, and the fd-relative
 * primitives it writes and removes it with. Every path is relative to a root
 * directory fd (the host's "/" or --root DIR) and is walked one component at
 * a time with O_NOFOLLOW, so a symlink planted anywhere below the root makes
 * the operation fail instead of sending a write, chown or unlink elsewhere. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The layout, relative to the root. The units' placeholders become these
 * (absolute) paths. */
#define SYS_BINDIR "usr/local/bin"
#define SYS_LIBEXECDIR "usr/local/libexec/banger"
#define SYS_MAN1DIR "usr/local/share/man/man1"
#define SYS_DOCDIR "usr/local/share/doc/banger"
#define SYS_UNITDIR "etc/systemd/system"
#define SYS_CONFDIR "etc/banger"
#define SYS_STATEDIR "var/lib/banger"
#define SYS_CACHEDIR "var/cache/banger"
#define SYS_OWNER_FILE "owner"
#define SYS_HELPER_UNIT "bangerd-root.service"

typedef enum SysChange {
        SYS_UNCHANGED,
        SYS_CREATED,
        SYS_UPDATED,
        SYS_REMOVED,
        SYS_ABSENT,
} SysChange;

const char *sys_change_to_string(SysChange c);

/* A binary that is installed: its name, where it goes (relative to the
 * root), and where to look for it relative to the running banger's
 * directory (installed layout first, then the build tree). */
typedef struct SysBinary {
        const char *name;
        const char *dir;
        const char *const *candidates;
} SysBinary;
extern const SysBinary sys_binaries[]; /* NULL-name terminated */

/* A file generated from text embedded at build time (units, man page,
 * README). template is rendered with sys_render() when render is set. */
typedef struct SysTextFile {
        const char *name;
        const char *dir;
        const char *text;
        bool render;
} SysTextFile;
extern const SysTextFile sys_text_files[]; /* NULL-name terminated */

/* The installed units, in the order systemd should see them. */
extern const char *const sys_unit_names[]; /* NULL terminated */

/* Replace @bindir@, @libexecdir@ and @docdir@ with the layout's absolute
 * paths. Any other @word@ is -EBADMSG (a template this build does not know
 * how to fill would install a broken unit). */
int sys_render(const char *tmpl, char **ret);

/* Locate a binary to install; banger itself is /proc/self/exe. Returns a
 * newly allocated path or NULL. */
char *sys_find_binary(const SysBinary *b);

/* Open relpath beneath rootfd as a directory. With create, missing
 * components are made (0755, root). When own is set, the last component is
 * made exactly mode and uid:gid (created so, or corrected through its fd;
 * *ret_change says which). A symlink at any component is -ELOOP and a
 * non-directory -ENOTDIR, with a message naming display/relpath. */
typedef struct SysDirSpec {
        bool create;
        bool own;
        mode_t mode;
        uid_t uid;
        gid_t gid;
} SysDirSpec;
int sys_dir_open(int rootfd, const char *display, const char *relpath, const SysDirSpec *spec, SysChange *ret_change,
                 int *ret_fd);

/* 1 when dirfd/name is a regular file (not a symlink) owned by root:root with
 * exactly mode and content; 0 otherwise (also when missing); -errno. */
int sys_file_matches(int dirfd, const char *name, const void *data, size_t len, mode_t mode);

/* Make dirfd/name a root:root regular file with exactly this content and
 * mode. Unchanged when it already is one; otherwise a temp file in the same
 * directory (O_EXCL|O_NOFOLLOW, born with mode) is written, fsync'ed and
 * renamed over name, and the directory fsync'ed. Whatever was at name (a
 * symlink included) is replaced, never followed; a directory is -EISDIR. */
int sys_file_install(int dirfd, const char *name, const void *data, size_t len, mode_t mode, SysChange *ret);

/* Unlink dirfd/name (a file or symlink, never followed); SYS_ABSENT when
 * there was nothing. */
int sys_file_remove(int dirfd, const char *name, SysChange *ret);

/* "UID:GID\n", as bangerd-root --system reads /etc/banger/owner. */
int sys_owner_format(uid_t uid, gid_t gid, char *buf, size_t len);
/* Parse "UID" or "UID:GID" (gid -1 when absent). */
int sys_owner_parse(const char *s, uid_t *ret_uid, gid_t *ret_gid);

/* The first mount point at or below abs_path (from /proc/self/mountinfo),
 * so a purge never descends into a mounted filesystem. 1 and *ret when
 * found, 0 when none. */
int sys_find_mount_below(const char *abs_path, char **ret);

/* The root everything is relative to: "/" or --root DIR. display is the
 * prefix for messages ("" for the host, so paths read "/etc/banger"). */
typedef struct SysRoot {
        int fd;
        char *display;
        bool is_host;
} SysRoot;
int sys_root_open(const char *dir, SysRoot *ret);
void sys_root_done(SysRoot *r);

/* systemctl is only run for the host's own root, and only when systemd is
 * the init system (/run/systemd/system exists). */
bool sys_systemd_running(const SysRoot *r);

/* Run systemctl with args (NULL terminated, without argv[0]); returns its
 * exit code (>= 0) or -errno, with its merged output in *ret_out. */
int sys_systemctl(const char *const *args, char **ret_out);

/* The user name for uid (newly allocated), or -ESRCH. */
int sys_user_name(uid_t uid, char **ret);

/* A user name usable as a systemd instance name and in User= unescaped:
 * [A-Za-z0-9_][A-Za-z0-9_.-]*, at most 32 characters. */
bool sys_owner_name_is_valid(const char *name);
