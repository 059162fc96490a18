/* SPDX-License-Identifier: MIT */
#include "debian-package.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "file-tree.h"
#include "free-space.h"
#include "fs-util.h"
#include "log.h"
#include "string-util.h"

/* A kernel package is ~70 MiB; allow slow mirrors, but not forever. */
#define DOWNLOAD_TIMEOUT_SEC 1800L
#define DOWNLOAD_MAX (1ULL << 30)

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup);
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);

void debian_package_done(DebianPackage *p) {
        if (!p)
                return;
        free(p->package);
        free(p->version);
        free(p->filename);
        free(p->sha256);
        free(p->depends);
        *p = (DebianPackage){};
}

static bool filename_is_safe(const char *f) {
        if (!f || f[0] == '/' || strstr(f, "..") || strlen(f) > 1024)
                return false;
        for (const char *c = f; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                      strchr("/._+~-%", *c)))
                        return false;
        return true;
}

static bool sha256_is_valid(const char *s) {
        if (!s || strlen(s) != SHA256_HEX_LEN)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

/* Store "Field: value" into p when it is one we keep. */
static int stanza_field(DebianPackage *p, const char *line) {
        static const struct {
                const char *key;
                size_t off;
        } fields[] = {
                { "Package: ", offsetof(DebianPackage, package) },   { "Version: ", offsetof(DebianPackage, version) },
                { "Filename: ", offsetof(DebianPackage, filename) }, { "SHA256: ", offsetof(DebianPackage, sha256) },
                { "Depends: ", offsetof(DebianPackage, depends) },
        };
        const char *v = startswith(line, "Size: ");
        if (v) {
                unsigned long long n;
                int r = safe_atou64(v, &n);
                if (r < 0)
                        return error_setf(-EBADMSG, "Packages: bad Size \"%s\"", v);
                p->size = n;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                v = startswith(line, fields[i].key);
                if (!v)
                        continue;
                char **slot = (char **) ((char *) p + fields[i].off);
                free(*slot);
                *slot = strdup(v);
                return *slot ? 0 : -ENOMEM;
        }
        return 0;
}

static int stanza_check(const DebianPackage *p) {
        if (!filename_is_safe(p->filename))
                return error_setf(-EBADMSG, "Packages: %s has an unsafe Filename", p->package);
        if (!sha256_is_valid(p->sha256) || p->size == 0 || p->size > DOWNLOAD_MAX)
                return error_setf(-EBADMSG, "Packages: %s lacks a valid SHA256 or Size", p->package);
        return 0;
}

int debian_packages_find(int fd, const char *package, DebianPackage *ret) {
        int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        _cleanup_(fclosep) FILE *f = dfd >= 0 ? fdopen(dfd, "re") : NULL;
        _cleanup_free_ char *line = NULL;
        _cleanup_(debian_package_done) DebianPackage cur = {};
        size_t cap = 0;

        if (!f) {
                safe_close(dfd);
                return -errno;
        }
        for (;;) {
                ssize_t n = getline(&line, &cap, f);
                bool end = n < 0;
                if (n > 0 && line[n - 1] == '\n')
                        line[--n] = '\0';
                if (end || n == 0) { /* a stanza ends */
                        if (cur.package && streq(cur.package, package)) {
                                int r = stanza_check(&cur);
                                if (r < 0)
                                        return r;
                                *ret = cur;
                                cur = (DebianPackage){};
                                return 0;
                        }
                        debian_package_done(&cur);
                        if (end)
                                break;
                        continue;
                }
                if (n > DEBIAN_FIELD_MAX)
                        continue; /* no field we keep is this long */
                int r = stanza_field(&cur, line);
                if (r < 0)
                        return r;
        }
        if (ferror(f))
                return -EIO;
        return error_setf(-ENOENT, "package %s is not in the index", package);
}

int debian_depends_first(const char *depends, char **ret) {
        if (!depends)
                return -ENOENT;
        size_t n = strcspn(depends, " ,|(");
        if (n == 0)
                return -EBADMSG;
        char *s = strndup(depends, n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
        (void) curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct Download {
        int fd;
        EVP_MD_CTX *ctx;
        uint64_t done, total;
        const Progress *progress;
        const char *stage;
        int error;
} Download;

static size_t download_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Download *d = userdata;
        size_t n = size * nmemb;
        if (d->done + n > d->total) {
                d->error = -EFBIG;
                return 0;
        }
        int r = loop_write(d->fd, data, n);
        if (r < 0 || EVP_DigestUpdate(d->ctx, data, n) != 1) {
                d->error = r < 0 ? r : -EIO;
                return 0;
        }
        d->done += n;
        progress_report(d->progress, d->stage, NULL, d->done, d->total);
        return n;
}

static int curl_fetch(const char *url, Download *d) {
        char errbuf[CURL_ERROR_SIZE] = "";
        (void) pthread_once(&curl_once, curl_init_once);
        _cleanup_(curl_easy_cleanupp) CURL *h = curl_easy_init();
        if (!h)
                return -ENOMEM;
        if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_TIMEOUT, DOWNLOAD_TIMEOUT_SEC) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, download_write) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_WRITEDATA, d) != CURLE_OK)
                return -EINVAL;
        CURLcode c = curl_easy_perform(h);
        if (d->error < 0)
                return error_setf(d->error, "downloading %s: %s", url,
                                  d->error == -EFBIG ? "larger than the index says" : "write failed");
        if (c != CURLE_OK)
                return error_setf(-EIO, "downloading %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(c));
        return 0;
}

int debian_package_download(const char *mirror, const DebianPackage *p, int dirfd, const char *name,
                            const Progress *progress, const char *stage) {
        _cleanup_free_ char *url = NULL;
        char got[SHA256_HEX_LEN + 1];
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;

        if (!mirror || (!startswith(mirror, "http://") && !startswith(mirror, "https://")))
                return error_setf(-EINVAL, "mirror must be an http:// or https:// URL");
        if (stanza_check(p) < 0)
                return -EBADMSG;
        if (asprintf(&url, "%s%s%s", mirror, endswith(mirror, "/") ? "" : "/", p->filename) < 0)
                return -ENOMEM;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                return -ENOMEM;
        _cleanup_free_ char *what = NULL;
        if (asprintf(&what, "package %s", p->package ? p->package : p->filename) < 0)
                return -ENOMEM;
        int r = free_space_check(dirfd, p->size, what);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        Download d = { .fd = fd, .ctx = ctx, .total = p->size, .progress = progress, .stage = stage };
        r = curl_fetch(url, &d);
        if (r >= 0 && EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
                r = -EIO;
        if (r >= 0) {
                for (unsigned i = 0; i < mdlen && i < SHA256_HEX_LEN / 2; i++)
                        snprintf(got + 2 * i, 3, "%02x", md[i]);
                if (d.done != p->size || !streq(got, p->sha256))
                        r = error_setf(-EBADMSG, "%s: size or SHA256 does not match the verified index", url);
        }
        if (r < 0)
                (void) unlinkat(dirfd, name, 0);
        return r;
}
