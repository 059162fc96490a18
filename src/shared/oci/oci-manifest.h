/* SPDX-License-Identifier: MIT */
#pragma once

/* The JSON documents of an image: OCI index / Docker manifest list, OCI /
 * Docker v2 manifest, the image config, and the manifest.json of a
 * `docker save` archive. Parsed with jansson under size and count limits;
 * every digest and path is validated before anyone uses it. */

#include <stddef.h>
#include <stdint.h>

#define OCI_JSON_MAX (4U << 20)
#define OCI_LAYERS_MAX 128
#define OCI_INDEX_ENTRIES_MAX 1024

#define OCI_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define DOCKER_MT_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

typedef enum OciDocumentKind {
        OCI_DOCUMENT_MANIFEST,
        OCI_DOCUMENT_INDEX,
} OciDocumentKind;

typedef struct OciDescriptor {
        char *media_type; /* may be NULL in an index entry */
        char *digest;     /* always valid */
        uint64_t size;    /* always positive: a descriptor without a size is refused */
} OciDescriptor;

typedef struct OciManifest {
        OciDescriptor config;
        OciDescriptor *layers;
        size_t n_layers;
} OciManifest;

typedef struct OciImageConfig {
        char *runtime_json; /* {"Env":[...],"Entrypoint":[...],"Cmd":[...],"WorkingDir":"","User":""} */
        char **diff_ids;    /* NULL-terminated, one per layer */
        size_t n_diff_ids;
        char *os;
        char *architecture;
} OciImageConfig;

typedef struct DockerArchiveManifest {
        char *config_path;  /* relative path inside the archive */
        char **layer_paths; /* NULL-terminated */
        size_t n_layers;
} DockerArchiveManifest;

void oci_descriptor_done(OciDescriptor *d);
void oci_manifest_done(OciManifest *m);
void oci_image_config_done(OciImageConfig *c);
void docker_archive_manifest_done(DockerArchiveManifest *m);

/* Index or manifest? From the mediaType field, else from the content type
 * the registry sent, else from the shape. Schema 1 manifests: -EOPNOTSUPP. */
int oci_document_kind(const char *json, size_t len, const char *content_type, OciDocumentKind *ret);

/* Pick the manifest for os/arch from an index (entries without a platform
 * match when they are the only one; attestation entries never match). */
int oci_index_select(const char *json, size_t len, const char *os, const char *arch, OciDescriptor *ret);

int oci_manifest_parse(const char *json, size_t len, OciManifest *ret);

int oci_image_config_parse(const char *json, size_t len, OciImageConfig *ret);

/* The first image of a `docker save` manifest.json. */
int docker_archive_manifest_parse(const char *json, size_t len, DockerArchiveManifest *ret);
