/* SPDX-License-Identifier: MIT */
#pragma once

/* The block banger manages in ~/.ssh/config, handled as bytes: found, added
 * and removed without changing one byte of the user's own lines.
 *
 *   # BEGIN banger ssh-config (do not edit; 'banger ssh-config uninstall' removes it)
 *   Include "/home/alice/.ssh/banger.conf"
 *   # END banger ssh-config
 *
 * The BEGIN line also records what banger created, so that uninstall undoes
 * exactly that: only the block, or the file it created, or the file and
 * ~/.ssh. The block goes first in the file: an Include after a Host or Match
 * line would only apply to that Host. Its lines end as the file's first line
 * does (CRLF or LF). */

#include <stdbool.h>
#include <stddef.h>

typedef enum SshBlockOrigin {
        SSH_BLOCK_FILE_EXISTED, /* remove only the block */
        SSH_BLOCK_CREATED_FILE, /* and the file, when nothing else is left in it */
        SSH_BLOCK_CREATED_DIR,  /* and the file and ~/.ssh, when empty */
        _SSH_BLOCK_ORIGIN_MAX,
} SshBlockOrigin;

typedef struct SshBlock {
        size_t start, end; /* byte range of the block, end past its last line ending */
        SshBlockOrigin origin;
        char *include; /* the Include line's path */
} SshBlock;

void ssh_block_done(SshBlock *b);

/* Look for the block in a file's bytes. 1 and *ret when found, 0 when there
 * is none, -EBADMSG when a line that starts like a marker is there but the
 * block is not exactly as banger writes it (edited, duplicated, unclosed):
 * *ret_why then says what is wrong, in a few words. */
int ssh_block_find(const char *buf, size_t len, SshBlock *ret, const char **ret_why);

/* The block's bytes for an Include of path. */
int ssh_block_render(const char *include, SshBlockOrigin origin, bool crlf, char **ret, size_t *ret_len);

/* Does the file's first line end with CRLF? */
bool ssh_config_uses_crlf(const char *buf, size_t len);

/* buf with block prepended, or with the range [start, end) replaced by it,
 * or removed (block NULL). Newly allocated, NUL-terminated. */
int ssh_config_splice(const char *buf, size_t len, size_t start, size_t end, const char *block, size_t block_len,
                      char **ret, size_t *ret_len);

/* An absolute path that can go into ssh_config(5) between double quotes and
 * into a ProxyCommand between single quotes, with no token (%), variable
 * (${), glob or quote character: letters, digits, space and / . _ - + , @ = :
 * only, at most 1024 bytes. */
bool ssh_path_is_safe(const char *path);
