/* SPDX-License-Identifier: MIT */
#pragma once

/* libcrypto (OpenSSL 3) for what banger computes with it (sha256, base64),
 * loaded when one is needed (dlopen-lib.h): linking it cost every banger
 * process about 1 ms here. */

#include <openssl/evp.h>
#include <stddef.h>

#include "dlopen-lib.h"
#include "file-tree.h" /* SHA256_HEX_LEN */

#define CRYPTO_DL_SYMBOLS(X)  \
        X(EVP_DecodeBlock)    \
        X(EVP_Digest)         \
        X(EVP_DigestFinal_ex) \
        X(EVP_DigestInit_ex)  \
        X(EVP_DigestUpdate)   \
        X(EVP_MD_CTX_free)    \
        X(EVP_MD_CTX_new)     \
        X(EVP_sha256)

CRYPTO_DL_SYMBOLS(DLSYM_DECLARE)

/* 0, or -ENOPKG with the cause recorded (error_setf). */
int crypto_dl_open(void);

/* The data's sha256 in lowercase hex, as util's sha256_buffer() gives it.
 * 0, -ENOPKG (libcrypto missing, the cause recorded) or -EIO. */
int crypto_dl_sha256(const void *data, size_t len, char ret[static SHA256_HEX_LEN + 1]);
/* Decode len bytes of base64 (padding allowed) into out (room for len / 4 * 3
 * bytes). The decoded length, or -ENOPKG, or -EBADMSG when it is not base64. */
int crypto_dl_base64_decode(const char *s, size_t len, unsigned char *out);
