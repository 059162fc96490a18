/* SPDX-License-Identifier: MIT */
/* minisign signature files and public keys come from a catalog's server and
 * a user's config: whatever parses has a trusted comment that is a bounded C
 * string, and verifying it against a fixed key and the input never crashes
 * and never succeeds for a signature the key did not make. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "minisign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A real key (minisign -G); no fuzzer input can carry its signature. */
static const char key_text[] = "RWSmJvKxMVfHGCVfikD/0HNiXLp7z5qicPm/b3fhCM0gurtHx2Rm0952";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > MINISIGN_SIGNATURE_FILE_MAX + 16)
                return 0;
        MinisignSignature sig;
        if (minisign_signature_parse((const char *) data, size, &sig) == 0) {
                assert(strlen(sig.trusted_comment) <= MINISIGN_TRUSTED_COMMENT_MAX);
                MinisignPublicKey key;
                if (minisign_public_key_parse(key_text, &key) == 0)
                        assert(minisign_verify(&key, &sig, data, size) < 0);
        }
        char *text = malloc(size + 1);
        assert(text);
        memcpy(text, data, size);
        text[size] = 0;
        MinisignPublicKey k;
        (void) minisign_public_key_parse(text, &k);
        free(text);
        return 0;
}
