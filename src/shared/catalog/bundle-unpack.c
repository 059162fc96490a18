/* SPDX-License-Identifier: MIT */
/* Unpacking a bundle from outside: nothing is written that the manifest
 * does not list, nothing lands outside the directory, and every file's
 * bytes are hashed while they are written. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle-internal.h"
#include "bundle.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "string-util.h"

typedef struct Unpack {
        json_t *want; /* path -> manifest entry, each removed once written */
        uint64_t done, total;
        const Progress *progress;
        int (*check)(void);
} Unpack;

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off) {
        const char *p = buf;
        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, (off_t) off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t) n;
                off += (uint64_t) n;
        }
        return 0;
}

/* A hole is zeros to the hash. */
static void hash_zeros(crypto_hash_sha256_state *h, uint64_t n) {
        static const unsigned char zeros[1 << 16];
        while (n > 0) {
                size_t k = n < sizeof(zeros) ? (size_t) n : sizeof(zeros);
                crypto_hash_sha256_update(h, zeros, k);
                n -= k;
        }
}

static void hash_hex(crypto_hash_sha256_state *h, char out[SHA256_HEX_LEN + 1]) {
        unsigned char md[crypto_hash_sha256_BYTES];
        crypto_hash_sha256_final(h, md);
        sodium_bin2hex(out, SHA256_HEX_LEN + 1, md, sizeof(md));
}

/* The directory that holds path's last component, reached component by
 * component without following a link; *ret_leaf points into path. */
static int open_parent(int dirfd, const char *path, const char **ret_leaf) {
        _cleanup_close_ int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        const char *p = path;
        for (const char *slash; (slash = strchr(p, '/'));) {
                char comp[NAME_MAX + 1];
                size_t n = (size_t) (slash - p);
                if (n == 0 || n > NAME_MAX)
                        return -EINVAL;
                memcpy(comp, p, n);
                comp[n] = '\0';
                int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0)
                        return error_setf(-errno, "the bundle's %s comes before its directory", path);
                close(fd);
                fd = next;
                p = slash + 1;
        }
        *ret_leaf = p;
        return TAKE_FD(fd);
}

static int write_member(struct archive *a, int fd, const char *path, json_t *f, Unpack *u) {
        uint64_t size = (uint64_t) json_integer_value(json_object_get(f, "size")), pos = 0;
        crypto_hash_sha256_state h;
        crypto_hash_sha256_init(&h);
        for (;;) {
                const void *buf;
                size_t len;
                la_int64_t off;
                int rc = archive_read_data_block(a, &buf, &len, &off);
                if (rc == ARCHIVE_EOF)
                        break;
                if (rc < ARCHIVE_WARN)
                        return error_setf(-EBADMSG, "the bundle is truncated or corrupt at %s: %s", path,
                                          archive_error_string(a) ? archive_error_string(a) : "read error");
                if (off < 0 || (uint64_t) off < pos || len > size || (uint64_t) off > size - len)
                        return error_setf(-EBADMSG, "the bundle's %s is larger than its manifest says", path);
                int r = u->check ? u->check() : 0;
                if (r < 0)
                        return r;
                hash_zeros(&h, (uint64_t) off - pos);
                r = pwrite_all(fd, buf, len, (uint64_t) off);
                if (r < 0)
                        return error_setf(r, "cannot write %s: %s", path, strerror(-r));
                crypto_hash_sha256_update(&h, buf, len);
                u->done += (uint64_t) off + len - pos;
                pos = (uint64_t) off + len;
                progress_report(u->progress, "unpack", path, u->done, u->total);
        }
        hash_zeros(&h, size - pos);
        u->done += size - pos;
        if (ftruncate(fd, (off_t) size) < 0)
                return error_setf(-errno, "cannot write %s: %m", path);
        char got[SHA256_HEX_LEN + 1];
        hash_hex(&h, got);
        if (!streq(got, json_string_value(json_object_get(f, "sha256"))))
                return error_setf(-EBADMSG, "the bundle's %s does not match the sha256 its manifest gives", path);
        return 0;
}

