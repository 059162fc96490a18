/* SPDX-License-Identifier: MIT */
#pragma once

/* One configured catalog ([[catalog]] in config.toml): its document fetched
 * and its minisign signature (the catalog's URL plus ".minisig") checked
 * against the configured key before anything in it is believed. Blocks:
 * workers only. */

#include <jansson.h>
#include <stdbool.h>

typedef struct CatalogSource {
        const char *url;
        const char *public_key; /* minisign public key (RW...); NULL: none */
        bool insecure;          /* a catalog without a key is trusted unsigned */
} CatalogSource;

/* Fetch, verify and parse. Refused: a catalog without a key unless
 * insecure (-EKEYREJECTED), a missing signature (-EKEYREJECTED), one that
 * does not verify or was made by another key (-EKEYREJECTED), a document
 * that is not a catalog (-EBADMSG). *ret_verified says whether a signature
 * was checked (false only for an insecure catalog without a key). */
int catalog_source_load(const CatalogSource *src, json_t **ret, bool *ret_verified);
