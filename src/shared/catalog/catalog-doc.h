/* SPDX-License-Identifier: MIT */
#pragma once

/* The catalog document (docs/catalogs.md): what a publisher signs and a
 * [[catalog]] URL serves.
 *
 *   {"format": 1, "generated_at": "...",
 *    "images":  [{"name", "version", "architecture", "description", "url",
 *                 "size", "sha256", "kernel": {"name", "version"}}],
 *    "kernels": [{"name", "version", "architecture", "description", "url",
 *                 "size", "sha256"}]}
 *
 * "url" is the bundle's, absolute or relative to the catalog's own URL. */

#include <jansson.h>
#include <stdbool.h>

#define CATALOG_FORMAT 1
#define CATALOG_MAX (4U << 20)
#define CATALOG_ENTRIES_MAX 4096

/* The catalog of the bundles (*.tar.zst) in the directory dirfd, sorted by
 * kind, name and version; each url is base_url/FILE, or FILE alone when
 * base_url is NULL. */
int catalog_build(int dirfd, const char *base_url, json_t **ret);

/* Check a catalog document fetched from outside: format, and each entry's
 * name, version, url, size and sha256 (and kernel, for an image); at most
 * CATALOG_ENTRIES_MAX entries. */
int catalog_parse(const char *text, size_t len, json_t **ret);

/* The entry of kind ("images" or "kernels") named name: the one of that
 * version, or the highest version (strverscmp) when version is NULL.
 * Borrowed from cat; NULL when there is none. */
json_t *catalog_find(json_t *cat, const char *kind, const char *name, const char *version);

/* True for an http://, https:// or file:// URL of sane length. */
#define CATALOG_URL_MAX 2048
bool catalog_url_is_valid(const char *url);

/* Split "NAME[:VERSION]"; -EINVAL when either part is not valid. */
int catalog_ref_parse(const char *ref, char **ret_name, char **ret_version);
