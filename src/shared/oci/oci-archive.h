/* SPDX-License-Identifier: MIT */
#pragma once

/* An image archive (a tar, plain or gzip/zstd compressed, of an OCI layout
 * or a `docker save`) read in two passes, so that only what the manifest
 * names ever reaches the disk:
 *
 *   1. oci_archive_scan() reads every header and keeps in memory the list of
 *      members and the small JSON documents (index, manifests, configs).
 *      Sizes are added up from the headers: an archive whose members add up
 *      to more than the import's limit is refused at the header that passes
 *      it, before that member's bytes are read.
 *   2. The caller resolves the manifest from memory (oci_archive_read_json),
 *      marks the layers it names (oci_archive_want), and
 *      oci_archive_extract() reads the archive again, writing only those,
 *      after checking that the staging filesystem has room for them.
 *
 * Names are normalized and must stay beneath the archive's root; symlinks
 * (docker save links a layer it already wrote) are resolved lexically inside
 * the member list and never created on disk. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oci-options.h"

#define OCI_ARCHIVE_MEMBERS_MAX 100000
/* JSON documents kept in memory by the scan, all together. */
#define OCI_ARCHIVE_JSON_BUDGET (32U << 20)

typedef struct OciArchiveMember OciArchiveMember;

typedef struct OciArchive {
        int fd;                    /* the archive file, borrowed; read from offset 0 by each pass */
        const OciImportOptions *o; /* source name, progress, limit */
        uint64_t max_bytes;        /* the members may add up to this */
        OciArchiveMember *members;
        size_t n_members;
        uint64_t total;     /* sum of the regular members' sizes */
        size_t json_total;  /* bytes of JSON kept */
        uint64_t file_size; /* of the archive, for progress */
        unsigned pass;      /* 1 or 2, for progress */
} OciArchive;

void oci_archive_done(OciArchive *a);

/* Pass 1: fill a->members. a->fd, a->o and a->max_bytes must be set. */
int oci_archive_scan(OciArchive *a);

/* A regular member (after symlinks) exists at path. */
bool oci_archive_has(const OciArchive *a, const char *path);

/* The bytes of a JSON member kept by the scan. -EFBIG when it is larger
 * than max, -EMEDIUMTYPE when the scan did not keep it (not JSON, or too
 * large to be a document). */
int oci_archive_read_json(const OciArchive *a, const char *path, size_t max, char **ret, size_t *ret_len);

/* Mark the regular member at path (after symlinks) for extraction; returns
 * its real path in the archive and its size. */
int oci_archive_want(OciArchive *a, const char *path, char **ret_path, uint64_t *ret_size);

/* Pass 2: write the wanted members beneath dirfd under their real paths.
 * Refuses (-ENOSPC) when dirfd's filesystem would be left with less than
 * OCI_FREE_RESERVE free. */
int oci_archive_extract(OciArchive *a, int dirfd);
