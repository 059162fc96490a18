/* SPDX-License-Identifier: MIT */
#include "catalog-doc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "string-util.h"
#include "time-util.h"

static bool is_bundle_name(const struct dirent *de) {
        size_t n = strlen(de->d_name);
        return de->d_name[0] != '.' && n > 8 && streq(de->d_name + n - 8, ".tar.zst");
}

static json_t *entry_from_manifest(json_t *m, const char *url, uint64_t size, const char *sha) {
        json_t *e = json_pack("{s:O, s:O, s:O?, s:O?, s:s, s:I, s:s}", "name", json_object_get(m, "name"), "version",
                              json_object_get(m, "version"), "architecture", json_object_get(m, "architecture"),
                              "description", json_object_get(m, "description"), "url", url, "size", (json_int_t) size,
                              "sha256", sha);
        if (e && streq_ptr(json_string_value(json_object_get(m, "kind")), "image"))
                json_object_set(e, "kernel", json_object_get(m, "kernel"));
        return e;
}

static int add_bundle(int dirfd, const char *file, const char *base_url, json_t *images, json_t *kernels) {
        _cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return error_setf(-errno, "cannot open %s: %m", file);
        json_t *m = NULL;
        int r = bundle_read_manifest(fd, &m);
        if (r < 0)
                return error_setf(r, "%s: %s", file, error_last_message() ? error_last_message() : strerror(-r));
        char sha[SHA256_HEX_LEN + 1];
        uint64_t size = 0;
        if (lseek(fd, 0, SEEK_SET) < 0 || (r = sha256_fd(fd, sha, &size)) < 0) {
                json_decref(m);
                return error_setf(r < 0 ? r : -errno, "cannot read %s", file);
        }
        _cleanup_free_ char *url = NULL;
        if (base_url ? asprintf(&url, "%s%s%s", base_url, endswith(base_url, "/") ? "" : "/", file) < 0
                     : !(url = strdup(file))) {
                json_decref(m);
                return -ENOMEM;
        }
        bool image = streq_ptr(json_string_value(json_object_get(m, "kind")), "image");
        json_t *e = entry_from_manifest(m, url, size, sha);
        json_decref(m);
        if (!e || json_array_append_new(image ? images : kernels, e) < 0)
                return -ENOMEM;
        return 0;
}

static int entry_cmp(const void *a, const void *b) {
        json_t *x = *(json_t *const *) a, *y = *(json_t *const *) b;
        int c = strcmp(json_string_value(json_object_get(x, "name")), json_string_value(json_object_get(y, "name")));
        return c ? c
                 : strverscmp(json_string_value(json_object_get(x, "version")),
                              json_string_value(json_object_get(y, "version")));
}

static json_t *sorted(json_t *arr) {
        size_t n = json_array_size(arr);
        json_t **v = calloc(n ? n : 1, sizeof(*v));
        json_t *out = json_array();
        for (size_t i = 0; v && i < n; i++)
                v[i] = json_array_get(arr, i);
        if (v)
                qsort(v, n, sizeof(*v), entry_cmp);
        for (size_t i = 0; v && out && i < n; i++)
                json_array_append(out, v[i]);
        free(v);
        json_decref(arr);
        return out;
}

int catalog_build(int dirfd, const char *base_url, json_t **ret) {
        _cleanup_close_ int dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0)
                return -errno;
        _cleanup_closedir_ DIR *d = fdopendir(TAKE_FD(dfd));
        if (!d)
                return -errno;
        json_t *images = json_array(), *kernels = json_array();
        int r = images && kernels ? 0 : -ENOMEM;
        size_t count = 0;
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                if (!is_bundle_name(de))
                        continue;
                if (++count > CATALOG_ENTRIES_MAX)
                        r = error_setf(-E2BIG, "more than %d bundles in one catalog", CATALOG_ENTRIES_MAX);
                else
                        r = add_bundle(dirfd, de->d_name, base_url, images, kernels);
        }
        char ts[40];
        json_t *c = r < 0 ? NULL
                          : json_pack("{s:i, s:s, s:o, s:o}", "format", CATALOG_FORMAT, "generated_at",
                                      format_timestamp(ts, sizeof(ts), now_realtime()) ? ts : "", "images",
                                      sorted(images), "kernels", sorted(kernels));
        if (r < 0) {
                json_decref(images);
                json_decref(kernels);
                return r;
        }
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

