/* SPDX-License-Identifier: MIT */
#pragma once

/* Reading one layer (a tar, plain or gzip/zstd compressed) into an OciTree.
 * The compressed bytes are hashed as libarchive pulls them, and the rest of
 * the file after the tar's end is hashed too, so a layer whose digest does
 * not match is refused; the tree is only written out after every layer
 * matched, so a mismatch never leaves a partial image. */

#include <stdint.h>

#include "oci-tree.h"

/* Called with the bytes consumed so far; non-zero cancels (-ECANCELED). */
typedef int (*OciLayerProgressFn)(uint64_t done, void *userdata);

/* Apply the layer held by fd (read from its current offset to EOF) as the
 * next layer of t. expected_digest ("sha256:...") is compared with the
 * digest of those bytes; name is used in messages. */
int oci_layer_apply(OciTree *t, int fd, const char *expected_digest, const char *name, OciLayerProgressFn progress,
                    void *userdata);
