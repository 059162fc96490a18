/* SPDX-License-Identifier: MIT */
#pragma once

/* Anonymous pulls over the Docker Registry HTTP API v2 (libcurl): manifests
 * into memory, blobs streamed into a content-addressed cache. HTTPS only,
 * except for loopback registries (127.0.0.1, localhost, [::1]), which may
 * answer plain HTTP (tests, local mirrors). A 401 with a Bearer challenge
 * is answered once with an anonymous token from the challenge's realm.
 * Every blob is hashed while it streams to an unnamed temp file that gets
 * its name (<cache>/blobs/sha256/<hex>) only after the digest matched and
 * the import it was for succeeded. */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "oci-ref.h"

#define OCI_CACHE_BLOB_DIR "blobs/sha256"

typedef struct OciRegistry OciRegistry;

/* Called with bytes received for the current blob; non-zero cancels. */
typedef int (*OciDownloadProgressFn)(uint64_t done, void *userdata);

int oci_registry_new(const OciRef *ref, OciRegistry **ret);
void oci_registry_free(OciRegistry *reg);
DEFINE_TRIVIAL_CLEANUP_FUNC(OciRegistry *, oci_registry_free);
#define _cleanup_oci_registry_ _cleanup_(oci_registry_freep)

/* GET /v2/<repo>/manifests/<reference>, accepting OCI and Docker v2
 * manifests and indexes. When reference is a digest, the body must match it.
 * size is what the descriptor naming it says (0 for a tag): the body may be
 * no longer, nor longer than OCI_JSON_MAX. ret_digest gets the digest of the
 * body. */
int oci_registry_get_manifest(OciRegistry *reg, const char *reference, uint64_t size, char **ret_body, size_t *ret_len,
                              char **ret_content_type, char **ret_digest);

/* The blob, verified, as a file open for reading at offset 0: the cache's
 * copy when there is one, else downloaded, exactly size bytes (positive,
 * and fitting in the cache's free space), into an unnamed file in the cache
 * directory (*ret_downloaded): it gets its name only from
 * oci_cache_blob_publish(), once the import that wanted it succeeded, so a
 * failed import leaves nothing. Reading stops the moment the registry sends
 * more than size; an error page is read no further than its first 4 KiB. */
int oci_registry_fetch_blob(OciRegistry *reg, int cache_dirfd, const char *digest, uint64_t size,
                            OciDownloadProgressFn progress, void *userdata, int *ret_fd, bool *ret_downloaded);

/* What a registry sends, each parsed on its own (and fuzzed). */

/* One raw header line as curl hands it over ("Name: value\r\n"): 1 and the
 * trimmed value when it is the header name (any case), 0 when it is another
 * header, longer than 4 KiB, or its value holds a NUL or a control other
 * than a tab (such a header is ignored, as if absent). */
int oci_registry_header_value(const char *line, size_t len, const char *name, char **ret);

/* The token of a token endpoint's JSON reply ("token", else "access_token"):
 * -EBADMSG when there is none usable in an Authorization header. */
int oci_registry_token_parse(const char *body, size_t len, char **ret);

/* The registry's own words for a failure, {"errors":[{"message":...}]},
 * into buf ("" when the body has none). */
void oci_registry_error_message(const char *body, size_t len, char *buf, size_t size);

/* A token realm banger may ask: HTTPS, or plain HTTP from a loopback
 * registry (plain_http) to a loopback host, as curl itself parses the URL,
 * so userinfo cannot disguise another host. */
bool oci_registry_realm_is_allowed(bool plain_http, const char *realm);

/* Name a downloaded blob <cache>/blobs/sha256/<hex>. */
int oci_cache_blob_publish(int cache_dirfd, int fd, const char *digest);

/* Open <cache>/blobs/sha256 (created 0700 when missing). */
int oci_cache_blob_dir(int cache_dirfd, int *ret_fd);
