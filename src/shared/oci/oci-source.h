/* SPDX-License-Identifier: MIT */
#pragma once

/* Where an import's pieces come from: each source kind is reduced to a
 * directory fd beneath which the layer blobs live, the verified config, and
 * per layer a relative path and the digest its bytes must have. Of an
 * archive only the layers its manifest names are unpacked, into a private
 * staging directory under the cache (removed again by oci_image_parts_done;
 * see oci-archive.h). Used by oci-import.c only. */

#include <stddef.h>
#include <stdint.h>

#include "oci-options.h"
#include "oci-manifest.h"

typedef struct OciImageParts {
        int dirfd;
        char *manifest_digest;
        OciImageConfig config;
        char **layer_paths;    /* relative to dirfd */
        char **layer_digests;  /* what each layer file's bytes must hash to */
        uint64_t *layer_sizes; /* what the manifest says each is; 0: not said (docker archives) */
        size_t n_layers;
        char **blobs; /* registry: cache blobs used (NULL-terminated) */
        int staging_parent_fd;
        char *staging_name;
} OciImageParts;

int oci_source_open(const OciImportOptions *o, OciImageParts *ret);
void oci_image_parts_done(OciImageParts *p);

/* Remove dirfd/name and everything beneath it (never following symlinks). */
int oci_rm_rf_at(int parent_fd, const char *name);
