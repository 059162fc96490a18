/* SPDX-License-Identifier: MIT */
#pragma once

/* The limits every image import applies to what an archive or a registry
 * sends: one size (config.toml `image_import_max`) that an archive's
 * members, a registry image's blobs and an image's files must each stay
 * within, and free space kept on every filesystem an import writes to. */

#include <stdint.h>

#include "macro.h"
#include "oci-options.h"

/* The default of image_import_max. */
#define OCI_IMPORT_MAX_DEFAULT (32ULL << 30)
/* An import never leaves a filesystem with less than this free. */
#define OCI_FREE_RESERVE (64ULL << 20)

/* o->max_bytes, or the default. */
uint64_t oci_import_max(const OciImportOptions *o);

/* -EFBIG with "<what> ... more than N MiB; image_import_max in config.toml
 * sets this limit". */
int oci_limit_error(uint64_t max, const char *fmt, ...) _printf_(2, 3);

/* Free bytes of dirfd's filesystem beyond OCI_FREE_RESERVE (0 when fewer). */
int oci_free_bytes(int dirfd, uint64_t *ret);

/* -ENOSPC, naming what, unless need bytes fit in oci_free_bytes(). */
int oci_check_free(int dirfd, uint64_t need, const char *what);
