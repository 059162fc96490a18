/* SPDX-License-Identifier: MIT */
#include "minisign.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

#define UNTRUSTED_PREFIX "untrusted comment: "
#define TRUSTED_PREFIX "trusted comment: "

static int sodium_ready(void) {
        return sodium_init() < 0 ? error_setf(-EIO, "libsodium cannot be initialised") : 0;
}

/* Decode exactly len bytes of standard base64 from [b, e). */
static int base64_exact(const char *b, const char *e, uint8_t *out, size_t len) {
        size_t got = 0;
        if (sodium_base642bin(out, len, b, (size_t) (e - b), NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            got != len)
                return -EBADMSG;
        return 0;
}

/* The next line of [*p, end): sets [*b, *e) without its "\n" or "\r\n". */
static bool next_line(const char **p, const char *end, const char **b, const char **e) {
        if (*p >= end)
                return false;
        const char *nl = memchr(*p, '\n', (size_t) (end - *p));
        *b = *p;
        *e = nl ? nl : end;
        *p = nl ? nl + 1 : end;
        if (*e > *b && (*e)[-1] == '\r')
                (*e)--;
        return true;
}

static bool has_prefix(const char *b, const char *e, const char *prefix) {
        size_t n = strlen(prefix);
        return (size_t) (e - b) >= n && memcmp(b, prefix, n) == 0;
}

int minisign_public_key_parse(const char *text, MinisignPublicKey *ret) {
        const char *p = text, *end = text + strnlen(text, MINISIGN_SIGNATURE_FILE_MAX + 1), *b = NULL, *e = NULL;
        if (end - text > MINISIGN_SIGNATURE_FILE_MAX || !next_line(&p, end, &b, &e))
                return error_setf(-EBADMSG, "the minisign public key is empty or too long");
        if (has_prefix(b, e, UNTRUSTED_PREFIX) && !next_line(&p, end, &b, &e))
                return error_setf(-EBADMSG, "the minisign public key file has no key line");
        while (b < e && (*b == ' ' || *b == '\t'))
                b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
        uint8_t raw[2 + MINISIGN_KEY_ID_LEN + MINISIGN_PUBLIC_KEY_LEN];
        int r = sodium_ready();
        if (r < 0)
                return r;
        if (base64_exact(b, e, raw, sizeof(raw)) < 0 || raw[0] != 'E' || raw[1] != 'd')
                return error_setf(-EBADMSG,
                                  "'%.*s' is not a minisign public key (expected the RW... line of the key file)",
                                  (int) (e - b > 80 ? 80 : e - b), b);
        memcpy(ret->key_id, raw + 2, MINISIGN_KEY_ID_LEN);
        memcpy(ret->key, raw + 2 + MINISIGN_KEY_ID_LEN, MINISIGN_PUBLIC_KEY_LEN);
        return 0;
}

void minisign_key_id_format(const uint8_t id[MINISIGN_KEY_ID_LEN], char out[2 * MINISIGN_KEY_ID_LEN + 1]) {
        /* minisign prints the little-endian id as a number. */
        for (size_t i = 0; i < MINISIGN_KEY_ID_LEN; i++)
                snprintf(out + 2 * i, 3, "%02X", id[MINISIGN_KEY_ID_LEN - 1 - i]);
}

static int parse_sig_line(const char *b, const char *e, MinisignSignature *ret) {
        uint8_t raw[2 + MINISIGN_KEY_ID_LEN + MINISIGN_SIG_LEN];
        if (base64_exact(b, e, raw, sizeof(raw)) < 0)
                return error_setf(-EBADMSG, "the signature line of the minisign signature is not valid");
        if (raw[0] != 'E' || (raw[1] != 'd' && raw[1] != 'D'))
                return error_setf(-EBADMSG, "the minisign signature uses an unknown algorithm");
        ret->prehashed = raw[1] == 'D';
        memcpy(ret->key_id, raw + 2, MINISIGN_KEY_ID_LEN);
        memcpy(ret->sig, raw + 2 + MINISIGN_KEY_ID_LEN, MINISIGN_SIG_LEN);
        return 0;
}

int minisign_signature_parse(const char *text, size_t len, MinisignSignature *ret) {
        if (len > MINISIGN_SIGNATURE_FILE_MAX)
                return error_setf(-EBADMSG, "the minisign signature is larger than %d bytes",
                                  MINISIGN_SIGNATURE_FILE_MAX);
        int r = sodium_ready();
        if (r < 0)
                return r;
        MinisignSignature s = {};
        const char *p = text, *end = text + len, *b = NULL, *e = NULL;
        if (!next_line(&p, end, &b, &e) || !has_prefix(b, e, UNTRUSTED_PREFIX))
                return error_setf(-EBADMSG, "the minisign signature does not start with an untrusted comment");
        if (!next_line(&p, end, &b, &e))
                return error_setf(-EBADMSG, "the minisign signature has no signature line");
        r = parse_sig_line(b, e, &s);
        if (r < 0)
                return r;
        if (!next_line(&p, end, &b, &e) || !has_prefix(b, e, TRUSTED_PREFIX))
                return error_setf(-EBADMSG, "the minisign signature has no trusted comment");
        b += strlen(TRUSTED_PREFIX);
        if (e - b > MINISIGN_TRUSTED_COMMENT_MAX || memchr(b, '\0', (size_t) (e - b)))
                return error_setf(-EBADMSG, "the trusted comment of the minisign signature is too long or not text");
        memcpy(s.trusted_comment, b, (size_t) (e - b));
        s.trusted_comment[e - b] = '\0';
        if (!next_line(&p, end, &b, &e) || base64_exact(b, e, s.global_sig, MINISIGN_SIG_LEN) < 0)
                return error_setf(-EBADMSG, "the global signature of the minisign signature is missing or not valid");
        /* Nothing but blank lines may follow. */
        while (next_line(&p, end, &b, &e))
                if (e > b)
                        return error_setf(-EBADMSG, "the minisign signature has text after its global signature");
        *ret = s;
        return 0;
}

static int check_data(const MinisignPublicKey *key, const MinisignSignature *sig, const void *data, size_t len) {
        if (!sig->prehashed)
                return crypto_sign_verify_detached(sig->sig, data, len, key->key);
        uint8_t hash[crypto_generichash_BYTES_MAX];
        if (crypto_generichash(hash, sizeof(hash), data, len, NULL, 0) != 0)
                return -1;
        return crypto_sign_verify_detached(sig->sig, hash, sizeof(hash), key->key);
}

int minisign_verify(const MinisignPublicKey *key, const MinisignSignature *sig, const void *data, size_t len) {
        int r = sodium_ready();
        if (r < 0)
                return r;
        if (memcmp(key->key_id, sig->key_id, MINISIGN_KEY_ID_LEN) != 0) {
                char want[17], got[17];
                minisign_key_id_format(key->key_id, want);
                minisign_key_id_format(sig->key_id, got);
                return error_setf(-EKEYREJECTED, "signed by key %s, not by the configured key %s", got, want);
        }
        if (check_data(key, sig, data, len) != 0)
                return error_setf(-EKEYREJECTED,
                                  "the signature does not match the data (altered, or signed by another key)");
        size_t tlen = strlen(sig->trusted_comment);
        uint8_t global[MINISIGN_SIG_LEN + MINISIGN_TRUSTED_COMMENT_MAX];
        memcpy(global, sig->sig, MINISIGN_SIG_LEN);
        memcpy(global + MINISIGN_SIG_LEN, sig->trusted_comment, tlen);
        if (crypto_sign_verify_detached(sig->global_sig, global, MINISIGN_SIG_LEN + tlen, key->key) != 0)
                return error_setf(-EKEYREJECTED,
                                  "the trusted comment's signature does not verify (the comment was altered)");
        return 0;
}
