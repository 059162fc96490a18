/* SPDX-License-Identifier: MIT */
#pragma once

/* Downloads of catalogs, signatures and bundles with libcurl: http://,
 * https:// and file:// URLs. They block: call them from a worker thread.
 * Errors are -errno with a sentence recorded through error_setf(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "file-tree.h"
#include "progress.h"

/* Attempts of one download: an interrupted transfer goes on from where it
 * stopped with an HTTP Range request (a file:// one from that offset). */
#define CATALOG_FETCH_ATTEMPTS 5

/* The body of url, at most max bytes, NUL-terminated. -ENOENT when the
 * server answers 404 (or the file is missing). */
int catalog_fetch_buffer(const char *url, size_t max, char **ret, size_t *ret_len);

typedef struct CatalogDownload {
        const char *url;
        int fd;        /* a new empty file, written with pwrite from offset 0 */
        uint64_t size; /* what the catalog says; 0: unknown, at most max */
        uint64_t max;
        const char *sha256; /* lowercase hex the bytes must hash to */
        Progress progress;  /* stage "download" */
        /* Asked after each chunk that arrived, and about once a second
         * while none do: true stops the download (-ECANCELED, "cancelled").
         * NULL: never. */
        bool (*cancelled)(void *userdata);
        void *cancel_userdata;
        /* Out: */
        uint64_t done;
        unsigned resumed; /* transfers taken up again with a Range request */
} CatalogDownload;

/* Download d->url into d->fd, hashing it as it arrives: the result is
 * refused (-EBADMSG) unless its size and sha256 are what d says. */
int catalog_download(CatalogDownload *d);

/* An entry's bundle URL made absolute against the catalog's own URL; a
 * catalog from the network may not point at a file:// URL. */
int catalog_resolve_url(const char *catalog_url, const char *url, char **ret);
