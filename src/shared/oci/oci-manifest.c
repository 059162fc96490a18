/* SPDX-License-Identifier: MIT */
#include "oci-manifest.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "macro.h"
#include "oci-digest.h"
#include "path-beneath.h"
#include "string-util.h"

#define _cleanup_json_ _cleanup_(json_decrefp)

void oci_descriptor_done(OciDescriptor *d) {
        free(d->media_type);
        free(d->digest);
        *d = (OciDescriptor){};
}

void oci_manifest_done(OciManifest *m) {
        oci_descriptor_done(&m->config);
        for (size_t i = 0; i < m->n_layers; i++)
                oci_descriptor_done(&m->layers[i]);
        free(m->layers);
        *m = (OciManifest){};
}

void oci_image_config_done(OciImageConfig *c) {
        free(c->runtime_json);
        strv_free(c->diff_ids);
        free(c->os);
        free(c->architecture);
        *c = (OciImageConfig){};
}

void docker_archive_manifest_done(DockerArchiveManifest *m) {
        free(m->config_path);
        strv_free(m->layer_paths);
        *m = (DockerArchiveManifest){};
}

static int load(const char *json, size_t len, const char *what, json_t **ret) {
        if (len > OCI_JSON_MAX)
                return error_setf(-EFBIG, "%s is larger than %u bytes", what, OCI_JSON_MAX);
        json_error_t err;
        json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
        if (!j)
                return error_setf(-EBADMSG, "%s is not valid JSON: %s", what, err.text);
        *ret = j;
        return 0;
}

