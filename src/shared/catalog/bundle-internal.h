/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the bundle-*.c files only. */

#include <archive.h>
#include <jansson.h>

#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_read_free);

/* Open the bundle at fd for reading from its start and read its manifest
 * (the first member), checked; the archive is left at the next member.
 * ret_archive may be NULL. */
int bundle_archive_open(int fd, struct archive **ret_archive, json_t **ret_manifest);
