/* SPDX-License-Identifier: MIT */
/* Reading a bundle's manifest, and the checks every member's path passes
 * before anything of a bundle from outside is written to disk. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle-internal.h"
#include "bundle.h"
#include "error.h"
#include "file-tree.h"
#include "string-util.h"

/* Calls fn on each component of [p, p + n); stops at its first false. */
static bool each_component(const char *p, bool (*fn)(const char *c, size_t n, void *u), void *u) {
        while (*p) {
                size_t n = strcspn(p, "/");
                if (!fn(p, n, u))
                        return false;
                p += n;
                if (*p == '/')
                        p++;
        }
        return true;
}

static bool component_plain(const char *c, size_t n, void *u) {
        (void) u;
        return n > 0 && !(n == 1 && c[0] == '.') && !(n == 2 && c[0] == '.' && c[1] == '.');
}

bool bundle_path_is_safe(const char *path) {
        size_t n = path ? strnlen(path, BUNDLE_PATH_MAX + 1) : 0;
        if (n == 0 || n > BUNDLE_PATH_MAX || path[0] == '/' || path[n - 1] == '/' ||
            !each_component(path, component_plain, NULL))
                return false;
        return streq(path, "rootfs.ext4") || streq(path, "work-seed.ext4") || streq(path, "kernel") ||
               startswith(path, "kernel/");
}

static int check_file_entry(json_t *f) {
        const char *path = json_string_value(json_object_get(f, "path"));
        const char *type = json_string_value(json_object_get(f, "type"));
        if (!bundle_path_is_safe(path))
                return error_setf(-EBADMSG, "the bundle names an unsafe path '%s'", path ? path : "");
        if (!json_is_integer(json_object_get(f, "mode")) || json_integer_value(json_object_get(f, "mode")) < 0 ||
            json_integer_value(json_object_get(f, "mode")) > 0777)
                return error_setf(-EBADMSG, "the bundle's manifest entry for %s has no valid mode", path);
        if (streq_ptr(type, "dir"))
                return 0;
        const char *sha = json_string_value(json_object_get(f, "sha256"));
        if (!streq_ptr(type, "file") || !json_is_integer(json_object_get(f, "size")) ||
            json_integer_value(json_object_get(f, "size")) < 0 || !sha || strlen(sha) != SHA256_HEX_LEN ||
            strspn(sha, "0123456789abcdef") != SHA256_HEX_LEN)
                return error_setf(-EBADMSG, "the bundle's manifest entry for %s is not valid", path);
        json_t *data = json_object_get(f, "data");
        if (data && (!json_is_integer(data) || json_integer_value(data) < 0 ||
                     json_integer_value(data) > json_integer_value(json_object_get(f, "size"))))
                return error_setf(-EBADMSG, "the bundle's manifest entry for %s has no valid data size", path);
        return 0;
}

uint64_t bundle_manifest_unpacked_bytes(json_t *m) {
        uint64_t n = 0;
        size_t i;
        json_t *f;
        json_array_foreach (json_object_get(m, "files"), i, f) {
                json_t *data = json_object_get(f, "data");
                json_int_t v = json_integer_value(data ? data : json_object_get(f, "size"));
                if (v > 0)
                        n = (uint64_t) v < UINT64_MAX - n ? n + (uint64_t) v : UINT64_MAX;
        }
        return n;
}

int bundle_manifest_check(json_t *m) {
        const char *kind = json_string_value(json_object_get(m, "kind"));
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *version = json_string_value(json_object_get(m, "version"));
        json_t *files = json_object_get(m, "files");
        if (!json_is_object(m) || json_integer_value(json_object_get(m, "format")) != BUNDLE_FORMAT)
                return error_setf(-EPROTONOSUPPORT, "the bundle is not of format %d (made by another banger?)",
                                  BUNDLE_FORMAT);
        if (!streq_ptr(kind, "image") && !streq_ptr(kind, "kernel"))
                return error_setf(-EBADMSG, "the bundle is neither an image nor a kernel");
        if (!name || !name_is_valid(name) || !bundle_version_is_valid(version))
                return error_setf(-EBADMSG, "the bundle's name or version is not valid");
        const char *kname = json_string_value(json_object_get(json_object_get(m, "kernel"), "name"));
        if (!kname || !name_is_valid(kname))
                return error_setf(-EBADMSG, "the bundle does not name a valid kernel");
        if (!json_is_array(files) || json_array_size(files) > BUNDLE_FILES_MAX)
                return error_setf(-EBADMSG, "the bundle's list of files is missing or too long");
        size_t i;
        json_t *f;
        json_array_foreach (files, i, f) {
                int r = check_file_entry(f);
                if (r < 0)
                        return r;
        }
        return 0;
}

int bundle_archive_open(int fd, struct archive **ret_archive, json_t **ret_manifest) {
        _cleanup_(archive_read_freep) struct archive *a = archive_read_new();
        if (!a || archive_read_support_filter_zstd(a) != ARCHIVE_OK || archive_read_support_format_tar(a) != ARCHIVE_OK)
                return -ENOMEM;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        struct archive_entry *e;
        if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK || archive_read_next_header(a, &e) < ARCHIVE_WARN)
                return error_setf(-EBADMSG, "not a banger bundle (a tar.zst): %s",
                                  archive_error_string(a) ? archive_error_string(a) : "no members");
        if (!streq_ptr(archive_entry_pathname(e), BUNDLE_MANIFEST) || archive_entry_filetype(e) != AE_IFREG ||
            archive_entry_size(e) <= 0 || archive_entry_size(e) > BUNDLE_MANIFEST_MAX)
                return error_setf(-EBADMSG, "not a banger bundle: its first member is not a manifest.json");
        size_t len = (size_t) archive_entry_size(e);
        _cleanup_free_ char *text = malloc(len);
        if (!text)
                return -ENOMEM;
        if (archive_read_data(a, text, len) != (la_ssize_t) len)
                return error_setf(-EBADMSG, "the bundle's manifest is truncated");
        json_error_t jerr;
        json_t *m = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!m)
                return error_setf(-EBADMSG, "the bundle's manifest is not JSON: %s", jerr.text);
        int r = bundle_manifest_check(m);
        if (r < 0) {
                json_decref(m);
                return r;
        }
        *ret_manifest = m;
        if (ret_archive)
                *ret_archive = TAKE_PTR(a);
        return 0;
}

int bundle_read_manifest(int fd, json_t **ret) {
        return bundle_archive_open(fd, NULL, ret);
}
