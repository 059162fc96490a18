/* SPDX-License-Identifier: MIT */
#pragma once

/* Where an import's pieces come from: each source kind is reduced to a
 * directory fd beneath which the layer blobs live, the verified config, and
 * per layer a relative path and the digest its bytes must have. Of an
 * archive only the layers its manifest names are unpacked, into a private
 * staging directory under the cache (removed again by oci_image_parts_done;
 * see oci-archive.h). Used by oci-import.c only. */

#include <stdbool.h>
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
        char **blobs;          /* registry: cache blobs used (NULL-terminated; the config first) */
        int *blob_fds;         /* registry: each of blobs, open; the layers are read from these */
        bool *blob_downloaded; /* registry: fetched by this import, so not yet in the cache */
        size_t n_blobs;
        int staging_parent_fd;
        char *staging_name;
} OciImageParts;

int oci_source_open(const OciImportOptions *o, OciImageParts *ret);
void oci_image_parts_done(OciImageParts *p);

/* The open file of layer i, or -EBADF when it is to be opened beneath dirfd. */
int oci_image_parts_layer_fd(const OciImageParts *p, size_t i);

/* Name the blobs this import downloaded in the cache: call once the image
 * exists. Failures are only logged (a missing blob is downloaded again). */
void oci_image_parts_publish(const OciImageParts *p, int cache_dirfd);

/* Remove dirfd/name and everything beneath it (never following symlinks). */
int oci_rm_rf_at(int parent_fd, const char *name);