static const char *get_str(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

static int descriptor_parse(json_t *o, const char *what, OciDescriptor *ret) {
        if (!json_is_object(o))
                return error_setf(-EBADMSG, "%s is not an object", what);
        const char *digest = get_str(o, "digest");
        json_t *size = json_object_get(o, "size");
        if (!oci_digest_is_valid(digest))
                return error_setf(-EBADMSG, "%s has an invalid or unsupported digest \"%s\"", what,
                                  digest ? digest : "");
        /* Every read of a blob is held to its size, so there must be one. */
        if (!size)
                return error_setf(-EBADMSG, "%s %s has no size", what, digest);
        if (!json_is_integer(size) || json_integer_value(size) <= 0)
                return error_setf(-EBADMSG, "%s %s has an invalid size (a positive integer is required)", what, digest);
        const char *mt = get_str(o, "mediaType");
        OciDescriptor d = {
                .digest = strdup(digest),
                .media_type = mt ? strdup(mt) : NULL,
                .size = (uint64_t) json_integer_value(size),
        };
        if (!d.digest || (mt && !d.media_type)) {
                oci_descriptor_done(&d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

int oci_document_kind(const char *json, size_t len, const char *content_type, OciDocumentKind *ret) {
        _cleanup_json_ json_t *j = NULL;
        int r = load(json, len, "image manifest", &j);
        if (r < 0)
                return r;
        if (!json_is_object(j))
                return error_setf(-EBADMSG, "image manifest is not a JSON object");
        json_t *sv = json_object_get(j, "schemaVersion");
        if (json_is_integer(sv) && json_integer_value(sv) == 1)
                return error_setf(-EOPNOTSUPP, "Docker schema 1 manifests are not supported");
        const char *mt = get_str(j, "mediaType");
        if (!mt && content_type && !startswith(content_type, "application/json"))
                mt = content_type;
        if (mt && (startswith(mt, OCI_MT_INDEX) || startswith(mt, DOCKER_MT_LIST)))
                *ret = OCI_DOCUMENT_INDEX;
        else if (mt && (startswith(mt, OCI_MT_MANIFEST) || startswith(mt, DOCKER_MT_MANIFEST)))
                *ret = OCI_DOCUMENT_MANIFEST;
        else if (mt)
                return error_setf(-EOPNOTSUPP, "unsupported manifest media type \"%s\"", mt);
        else if (json_is_array(json_object_get(j, "manifests")))
                *ret = OCI_DOCUMENT_INDEX;
        else if (json_is_array(json_object_get(j, "layers")))
                *ret = OCI_DOCUMENT_MANIFEST;
        else
                return error_setf(-EBADMSG, "document is neither an image index nor a manifest");
        return 0;
}

static bool platform_matches(json_t *entry, const char *os, const char *arch, size_t n_entries) {
        json_t *p = json_object_get(entry, "platform");
        if (!json_is_object(p))
                return n_entries == 1;
        return streq_ptr(get_str(p, "os"), os) && streq_ptr(get_str(p, "architecture"), arch);
}

int oci_index_select(const char *json, size_t len, const char *os, const char *arch, OciDescriptor *ret) {
        _cleanup_json_ json_t *j = NULL;
        int r = load(json, len, "image index", &j);
        if (r < 0)
                return r;
        json_t *ms = json_object_get(j, "manifests");
        if (!json_is_array(ms))
                return error_setf(-EBADMSG, "image index has no manifests array");
        size_t n = json_array_size(ms);
        if (n > OCI_INDEX_ENTRIES_MAX)
                return error_setf(-E2BIG, "image index has more than %u entries", OCI_INDEX_ENTRIES_MAX);
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(ms, i);
                if (!json_is_object(e) || !platform_matches(e, os, arch, n))
                        continue;
                return descriptor_parse(e, "image index entry", ret);
        }
        return error_setf(-ENOENT, "the image has no manifest for %s/%s", os, arch);
}

static bool layer_media_type_ok(const char *mt) {
        if (!mt)
                return true;
        const char *ok[] = {
                "application/vnd.oci.image.layer.v1.tar",
                "application/vnd.oci.image.layer.nondistributable.v1.tar",
                "application/vnd.docker.image.rootfs.diff.tar",
                "application/vnd.docker.image.rootfs.foreign.diff.tar",
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                const char *rest = startswith(mt, ok[i]);
                if (rest && (streq(rest, "") || streq(rest, "+gzip") || streq(rest, ".gzip") || streq(rest, "+zstd")))
                        return true;
        }
        return false;
}

int oci_manifest_parse(const char *json, size_t len, OciManifest *ret) {
        _cleanup_json_ json_t *j = NULL;
        int r = load(json, len, "image manifest", &j);
        if (r < 0)
                return r;
        json_t *layers = json_object_get(j, "layers");
        if (!json_is_array(layers))
                return error_setf(-EBADMSG, "image manifest has no layers array");
        size_t n = json_array_size(layers);
        if (n > OCI_LAYERS_MAX)
                return error_setf(-E2BIG, "image has %zu layers, more than %u", n, OCI_LAYERS_MAX);
        OciManifest m = {};
        if ((r = descriptor_parse(json_object_get(j, "config"), "image config descriptor", &m.config)) < 0)
                return r;
        m.layers = calloc(MAX(n, 1U), sizeof(OciDescriptor));
        if (!m.layers) {
                oci_manifest_done(&m);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                if ((r = descriptor_parse(json_array_get(layers, i), "layer descriptor", &m.layers[i])) < 0)
                        break;
                m.n_layers++;
                if (!layer_media_type_ok(m.layers[i].media_type)) {
                        r = error_setf(-EOPNOTSUPP, "unsupported layer media type \"%s\"", m.layers[i].media_type);
                        break;
                }
        }
        if (r < 0) {
                oci_manifest_done(&m);
                return r;
        }
        *ret = m;
        return 0;
}

/* Keep only what the runtime needs, so banger records a small document. */
static int runtime_subset(json_t *config, char **ret) {
        _cleanup_json_ json_t *out = json_object();
        if (!out)
                return -ENOMEM;
        const char *keys[] = { "Env", "Entrypoint", "Cmd", "WorkingDir", "User" };
        for (size_t i = 0; json_is_object(config) && i < ELEMENTSOF(keys); i++) {
                json_t *v = json_object_get(config, keys[i]);
                if (v && !json_is_null(v) && json_object_set(out, keys[i], v) < 0)
                        return -ENOMEM;
        }
        char *s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int diff_ids_parse(json_t *rootfs, OciImageConfig *c) {
        json_t *ids = json_object_get(rootfs, "diff_ids");
        size_t n = json_is_array(ids) ? json_array_size(ids) : 0;
        if (n > OCI_LAYERS_MAX)
                return error_setf(-E2BIG, "image config lists more than %u layers", OCI_LAYERS_MAX);
        c->diff_ids = calloc(n + 1, sizeof(char *));
        if (!c->diff_ids)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_array_get(ids, i);
                if (!json_is_string(v) || !oci_digest_is_valid(json_string_value(v)))
                        return error_setf(-EBADMSG, "image config has an invalid diff_id");
                if (!(c->diff_ids[i] = strdup(json_string_value(v))))
                        return -ENOMEM;
                c->n_diff_ids++;
        }
        return 0;
}

int oci_image_config_parse(const char *json, size_t len, OciImageConfig *ret) {
        _cleanup_json_ json_t *j = NULL;
        int r = load(json, len, "image config", &j);
        if (r < 0)
                return r;
        if (!json_is_object(j))
                return error_setf(-EBADMSG, "image config is not a JSON object");
        OciImageConfig c = {};
        const char *os = get_str(j, "os"), *arch = get_str(j, "architecture");
        if ((os && !(c.os = strdup(os))) || (arch && !(c.architecture = strdup(arch))))
                r = -ENOMEM;
        if (r == 0)
                r = runtime_subset(json_object_get(j, "config"), &c.runtime_json);
        if (r == 0)
                r = diff_ids_parse(json_object_get(j, "rootfs"), &c);
        if (r < 0) {
                oci_image_config_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

static int archive_path_dup(json_t *v, char **ret) {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (!s || !path_beneath_is_valid(s))
                return error_setf(-EBADMSG, "docker archive manifest names an invalid path \"%s\"", s ? s : "");
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int docker_archive_manifest_parse(const char *json, size_t len, DockerArchiveManifest *ret) {
        _cleanup_json_ json_t *j = NULL;
        int r = load(json, len, "manifest.json", &j);
        if (r < 0)
                return r;
        json_t *img = json_array_get(j, 0);
        json_t *layers = json_object_get(img, "Layers");
        if (!json_is_object(img) || !json_is_array(layers))
                return error_setf(-EBADMSG, "manifest.json does not describe an image");
        size_t n = json_array_size(layers);
        if (n > OCI_LAYERS_MAX)
                return error_setf(-E2BIG, "image has %zu layers, more than %u", n, OCI_LAYERS_MAX);
        DockerArchiveManifest m = {};
        r = archive_path_dup(json_object_get(img, "Config"), &m.config_path);
        if (r == 0 && !(m.layer_paths = calloc(n + 1, sizeof(char *))))
                r = -ENOMEM;
        for (size_t i = 0; r == 0 && i < n; i++) {
                r = archive_path_dup(json_array_get(layers, i), &m.layer_paths[i]);
                if (r == 0)
                        m.n_layers++;
        }
        if (r < 0) {
                docker_archive_manifest_done(&m);
                return r;
        }
        *ret = m;
        return 0;
}
