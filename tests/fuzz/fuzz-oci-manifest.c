/* SPDX-License-Identifier: MIT */
/* Fuzz what an image source or registry controls: the index / manifest /
 * config / docker manifest.json parsers, layer path normalisation, image
 * references and the Bearer challenge. The first byte picks the parser.
 * Besides memory errors, results must keep their documented promises (a
 * parsed descriptor always has a valid digest and a positive size). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "oci-digest.h"
#include "oci-manifest.h"
#include "oci-ref.h"
#include "oci-tree.h"
#include "path-beneath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_documents(const char *s, size_t n) {
        OciDocumentKind kind;
        OciDescriptor d;
        OciManifest m;
        if (oci_document_kind(s, n, NULL, &kind) < 0)
                return;
        if (oci_index_select(s, n, "linux", "amd64", &d) == 0) {
                if (!oci_digest_is_valid(d.digest) || d.size == 0)
                        abort();
                oci_descriptor_done(&d);
        }
        if (oci_manifest_parse(s, n, &m) == 0) {
                if (!oci_digest_is_valid(m.config.digest) || m.config.size == 0 || m.n_layers > OCI_LAYERS_MAX)
                        abort();
                for (size_t i = 0; i < m.n_layers; i++)
                        if (!oci_digest_is_valid(m.layers[i].digest) || m.layers[i].size == 0)
                                abort();
                oci_manifest_done(&m);
        }
}

static void fuzz_configs(const char *s, size_t n) {
        OciImageConfig c;
        DockerArchiveManifest dm;
        if (oci_image_config_parse(s, n, &c) == 0) {
                for (size_t i = 0; i < c.n_diff_ids; i++)
                        if (!oci_digest_is_valid(c.diff_ids[i]))
                                abort();
                if (!c.runtime_json)
                        abort();
                oci_image_config_done(&c);
        }
        if (docker_archive_manifest_parse(s, n, &dm) == 0) {
                if (!path_beneath_is_valid(dm.config_path))
                        abort();
                for (size_t i = 0; i < dm.n_layers; i++)
                        if (!path_beneath_is_valid(dm.layer_paths[i]))
                                abort();
                docker_archive_manifest_done(&dm);
        }
}

/* A normalized path is "" or relative, with no empty, "." or ".." part. */
static void fuzz_path(const char *s) {
        char *p = NULL;
        if (oci_path_normalize(s, &p) < 0)
                return;
        if (*p && !path_beneath_is_valid(p))
                abort();
        free(p);
}

static void fuzz_ref(const char *s) {
        OciRef r;
        OciBearerChallenge c;
        if (oci_ref_parse(s, &r) == 0) {
                if (!r.host || !r.repository || (!r.tag && !r.digest) || strpbrk(r.host, "/@?#% "))
                        abort();
                if (r.digest && !oci_digest_is_valid(r.digest))
                        abort();
                oci_ref_done(&r);
        }
        if (oci_bearer_challenge_parse(s, &c) == 0) {
                if (!c.realm || !*c.realm)
                        abort();
                oci_bearer_challenge_done(&c);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > (1U << 20))
                return 0;
        char *s = malloc(size);
        if (!s)
                return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        error_clear();
        switch (data[0] % 4) {
        case 0:
                fuzz_documents(s, size - 1);
                break;
        case 1:
                fuzz_configs(s, size - 1);
                break;
        case 2:
                fuzz_path(s);
                break;
        default:
                fuzz_ref(s);
        }
        free(s);
        return 0;
}
