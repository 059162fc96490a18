/* SPDX-License-Identifier: MIT */
#pragma once

/* What a bundle holds, collected from a registered image and kernel before
 * anything is written: paths in the archive, sources, modes, sizes, sha256. */

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "file-tree.h"
#include "progress.h"
#include "store.h"

typedef struct BundleEntry {
        char *path;  /* in the archive: "rootfs.ext4", "kernel/modules/6.1.0/..." */
        char *src;   /* absolute path of a regular file's source */
        mode_t mode; /* type and permission bits */
        uint64_t size;
        uint64_t data; /* size less its holes: what the file takes unpacked */
        char sha256[SHA256_HEX_LEN + 1];
} BundleEntry;

typedef struct BundleEntries {
        BundleEntry *v;
        size_t n, cap;
} BundleEntries;

void bundle_entries_done(BundleEntries *es);
/* The image's disks (image may be NULL) and the kernel's files. */
int bundle_entries_collect(const KernelRecord *k, const ImageRecord *image, BundleEntries *es);
/* sha256, size and data bytes of every regular file (stage "hash"). */
int bundle_entries_hash(BundleEntries *es, const Progress *p);
uint64_t bundle_entries_data_bytes(const BundleEntries *es);
json_t *bundle_entry_to_json(const BundleEntry *e);
