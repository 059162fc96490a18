/* SPDX-License-Identifier: MIT */
#pragma once

/* What an image import is asked to do: the source, where the result goes,
 * and the progress callback. Shared by oci-import.c (which runs the import)
 * and oci-source.c (which opens the source), so neither header needs the
 * other. */

#include <stdint.h>

typedef enum OciSourceKind {
        OCI_SOURCE_AUTO,           /* a directory or file when one exists at the path, else a reference */
        OCI_SOURCE_OCI_LAYOUT,     /* directory with oci-layout + index.json, or a tar of one */
        OCI_SOURCE_DOCKER_ARCHIVE, /* `docker save` tar (manifest.json), or a directory of one */
        OCI_SOURCE_REGISTRY,       /* "[registry/]repository[:tag][@sha256:...]" */
} OciSourceKind;

typedef enum OciProgressPhase {
        OCI_PHASE_DOWNLOAD, /* registry blobs: bytes received / bytes announced */
        OCI_PHASE_UNPACK,   /* archive sources: bytes of the archive unpacked into the staging area */
        OCI_PHASE_LAYERS,   /* bytes of layer blobs read / total of all layers */
        OCI_PHASE_WRITE,    /* bytes of file content written into the ext4 image */
} OciProgressPhase;

/* Return non-zero to cancel: the import stops with -ECANCELED and leaves
 * nothing behind. total may be 0 when unknown. */
typedef int (*OciProgressFn)(OciProgressPhase phase, uint64_t done, uint64_t total, void *userdata);

typedef struct OciImportOptions {
        const char *source;
        OciSourceKind kind;
        int cache_dirfd;        /* blob cache and staging area (required) */
        int out_dirfd;          /* where the image file is created */
        const char *out_name;   /* must not exist yet */
        const char *agent_path; /* host path of banger-agent; NULL: not installed */
        const char *os, *arch;  /* NULL: linux / amd64 */
        uint64_t min_size;      /* 0: OCI_IMPORT_MIN_SIZE */
        /* The most an archive's members, a registry image's blobs (and any one
         * blob) and the image's files may each add up to; 0: the default
         * (oci-limits.h). config.toml image_import_max. */
        uint64_t max_bytes;
        OciProgressFn progress;
        void *userdata;
} OciImportOptions;
