/* SPDX-License-Identifier: MIT */
#pragma once

/* `banger image import`: turn an OCI/Docker image into an ext4 root
 * filesystem. Sources: a `docker save` archive, an OCI layout directory or
 * tarball, or a registry reference pulled anonymously. Layers are applied in
 * memory (oci-tree.h) with every digest verified, then written to a fresh
 * ext4 file that appears under its final name only when complete. The
 * banger agent and its boot unit are added, and sshd is enabled when the
 * image has one.
 *
 * Errors are -errno with the cause recorded by error_setf() (the offending
 * layer entry, the digest that did not match, the registry's message). */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

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
        int cache_dirfd;           /* blob cache and staging area (required) */
        int out_dirfd;             /* where the image file is created */
        const char *out_name;      /* must not exist yet */
        const char *agent_path;    /* host path of banger-agent; NULL: not installed */
        const char *os, *arch;     /* NULL: linux / amd64 */
        uint64_t min_size;         /* 0: OCI_IMPORT_MIN_SIZE */
        OciProgressFn progress;
        void *userdata;
} OciImportOptions;

#define OCI_IMPORT_MIN_SIZE (1ULL << 30)

typedef struct OciImportResult {
        char *config_json;     /* {"Cmd":..,"Entrypoint":..,"Env":..,"User":..,"WorkingDir":..} */
        char *manifest_digest; /* NULL for docker archives */
        char **blobs;          /* NULL-terminated digests this image uses in the cache (registry pulls) */
        uint64_t content_size; /* bytes of the assembled root filesystem */
        uint64_t image_size;   /* size of the ext4 file */
        bool has_sshd;         /* /usr/sbin/sshd exists */
        bool has_systemd;
        bool sshd_enabled;     /* a wants-symlink was added for ssh.service/sshd.service */
        bool agent_installed;
        const char *agent_boot; /* "systemd", "inittab" or NULL when the image has no known init */
} OciImportResult;

void oci_import_result_done(OciImportResult *r);

int oci_import(const OciImportOptions *o, OciImportResult *ret);

/* Cache maintenance: remove blobs keep() does not claim (it gets
 * "sha256:<hex>"), plus staging leftovers older than a day. visit (may be
 * NULL) sees each blob that is (or with dry_run would be) removed. Run it
 * while no import is in flight. */
typedef bool (*OciBlobKeepFn)(const char *digest, void *userdata);
typedef void (*OciBlobVisitFn)(const char *digest, uint64_t size, void *userdata);

typedef struct OciPruneStats {
        uint64_t n_blobs;
        uint64_t bytes;
} OciPruneStats;

int oci_cache_prune(int cache_dirfd, bool dry_run, OciBlobKeepFn keep, OciBlobVisitFn visit, void *userdata,
                    OciPruneStats *ret);
