/* SPDX-License-Identifier: MIT */
#pragma once

/* The files 'banger ssh-config' touches in $HOME/.ssh, reached through
 * directory fds: the user's config (read and replaced atomically with its
 * mode kept) and banger's own banger.conf.
 *
 * Where banger writes: only in directories owned by the user and writable by
 * nobody else, and only files the user owns. ~/.ssh/config may be a symlink
 * (dotfiles often are): it is followed one level when its target is a
 * regular file in such a directory; any other symlink, a dangling one or a
 * chain of them is refused. Every failure returns -errno with the reason
 * recorded by error_setf(). */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SSH_BANGER_FILE "banger.conf"

typedef struct SshHome {
        int home_fd;
        int ssh_fd;    /* ~/.ssh, -EBADF when it does not exist */
        char *ssh_dir; /* its path */
        bool ssh_created;
        int cfg_dir_fd;   /* the directory holding the config file */
        char *cfg_name;   /* the config file's name in cfg_dir_fd */
        char *cfg_path;   /* ~/.ssh/config, as a path */
        char *cfg_target; /* where that symlink points, or NULL */
        bool cfg_exists;
        mode_t cfg_mode;
        char *cfg_data;
        size_t cfg_len;
} SshHome;

/* Open $HOME/.ssh (created 0700 when missing and create is set) and read
 * the config file when there is one. */
int ssh_home_open(bool create, SshHome *ret);
void ssh_home_done(SshHome *h);

/* Replace the config file's content atomically (temp file in its directory,
 * renamed over it), with its mode kept, 0600 for a new one. */
int ssh_home_write_config(SshHome *h, const char *data, size_t len);

/* Remove the config file (never a symlink's target: it is emptied instead). */
int ssh_home_remove_config(SshHome *h);
/* Remove ~/.ssh when it is empty. */
int ssh_home_remove_ssh_dir(SshHome *h);

/* banger.conf in ~/.ssh: 1 and its content when it is banger's (it starts
 * with header), 0 when missing, -EEXIST when something else is there. */
int ssh_home_read_own_file(SshHome *h, const char *header, char **ret, size_t *ret_len);
int ssh_home_write_own_file(SshHome *h, const char *data, size_t len);
int ssh_home_remove_own_file(SshHome *h);
