/* SPDX-License-Identifier: MIT */
#pragma once

#include "macro.h"

/* File transfers, run as built-ins in a forked child (agent-exec.h): stdin
 * or stdout carries a tar stream (agent-tar.h), stderr the reason of a
 * failure; the exit status is 0 on success. arg is an AgentFilesSpec.
 *
 * put: extract the tar stream from stdin at spec->path. The stream's single
 * top-level entry lands in spec->path when that is an existing directory,
 * else it becomes spec->path (its parent must exist); a top of "." copies
 * into spec->path (created when missing). Modes, numeric owners, mtimes,
 * symlinks and hard links are kept. Absolute names, ".." and symlinks that
 * point out of the tree are refused; nothing is ever created through a
 * symlink.
 *
 * get: write spec->path as a tar stream to stdout, its top named after its
 * last component (or "." with AGENT_FILES_FLAG_CONTENTS). Symlinks are
 * stored, never followed. */

int agent_files_put(const void *arg);
int agent_files_get(const void *arg);

/* The reason of a failure, on stderr (where the host reads it), as one line;
 * returns r when it is an -errno, else -EIO. */
int files_fail(int r, const char *fmt, ...) _printf_(2, 3);
