/* SPDX-License-Identifier: MIT */
#include "oci-digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "string-util.h"

struct OciHasher {
        EVP_MD_CTX *ctx;
};

int oci_hasher_new(OciHasher **ret) {
        OciHasher *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
                oci_hasher_free(h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

void oci_hasher_free(OciHasher *h) {
        if (!h)
                return;
        EVP_MD_CTX_free(h->ctx);
        free(h);
}

int oci_hasher_update(OciHasher *h, const void *data, size_t len) {
        if (len == 0)
                return 0;
        return EVP_DigestUpdate(h->ctx, data, len) == 1 ? 0 : -EIO;
}

int oci_hasher_final(OciHasher *h, char ret[OCI_DIGEST_STRLEN]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len != OCI_DIGEST_HEX_LEN / 2)
                return -EIO;
        memcpy(ret, "sha256:", 7);
        for (unsigned i = 0; i < len; i++)
                snprintf(ret + 7 + 2 * i, 3, "%02x", md[i]);
        return 0;
}

int oci_digest_buffer(const void *data, size_t len, char ret[OCI_DIGEST_STRLEN]) {
        _cleanup_oci_hasher_ OciHasher *h = NULL;
        int r = oci_hasher_new(&h);
        if (r < 0)
                return r;
        if ((r = oci_hasher_update(h, data, len)) < 0)
                return r;
        return oci_hasher_final(h, ret);
}

bool oci_digest_is_valid(const char *digest) {
        const char *hex = digest ? startswith(digest, "sha256:") : NULL;
        if (!hex || strlen(hex) != OCI_DIGEST_HEX_LEN)
                return false;
        for (const char *p = hex; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

const char *oci_digest_hex(const char *digest) {
        return oci_digest_is_valid(digest) ? digest + 7 : NULL;
}
