/* SPDX-License-Identifier: MIT */
#pragma once

/* Debian package indexes and downloads, for fetching the kernel package
 * that belongs with a debootstrapped root filesystem. The index used is the
 * one debootstrap itself downloaded and verified (its Release signature
 * covers the Packages file's hash), so a package fetched here is checked
 * against a SHA256 that chains to the archive key. */

#include <stdint.h>

#include "progress.h"

#define DEBIAN_FIELD_MAX 4096

typedef struct DebianPackage {
        char *package;
        char *version;
        char *filename; /* pool/main/l/linux-signed-amd64/linux-image-...deb */
        char *sha256;
        char *depends;
        uint64_t size;
} DebianPackage;

void debian_package_done(DebianPackage *p);

/* Find the stanza of package in a Packages index read from fd. -ENOENT if
 * absent, -EBADMSG for a stanza missing Filename/SHA256/Size or with an
 * unsafe Filename (absolute, "..", odd characters). */
int debian_packages_find(int fd, const char *package, DebianPackage *ret);

/* The first package named in a Depends field ("a (>= 1) | b, c" -> "a"). */
int debian_depends_first(const char *depends, char **ret);

/* Download <mirror>/<filename> into dirfd/name (created 0644, O_EXCL),
 * verifying size and SHA256; a mismatch removes the file (-EBADMSG).
 * Reading stops the moment the mirror sends more than the index's Size
 * (at most 1 GiB); a package that would leave less than 64 MiB free is
 * refused before the download (-ENOSPC). mirror is an http:// or https://
 * URL. Reports bytes under stage. */
int debian_package_download(const char *mirror, const DebianPackage *p, int dirfd, const char *name,
                            const Progress *progress, const char *stage);
