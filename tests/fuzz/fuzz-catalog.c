/* SPDX-License-Identifier: MIT */
/* A catalog document comes from a server (after its signature verified, but
 * a publisher's tool may be wrong) and a bundle's manifest from the bundle:
 * whatever parses as a catalog has entries whose names, versions and
 * sha256s are valid, and checking the same JSON as a manifest never
 * crashes. */
#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "bundle.h"
#include "catalog-doc.h"
#include "file-tree.h"
#include "string-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entries(json_t *list) {
        size_t i;
        json_t *e;
        json_array_foreach (list, i, e) {
                assert(name_is_valid(json_string_value(json_object_get(e, "name"))));
                assert(bundle_version_is_valid(json_string_value(json_object_get(e, "version"))));
                assert(strlen(json_string_value(json_object_get(e, "sha256"))) == SHA256_HEX_LEN);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > CATALOG_MAX)
                return 0;
        json_t *c = NULL;
        if (catalog_parse((const char *) data, size, &c) == 0) {
                check_entries(json_object_get(c, "images"));
                check_entries(json_object_get(c, "kernels"));
                (void) catalog_find(c, "images", "debian", NULL);
                (void) catalog_find(c, "kernels", "k", "1.0");
                json_decref(c);
        }
        json_t *m = json_loadb((const char *) data, size, 0, NULL);
        if (m) {
                (void) bundle_manifest_check(m);
                json_decref(m);
        }
        return 0;
}
