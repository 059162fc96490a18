/* SPDX-License-Identifier: MIT */
#pragma once

/* Bundles: one image or kernel in one file a team can publish (docs/catalogs.md).
 *
 * A bundle is a pax tar compressed with zstd holding, in this order:
 *   manifest.json        see below; always the first member
 *   rootfs.ext4          an image's root filesystem, holes kept as sparse
 *                        regions (PAX GNU.sparse 1.0)
 *   work-seed.ext4       an image's work disk seed, when it has one
 *   kernel/bzImage       the kernel QEMU boots (kernel/vmlinux when there is
 *                        no bzImage); kernel/initrd when there is one
 *   kernel/modules/VER/  the modules tree (its symlinks left out)
 *
 * manifest.json: {"format": 1, "kind": "image"|"kernel", "name", "version",
 * "description", "architecture", "kernel": {"name", "version"},
 * "banger_version", "created_at", "files": [{"path", "type": "file"|"dir",
 * "mode", "size", "data" (size less holes; optional) and "sha256"
 * (files)}]}. A bundle holds no links of any
 * kind: an unpack refuses them, as it refuses any member the manifest does
 * not list exactly.
 *
 * The kernel/ directory is laid out as `kernel import --from DIR` reads it,
 * so a pull imports the kernel exactly as a local import would. */

#include <jansson.h>
#include <stdint.h>

#include "progress.h"
#include "store.h"

#define BUNDLE_FORMAT 1
#define BUNDLE_MANIFEST "manifest.json"
/* A Debian kernel's full modules tree lists about 4,000 files. */
#define BUNDLE_MANIFEST_MAX (8U << 20)
#define BUNDLE_FILES_MAX 65536
#define BUNDLE_DESCRIPTION_MAX 256
#define BUNDLE_VERSION_MAX 64
#define BUNDLE_PATH_MAX 1024

typedef struct BundleOptions {
        const char *name;        /* the name it is published under */
        const char *version;     /* free text (BUNDLE_VERSION_MAX), [A-Za-z0-9._+~-] */
        const char *description; /* may be NULL */
        const KernelRecord *kernel;
        const ImageRecord *image; /* NULL: a kernel bundle */
        const char *output;       /* absolute path; written atomically */
        Progress progress;        /* stages "hash", "write" */
} BundleOptions;

/* Write a bundle; on failure nothing is left at output (and an existing
 * file there is untouched). */
int bundle_write(const BundleOptions *o);

/* True when v may be a bundle's version (and a NAME:VERSION suffix). */
bool bundle_version_is_valid(const char *v);

/* A member's path: relative, no "", "." or ".." component, under one of
 * the names above. */
bool bundle_path_is_safe(const char *path);

/* Read and check the manifest (the first member) of the bundle open at fd,
 * from its start: format, kind, name, version, files. */
int bundle_read_manifest(int fd, json_t **ret);
/* The same checks on a manifest already parsed. */
int bundle_manifest_check(json_t *m);
/* What a checked manifest's files take unpacked: each file's "data" (its
 * bytes less its holes), or its size when the manifest does not say. */
uint64_t bundle_manifest_unpacked_bytes(json_t *m);

/* Unpack the bundle open at fd (read from its start) into dirfd, an empty
 * directory: every member must be one the manifest lists, once, with the
 * type, size and sha256 it says (checked while it is written; holes stay
 * holes); a path with "..", an absolute path, a link, a device or a member
 * the manifest does not list is refused, and so is a manifest whose files
 * add up to more than max_bytes. On failure what was written stays in
 * dirfd for the caller to remove. check (may be NULL) is a cancellation
 * point asked between blocks: < 0 stops the unpack with that error.
 * *ret_manifest is the checked manifest. */
int bundle_unpack(int fd, int dirfd, uint64_t max_bytes, const Progress *p, int (*check)(void), json_t **ret_manifest);
