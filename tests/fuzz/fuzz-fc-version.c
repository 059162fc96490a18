/* SPDX-License-Identifier: MIT */
/* Fuzz the parser of `firecracker --version` output. A successful parse must
 * round-trip: printing the version and parsing it again gives the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "firecracker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        FcVersion v, again;
        error_clear();
        if (fc_parse_version(s, &v) == 0) {
                char buf[64];
                snprintf(buf, sizeof(buf), "Firecracker v%u.%u.%u\n", v.major, v.minor, v.patch);
                if (fc_parse_version(buf, &again) < 0 || again.major != v.major || again.minor != v.minor ||
                    again.patch != v.patch)
                        abort();
                (void) fc_version_check(&v);
        }
        free(s);
        return 0;
}