static bool sha256_hex_is_valid(const char *s) {
        return s && strlen(s) == SHA256_HEX_LEN && strspn(s, "0123456789abcdef") == SHA256_HEX_LEN;
}

static int check_entry(json_t *e, bool image, size_t i) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *version = json_string_value(json_object_get(e, "version"));
        const char *url = json_string_value(json_object_get(e, "url"));
        json_t *size = json_object_get(e, "size"), *k = json_object_get(e, "kernel");
        const char *kname = json_string_value(json_object_get(k, "name"));
        const char *desc = json_string_value(json_object_get(e, "description"));
        if (!json_is_object(e) || !name || !name_is_valid(name) || !bundle_version_is_valid(version) || !url ||
            !url[0] || strlen(url) > CATALOG_URL_MAX || !json_is_integer(size) || json_integer_value(size) <= 0 ||
            !sha256_hex_is_valid(json_string_value(json_object_get(e, "sha256"))) ||
            (desc && strlen(desc) > BUNDLE_DESCRIPTION_MAX) || (image && (!kname || !name_is_valid(kname))))
                return error_setf(-EBADMSG, "the catalog's %s entry %zu is not valid", image ? "image" : "kernel",
                                  i + 1);
        return 0;
}

int catalog_parse(const char *text, size_t len, json_t **ret) {
        json_error_t jerr;
        json_t *c = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!c)
                return error_setf(-EBADMSG, "the catalog is not JSON: %s (line %d)", jerr.text, jerr.line);
        int r = 0;
        if (!json_is_object(c) || json_integer_value(json_object_get(c, "format")) != CATALOG_FORMAT)
                r = error_setf(-EPROTONOSUPPORT, "the catalog is not of format %d (written by another banger?)",
                               CATALOG_FORMAT);
        for (int kind = 0; r >= 0 && kind < 2; kind++) {
                json_t *list = json_object_get(c, kind ? "kernels" : "images");
                if (!list)
                        continue;
                if (!json_is_array(list) || json_array_size(list) > CATALOG_ENTRIES_MAX)
                        r = error_setf(-EBADMSG, "the catalog's %s are not a list of at most %d",
                                       kind ? "kernels" : "images", CATALOG_ENTRIES_MAX);
                for (size_t i = 0; r >= 0 && i < json_array_size(list); i++)
                        r = check_entry(json_array_get(list, i), !kind, i);
        }
        if (r < 0) {
                json_decref(c);
                return r;
        }
        *ret = c;
        return 0;
}

json_t *catalog_find(json_t *cat, const char *kind, const char *name, const char *version) {
        json_t *best = NULL, *e;
        size_t i;
        json_array_foreach (json_object_get(cat, kind), i, e) {
                const char *v = json_string_value(json_object_get(e, "version"));
                if (!streq_ptr(json_string_value(json_object_get(e, "name")), name) ||
                    (version && !streq_ptr(v, version)))
                        continue;
                if (!best || strverscmp(v, json_string_value(json_object_get(best, "version"))) > 0)
                        best = e;
        }
        return best;
}

int catalog_ref_parse(const char *ref, char **ret_name, char **ret_version) {
        const char *colon = strchr(ref, ':');
        _cleanup_free_ char *name = colon ? strndup(ref, (size_t) (colon - ref)) : strdup(ref);
        _cleanup_free_ char *version = colon ? strdup(colon + 1) : NULL;
        if (!name || (colon && !version))
                return -ENOMEM;
        if (!name_is_valid(name) || (version && !bundle_version_is_valid(version)))
                return error_setf(-EINVAL, "'%s' is not NAME or NAME:VERSION", ref);
        *ret_name = TAKE_PTR(name);
        *ret_version = TAKE_PTR(version);
        return 0;
}

bool catalog_url_is_valid(const char *url) {
        if (!url || strnlen(url, CATALOG_URL_MAX + 1) > CATALOG_URL_MAX)
                return false;
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= 0x20 || *p == 0x7f)
                        return false;
        const char *rest = startswith(url, "http://") ?: startswith(url, "https://") ?: startswith(url, "file://");
        return rest && *rest;
}
