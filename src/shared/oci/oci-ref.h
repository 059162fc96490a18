/* SPDX-License-Identifier: MIT */
#pragma once

/* Image references ("debian:12", "docker.io/library/debian@sha256:...",
 * "127.0.0.1:5000/test/img:tag") and the registry's bearer challenge. Both
 * come from users or servers, so both are parsed strictly and fuzzed. */

#include <stdbool.h>

#define OCI_REF_MAX 512
#define OCI_REPOSITORY_MAX 255
#define OCI_TAG_MAX 128

typedef struct OciRef {
        char *registry;   /* host[:port] as written; "docker.io" when omitted */
        char *host;       /* what to contact: docker.io becomes registry-1.docker.io */
        char *repository; /* "library/debian" */
        char *tag;        /* "latest" when neither tag nor digest is given; NULL with a digest only */
        char *digest;     /* "sha256:..." or NULL */
        bool plain_http;  /* loopback registries only (127.0.0.1, localhost, ::1) */
} OciRef;

int oci_ref_parse(const char *s, OciRef *ret);
void oci_ref_done(OciRef *r);

/* "localhost", "127.0.0.1" or "[::1]", with or without ":port": the only
 * hosts plain HTTP may go to. */
bool oci_registry_is_loopback(const char *registry);

/* The tag or digest to ask the registry for. */
const char *oci_ref_reference(const OciRef *r);

typedef struct OciBearerChallenge {
        char *realm;
        char *service; /* may be NULL */
        char *scope;   /* may be NULL */
} OciBearerChallenge;

/* Parse a WWW-Authenticate header value of the Bearer scheme:
 *   Bearer realm="https://auth.example/token",service="reg",scope="repository:x:pull"
 * -EOPNOTSUPP for other schemes, -EBADMSG for malformed values. */
int oci_bearer_challenge_parse(const char *value, OciBearerChallenge *ret);
void oci_bearer_challenge_done(OciBearerChallenge *c);
