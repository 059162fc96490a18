/* SPDX-License-Identifier: MIT */
/* Fuzz an image archive as `image import FILE` reads it: the two-pass scan
 * and extraction (oci-archive.c) and the OCI layout / docker save loaders
 * over the scanned documents (oci-source.c), with a 1 MiB limit. The input
 * is the archive file itself (tar, or gzip/zstd of one). Besides memory
 * errors, a result must keep its promises: layers beneath the staging
 * directory, each no larger than the limit, and the staging area empty
 * again once the parts are released. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "oci-manifest.h"
#include "oci-source.h"
#include "path-beneath.h"

#define LIMIT (1U << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cache_fd = -EBADF;
static char cache_dir[] = "/tmp/banger-fuzz-archive-XXXXXX";

static void remove_cache(void) {
        (void) unlinkat(cache_fd, "tmp", AT_REMOVEDIR);
        (void) rmdir(cache_dir);
}

static void check_empty_staging(void) {
        int fd = openat(cache_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        /* Staging directories are its only entries: a link count above 2
         * means one was left behind. */
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_nlink != 2)
                abort();
        close(fd);
}

static void check_parts(const OciImageParts *p) {
        if (p->n_layers > OCI_LAYERS_MAX)
                abort();
        for (size_t i = 0; i < p->n_layers; i++) {
                struct stat st;
                if (!path_beneath_is_valid(p->layer_paths[i]) || !p->layer_digests[i])
                        abort();
                if (fstatat(p->dirfd, p->layer_paths[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
                    (uint64_t) st.st_size > LIMIT)
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (cache_fd < 0) {
                if (!mkdtemp(cache_dir) || (cache_fd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                        abort();
                atexit(remove_cache);
        }
        int fd = memfd_create("archive", MFD_CLOEXEC);
        if (fd < 0 || loop_write(fd, data, size) < 0)
                abort();
        char source[64];
        snprintf(source, sizeof(source), "/proc/self/fd/%d", fd);
        OciImportOptions o = { .source = source,
                               .kind = OCI_SOURCE_AUTO,
                               .cache_dirfd = cache_fd,
                               .os = "linux",
                               .arch = "amd64",
                               .max_bytes = LIMIT };
        OciImageParts p;
        error_clear();
        if (oci_source_open(&o, &p) == 0) {
                check_parts(&p);
                oci_image_parts_done(&p);
        }
        check_empty_staging();
        close(fd);
        return 0;
}
