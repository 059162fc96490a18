/* SPDX-License-Identifier: MIT */
#include "crypto-dl.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>

#include "dlopen-lib.h"
#include "macro.h"

_Static_assert(OPENSSL_VERSION_MAJOR == 3, "OpenSSL 3 is libcrypto.so.3");

CRYPTO_DL_SYMBOLS(DLSYM_DEFINE)

int crypto_dl_open(void) {
        static void *handle;
        static const DlSymbol syms[] = { CRYPTO_DL_SYMBOLS(DLSYM_ENTRY) };
        return dlopen_lib(&handle, "libcrypto.so.3", syms, ELEMENTSOF(syms));
}

int crypto_dl_sha256(const void *data, size_t len, char ret[static SHA256_HEX_LEN + 1]) {
        int r = crypto_dl_open();
        if (r < 0)
                return r;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (sym_EVP_Digest(data, len, md, &n, sym_EVP_sha256(), NULL) != 1 || n * 2 != SHA256_HEX_LEN)
                return -EIO;
        for (unsigned i = 0; i < n; i++)
                snprintf(ret + 2 * i, 3, "%02x", md[i]);
        return 0;
}

int crypto_dl_base64_decode(const char *s, size_t len, unsigned char *out) {
        if (len > INT_MAX)
                return -E2BIG;
        int r = crypto_dl_open();
        if (r < 0)
                return r;
        int n = sym_EVP_DecodeBlock(out, (const unsigned char *) s, (int) len);
        if (n < 0)
                return -EBADMSG;
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        for (size_t i = len; i > 0 && s[i - 1] == '='; i--)
                n--;
        return n;
}
