/* SPDX-License-Identifier: MIT */
#include "catalog-source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog-doc.h"
#include "catalog-fetch.h"
#include "error.h"
#include "macro.h"
#include "minisign.h"

static int verify(const CatalogSource *src, const char *text, size_t len) {
        MinisignPublicKey key;
        int r = minisign_public_key_parse(src->public_key, &key);
        if (r < 0)
                return error_setf(r, "the public_key of catalog %s is not a minisign public key: %s", src->url,
                                  error_last_message() ?: "unreadable");
        _cleanup_free_ char *sig_url = NULL, *sig_text = NULL;
        size_t sig_len = 0;
        if (asprintf(&sig_url, "%s.minisig", src->url) < 0)
                return -ENOMEM;
        r = catalog_fetch_buffer(sig_url, MINISIGN_SIGNATURE_FILE_MAX, &sig_text, &sig_len);
        if (r == -ENOENT)
                return error_setf(-EKEYREJECTED, "catalog %s is not signed (no %s): refused", src->url, sig_url);
        if (r < 0)
                return r;
        MinisignSignature sig;
        r = minisign_signature_parse(sig_text, sig_len, &sig);
        if (r >= 0)
                r = minisign_verify(&key, &sig, text, len);
        if (r < 0)
                return error_setf(r == -EBADMSG ? r : -EKEYREJECTED,
                                  "catalog %s does not verify with its public_key: %s", src->url,
                                  error_last_message() ?: "bad signature");
        return 0;
}

int catalog_source_load(const CatalogSource *src, json_t **ret, bool *ret_verified) {
        if (!src->public_key && !src->insecure)
                return error_setf(-EKEYREJECTED,
                                  "catalog %s has no public_key: add its minisign key, or insecure = true to "
                                  "trust it unsigned",
                                  src->url);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = catalog_fetch_buffer(src->url, CATALOG_MAX, &text, &len);
        if (r < 0)
                return r;
        if (src->public_key && (r = verify(src, text, len)) < 0)
                return r;
        r = catalog_parse(text, len, ret);
        if (r < 0)
                return error_setf(r, "catalog %s: %s", src->url, error_last_message() ?: "not a catalog");
        if (ret_verified)
                *ret_verified = src->public_key != NULL;
        return 0;
}
