/* SPDX-License-Identifier: MIT */
/* Fuzz a layer as an image hands it over: a tar, plain or gzip/zstd
 * compressed, applied twice (so the second copy replaces, whites out and
 * hard-links against the first) to an in-memory tree whose spool is a
 * memfd held to 4 MiB of content and 1 MiB on disk. The expected digest is
 * the input's own, so a layer that parses is applied to its end. Besides
 * memory errors: the spool never passes either limit, and the tree never
 * has more inodes than names. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "oci-digest.h"
#include "oci-layer.h"
#include "oci-tree.h"

#define CONTENT_MAX (4U << 20)
#define SPACE_MAX (1U << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char digest[OCI_DIGEST_STRLEN];
        int in = memfd_create("layer", MFD_CLOEXEC), spool = memfd_create("spool", MFD_CLOEXEC);
        if (in < 0 || spool < 0 || loop_write(in, data, size) < 0 || oci_digest_buffer(data, size, digest) < 0)
                abort();
        OciTree *t = NULL;
        if (oci_tree_new(spool, &t) < 0)
                abort();
        oci_tree_set_spool_limits(t, CONTENT_MAX, SPACE_MAX);
        error_clear();
        for (int round = 0; round < 2; round++)
                if (lseek(in, 0, SEEK_SET) < 0 || oci_layer_apply(t, in, digest, "fuzz", NULL, NULL) < 0)
                        break;
        struct stat st;
        uint64_t bytes, inodes;
        if (fstat(t->spool_fd, &st) < 0 || t->spool_end > CONTENT_MAX ||
            (uint64_t) st.st_blocks * 512 > SPACE_MAX + (64U << 10))
                abort();
        oci_tree_stats(t, &bytes, &inodes);
        if (inodes > t->n_nodes)
                abort();
        oci_tree_free(t);
        close(in);
        return 0;
}
