/* SPDX-License-Identifier: MIT */
#pragma once

/* Content digests for OCI blobs ("sha256:<64 lowercase hex>"), computed with
 * OpenSSL's EVP interface. Only sha256 is accepted: it is what every
 * registry and image tool writes, and refusing the rest keeps one code path
 * to trust. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

#define OCI_DIGEST_HEX_LEN 64
/* "sha256:" + 64 hex + NUL */
#define OCI_DIGEST_STRLEN (7 + OCI_DIGEST_HEX_LEN + 1)

typedef struct OciHasher OciHasher;

int oci_hasher_new(OciHasher **ret);
void oci_hasher_free(OciHasher *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(OciHasher *, oci_hasher_free);
#define _cleanup_oci_hasher_ _cleanup_(oci_hasher_freep)

int oci_hasher_update(OciHasher *h, const void *data, size_t len);
/* Finish into "sha256:<hex>"; the hasher cannot be updated afterwards. */
int oci_hasher_final(OciHasher *h, char ret[OCI_DIGEST_STRLEN]);

/* Digest of a buffer, "sha256:<hex>". */
int oci_digest_buffer(const void *data, size_t len, char ret[OCI_DIGEST_STRLEN]);

/* "sha256:" followed by exactly 64 lowercase hex digits. */
bool oci_digest_is_valid(const char *digest);

/* The hex part of a valid digest, or NULL. */
const char *oci_digest_hex(const char *digest);
