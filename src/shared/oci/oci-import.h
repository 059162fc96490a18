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
#include "oci-options.h"

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
