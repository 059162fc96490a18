/* SPDX-License-Identifier: MIT */
#pragma once

/* The path rules both ends of a file transfer apply to a tar stream
 * (docs/agent-protocol.md, "files"): entry names are relative, have no ".."
 * and share one top-level component; symlinks may not point out of the
 * copied tree; the destination decides whether the top is kept or renamed
 * (as `cp -r` and `docker cp` do). libc only: the agent and the CLI share it. */

#include <stdbool.h>

/* Normalise an entry name: leading "./" and "/." components and repeated
 * slashes go, "" and "." become ".". -EINVAL for an absolute name or one
 * with a ".." component. *ret is allocated. */
int agent_archive_path_normalize(const char *name, char **ret);

/* The length of the first component of a normalised path. */
unsigned agent_archive_top_len(const char *path);

/* Does a symlink at path (normalised) whose text is target point outside
 * the tree? The tree's root is the first component of path, or the
 * destination itself when root_is_top is false (a copy of a directory's
 * contents). An absolute target always counts as outside. */
bool agent_symlink_escapes(const char *path, const char *target, bool root_is_top);

/* "top/rest" with its first component replaced by name; path itself when
 * name is NULL. *ret is allocated. */
int agent_archive_path_rename(const char *path, const char *name, char **ret);
