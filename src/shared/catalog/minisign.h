/* SPDX-License-Identifier: MIT */
#pragma once

/* minisign (Ed25519) signatures, verified with libsodium: the public key a
 * user pastes into a [[catalog]] table and the detached .minisig a publisher
 * writes next to a catalog.
 *
 *   public key   base64 of "Ed" (2) + key id (8, little-endian) + Ed25519
 *                public key (32); alone, or the key file with its
 *                "untrusted comment:" line first
 *   signature    "untrusted comment: ..." / base64 of algorithm (2) + key id
 *                (8) + signature (64) / "trusted comment: TEXT" / base64 of
 *                the global signature (64) over signature || TEXT
 *
 * Algorithm "Ed" signs the data itself (legacy), "ED" signs its BLAKE2b-512
 * (prehashed, minisign's default since 0.9). Both the signature and the
 * global signature must verify and the key ids must match.
 *
 * Errors are -errno with a sentence recorded through error_setf(): -EBADMSG
 * for text that is not a key or a signature, -EKEYREJECTED for a signature
 * that does not verify or was made by another key. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MINISIGN_KEY_ID_LEN 8
#define MINISIGN_PUBLIC_KEY_LEN 32
#define MINISIGN_SIG_LEN 64
/* A .minisig is four short lines; anything larger is not one. */
#define MINISIGN_SIGNATURE_FILE_MAX 4096
#define MINISIGN_TRUSTED_COMMENT_MAX 1024

typedef struct MinisignPublicKey {
        uint8_t key_id[MINISIGN_KEY_ID_LEN];
        uint8_t key[MINISIGN_PUBLIC_KEY_LEN];
} MinisignPublicKey;

typedef struct MinisignSignature {
        bool prehashed; /* "ED": the signature covers BLAKE2b-512 of the data */
        uint8_t key_id[MINISIGN_KEY_ID_LEN];
        uint8_t sig[MINISIGN_SIG_LEN];
        char trusted_comment[MINISIGN_TRUSTED_COMMENT_MAX + 1];
        uint8_t global_sig[MINISIGN_SIG_LEN];
} MinisignSignature;

int minisign_public_key_parse(const char *text, MinisignPublicKey *ret);
/* The key id as minisign prints it (16 upper-case hex digits). */
void minisign_key_id_format(const uint8_t id[MINISIGN_KEY_ID_LEN], char out[2 * MINISIGN_KEY_ID_LEN + 1]);

int minisign_signature_parse(const char *text, size_t len, MinisignSignature *ret);

/* 0 when sig is key's signature of data (and of its trusted comment). */
int minisign_verify(const MinisignPublicKey *key, const MinisignSignature *sig, const void *data, size_t len);
