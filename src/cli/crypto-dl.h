/* SPDX-License-Identifier: MIT */
#pragma once

/* libcrypto (OpenSSL 3) for the two things banger computes with it, loaded
 * when one is needed (dlopen-lib.h): linking it cost every banger process
 * about 1 ms here. */

#include <stddef.h>

#include "file-tree.h" /* SHA256_HEX_LEN */

/* The data's sha256 in lowercase hex, as util's sha256_buffer() gives it.
 * 0, -ENOPKG (libcrypto missing, the cause recorded) or -EIO. */
int crypto_dl_sha256(const void *data, size_t len, char ret[static SHA256_HEX_LEN + 1]);
/* Decode len bytes of base64 (padding allowed) into out (room for len / 4 * 3
 * bytes). The decoded length, or -ENOPKG, or -EBADMSG when it is not base64. */
int crypto_dl_base64_decode(const char *s, size_t len, unsigned char *out);
