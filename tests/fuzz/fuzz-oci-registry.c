/* SPDX-License-Identifier: MIT */
/* Fuzz what a registry (or anything between it and banger) sends besides
 * manifests: raw header lines, the token endpoint's JSON reply, an error
 * page's JSON, and the token realm the challenge names. The first byte picks
 * the parser. Besides memory errors: a header value is trimmed, shorter than
 * its line and free of control characters; a token is non-empty and fit for
 * a header line (no control character); an error message always ends inside
 * its buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "oci-registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_header(const char *s, size_t n) {
        static const char *const names[] = { "WWW-Authenticate", "Content-Type" };
        for (size_t i = 0; i < 2; i++) {
                char *v = NULL;
                int r = oci_registry_header_value(s, n, names[i], &v);
                if (r < 0)
                        abort();
                if (r == 0)
                        continue;
                size_t vl = strlen(v);
                if (vl >= n || (vl > 0 && (v[0] == ' ' || v[0] == '\t' || v[vl - 1] == ' ')))
                        abort();
                for (const char *p = v; *p; p++)
                        if (((unsigned char) *p < 0x20 && *p != '\t') || *p == 0x7f)
                                abort();
                /* What the client does with the challenge next. */
                OciBearerChallenge c;
                if (i == 0 && oci_bearer_challenge_parse(v, &c) == 0) {
                        (void) oci_registry_realm_is_allowed(true, c.realm);
                        oci_bearer_challenge_done(&c);
                }
                free(v);
        }
}

static void fuzz_token(const char *s, size_t n) {
        char *tok = NULL;
        if (oci_registry_token_parse(s, n, &tok) < 0)
                return;
        if (!*tok)
                abort();
        for (const char *p = tok; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        abort();
        free(tok);
}

static void fuzz_error_page(const char *s, size_t n) {
        char buf[64];
        memset(buf, 'x', sizeof(buf));
        oci_registry_error_message(s, n, buf, sizeof(buf));
        if (!memchr(buf, '\0', sizeof(buf)))
                abort();
}

/* A realm that passes for a plain HTTP registry is HTTPS or names a
 * loopback host; without plain HTTP only HTTPS passes. */
static void fuzz_realm(const char *s) {
        bool loose = oci_registry_realm_is_allowed(true, s), strict = oci_registry_realm_is_allowed(false, s);
        if (strict && strncmp(s, "https://", 8) != 0)
                abort();
        if (strict && !loose)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > (64U << 10))
                return 0;
        char *s = malloc(size);
        if (!s)
                return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        error_clear();
        switch (data[0] % 4) {
        case 0:
                fuzz_header(s, size - 1);
                break;
        case 1:
                fuzz_token(s, size - 1);
                break;
        case 2:
                fuzz_error_page(s, size - 1);
                break;
        default:
                fuzz_realm(s);
        }
        free(s);
        return 0;
}