static int unpack_member(struct archive *a, struct archive_entry *e, int dirfd, Unpack *u) {
        const char *name = archive_entry_pathname(e);
        char path[BUNDLE_PATH_MAX + 2];
        size_t n = name ? strnlen(name, sizeof(path)) : 0;
        if (n == 0 || n >= sizeof(path))
                return error_setf(-EBADMSG, "the bundle holds a member without a name or with a long one: refused");
        /* A tar writer marks a directory with a trailing slash. */
        memcpy(path, name, n + 1);
        if (archive_entry_filetype(e) == AE_IFDIR && n > 1 && path[n - 1] == '/')
                path[n - 1] = '\0';
        if (!bundle_path_is_safe(path))
                return error_setf(-EBADMSG, "the bundle holds an unsafe path '%s' (absolute, or with '..'): refused",
                                  path);
        json_t *f = json_object_get(u->want, path);
        if (!f)
                return error_setf(-EBADMSG, "the bundle holds %s twice or without listing it in its manifest", path);
        bool dir = streq_ptr(json_string_value(json_object_get(f, "type")), "dir");
        if (archive_entry_hardlink(e) || archive_entry_filetype(e) != (dir ? AE_IFDIR : AE_IFREG))
                return error_setf(-EBADMSG, "the bundle's %s is a link or not what its manifest says: refused", path);
        mode_t mode = (mode_t) json_integer_value(json_object_get(f, "mode")) & 0755;
        const char *leaf = NULL;
        _cleanup_close_ int pfd = open_parent(dirfd, path, &leaf);
        if (pfd < 0)
                return pfd;
        int r;
        if (dir)
                r = mkdirat(pfd, leaf, mode | 0700) < 0 ? error_setf(-errno, "cannot create %s: %m", path) : 0;
        else if (archive_entry_size(e) != json_integer_value(json_object_get(f, "size")))
                r = error_setf(-EBADMSG, "the bundle's %s is not the size its manifest says", path);
        else {
                _cleanup_close_ int fd =
                        openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode | 0600);
                r = fd < 0 ? error_setf(-errno, "cannot create %s: %m", path) : write_member(a, fd, path, f, u);
        }
        if (r >= 0)
                json_object_del(u->want, path);
        return r;
}

/* path -> entry, refusing a manifest that lists a path twice or more than
 * max_bytes in all. */
static int index_manifest(json_t *m, uint64_t max_bytes, Unpack *u) {
        size_t i;
        json_t *f;
        json_array_foreach (json_object_get(m, "files"), i, f) {
                const char *path = json_string_value(json_object_get(f, "path"));
                if (json_object_get(u->want, path))
                        return error_setf(-EBADMSG, "the bundle's manifest lists %s twice", path);
                json_int_t size = json_integer_value(json_object_get(f, "size"));
                if ((uint64_t) size > max_bytes - u->total)
                        return error_setf(-EFBIG, "the bundle holds more than the import limit (image_import_max)");
                u->total += (uint64_t) size;
                if (json_object_set(u->want, path, f) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int bundle_unpack(int fd, int dirfd, uint64_t max_bytes, const Progress *p, int (*check)(void), json_t **ret_manifest) {
        if (sodium_init() < 0)
                return -EIO;
        _cleanup_(archive_read_freep) struct archive *a = NULL;
        json_t *m = NULL;
        int r = bundle_archive_open(fd, &a, &m);
        if (r < 0)
                return r;
        Unpack u = { .want = json_object(), .progress = p, .check = check };
        r = u.want ? index_manifest(m, max_bytes, &u) : -ENOMEM;
        struct archive_entry *e;
        int rc = ARCHIVE_OK;
        while (r >= 0 && ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN))
                r = unpack_member(a, e, dirfd, &u);
        if (r >= 0 && rc != ARCHIVE_EOF)
                r = error_setf(-EBADMSG, "the bundle is truncated or corrupt: %s",
                               archive_error_string(a) ? archive_error_string(a) : "read error");
        if (r >= 0 && json_object_size(u.want) > 0)
                r = error_setf(-EBADMSG, "the bundle lacks %s, which its manifest lists",
                               json_object_iter_key(json_object_iter(u.want)));
        json_decref(u.want);
        if (r < 0) {
                json_decref(m);
                return r;
        }
        *ret_manifest = m;
        return 0;
}
