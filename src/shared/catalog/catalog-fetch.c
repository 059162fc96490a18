/* SPDX-License-Identifier: MIT */
#include "catalog-fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog-doc.h"
#include "error.h"
#include "macro.h"
#include "string-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
        (void) curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* What every transfer shares; write is the body callback. */
static int easy_setup(CURL *h, const char *url, char *errbuf, curl_write_callback write, void *userdata) {
        static const char protocols[] = "http,https,file";
        if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L) != CURLE_OK ||
            /* A stalled transfer ends (and is resumed) rather than hangs. */
            curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_USERAGENT, "banger") != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_WRITEDATA, userdata) != CURLE_OK)
                return -EINVAL;
        return 0;
}

static int curl_failure(CURL *h, CURLcode c, const char *url, const char *errbuf) {
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status == 404 || c == CURLE_FILE_COULDNT_READ_FILE || c == CURLE_REMOTE_FILE_NOT_FOUND)
                return error_setf(-ENOENT, "%s is not there (%s)", url, errbuf[0] ? errbuf : curl_easy_strerror(c));
        return error_setf(-EIO, "cannot fetch %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(c));
}

typedef struct Buffer {
        char *data;
        size_t len, max;
        bool too_big;
} Buffer;

static size_t buffer_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Buffer *b = userdata;
        size_t n = size * nmemb;
        if (n > b->max - b->len) {
                b->too_big = true;
                return 0;
        }
        memcpy(b->data + b->len, data, n);
        b->len += n;
        return n;
}

int catalog_fetch_buffer(const char *url, size_t max, char **ret, size_t *ret_len) {
        char errbuf[CURL_ERROR_SIZE] = "";
        if (!catalog_url_is_valid(url))
                return error_setf(-EINVAL, "'%s' is not an http://, https:// or file:// URL", url ? url : "");
        (void) pthread_once(&curl_once, curl_init_once);
        _cleanup_(curl_easy_cleanupp) CURL *h = curl_easy_init();
        _cleanup_free_ char *data = malloc(max + 1);
        if (!h || !data)
                return -ENOMEM;
        Buffer b = { .data = data, .max = max };
        if (easy_setup(h, url, errbuf, buffer_write, &b) < 0 || curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L) != CURLE_OK)
                return -EINVAL;
        CURLcode c = curl_easy_perform(h);
        if (b.too_big)
                return error_setf(-EFBIG, "%s is larger than %zu bytes", url, max);
        if (c != CURLE_OK)
                return curl_failure(h, c, url, errbuf);
        data[b.len] = '\0';
        *ret = TAKE_PTR(data);
        if (ret_len)
                *ret_len = b.len;
        return 0;
}

typedef struct Transfer {
        CatalogDownload *d;
        crypto_hash_sha256_state hash;
        int error;
} Transfer;

static size_t download_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Transfer *t = userdata;
        CatalogDownload *d = t->d;
        size_t n = size * nmemb;
        uint64_t limit = d->size ? d->size : d->max;
        if (n > limit - d->done) {
                t->error = error_setf(-EBADMSG, "%s is larger than %s says", d->url,
                                      d->size ? "the catalog" : "the import limit (image_import_max)");
                return 0;
        }
        for (size_t off = 0; off < n;) {
                ssize_t k = pwrite(d->fd, data + off, n - off, (off_t) (d->done + off));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        t->error = error_setf(-errno, "cannot write the download of %s: %m", d->url);
                        return 0;
                }
                off += (size_t) k;
        }
        crypto_hash_sha256_update(&t->hash, (const unsigned char *) data, n);
        d->done += n;
        progress_report(&d->progress, "download", d->url, d->done, d->size);
        if (d->cancelled && d->cancelled(d->cancel_userdata)) {
                t->error = error_setf(-ECANCELED, "cancelled");
                return 0;
        }
        return n;
}

/* Called about once a second even when no byte arrives: a stalled
 * transfer can still be cancelled. */
static int download_xferinfo(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                             curl_off_t ulnow) {
        Transfer *t = userdata;
        CatalogDownload *d = t->d;
        if (!d->cancelled || !d->cancelled(d->cancel_userdata))
                return 0;
        t->error = error_setf(-ECANCELED, "cancelled");
        return 1;
}

/* A failure worth another attempt from where the transfer stopped. */
static bool transient(CURLcode c) {
        return c == CURLE_PARTIAL_FILE || c == CURLE_RECV_ERROR || c == CURLE_SEND_ERROR ||
               c == CURLE_OPERATION_TIMEDOUT || c == CURLE_GOT_NOTHING || c == CURLE_HTTP2_STREAM || c == CURLE_HTTP2;
}

static int restart(Transfer *t) {
        t->d->done = 0;
        crypto_hash_sha256_init(&t->hash);
        return ftruncate(t->d->fd, 0) < 0 ? -errno : 0;
}

/* One attempt, from d->done on. */
static CURLcode attempt(CURL *h, Transfer *t, char *errbuf) {
        CatalogDownload *d = t->d;
        curl_easy_reset(h);
        errbuf[0] = '\0';
        if (easy_setup(h, d->url, errbuf, download_write, t) < 0 ||
            curl_easy_setopt(h, CURLOPT_RESUME_FROM_LARGE, (curl_off_t) d->done) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) (d->size ? d->size : d->max)) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, download_xferinfo) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, t) != CURLE_OK)
                return CURLE_FAILED_INIT;
        return curl_easy_perform(h);
}

static int download_loop(CURL *h, Transfer *t) {
        CatalogDownload *d = t->d;
        char errbuf[CURL_ERROR_SIZE];
        for (unsigned i = 0;; i++) {
                CURLcode c = attempt(h, t, errbuf);
                if (t->error < 0)
                        return t->error;
                if (c == CURLE_OK && d->size && d->done < d->size)
                        c = CURLE_PARTIAL_FILE; /* a file:// source that is shorter */
                if (c == CURLE_OK)
                        return 0;
                if (c == CURLE_FILESIZE_EXCEEDED)
                        return error_setf(-EBADMSG, "%s is larger than %s says", d->url,
                                          d->size ? "the catalog" : "the import limit (image_import_max)");
                /* The server ignored the Range: start again from the top. */
                bool range = c == CURLE_RANGE_ERROR && d->done > 0;
                if (i + 1 >= CATALOG_FETCH_ATTEMPTS || !(transient(c) || range))
                        return curl_failure(h, c, d->url, errbuf);
                if (range && restart(t) < 0)
                        return -errno;
                if (d->done > 0 && !range)
                        d->resumed++;
                progress_report(&d->progress, "resume", d->url, d->done, d->size);
        }
}

int catalog_download(CatalogDownload *d) {
        if (!catalog_url_is_valid(d->url))
                return error_setf(-EINVAL, "'%s' is not an http://, https:// or file:// URL", d->url ? d->url : "");
        if (sodium_init() < 0)
                return -EIO;
        (void) pthread_once(&curl_once, curl_init_once);
        _cleanup_(curl_easy_cleanupp) CURL *h = curl_easy_init();
        if (!h)
                return -ENOMEM;
        Transfer t = { .d = d };
        d->done = 0;
        d->resumed = 0;
        crypto_hash_sha256_init(&t.hash);
        int r = download_loop(h, &t);
        if (r < 0)
                return r;
        unsigned char md[crypto_hash_sha256_BYTES];
        char got[SHA256_HEX_LEN + 1];
        crypto_hash_sha256_final(&t.hash, md);
        sodium_bin2hex(got, sizeof(got), md, sizeof(md));
        if ((d->size && d->done != d->size) || !d->sha256 || !streq(got, d->sha256))
                return error_setf(-EBADMSG, "%s does not match the sha256 %s: refused", d->url,
                                  d->size ? "the catalog gives" : "given");
        return 0;
}

int catalog_resolve_url(const char *catalog_url, const char *url, char **ret) {
        CURLU *u = curl_url();
        char *out = NULL;
        bool ok = u && curl_url_set(u, CURLUPART_URL, catalog_url, 0) == CURLUE_OK &&
                  curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK;
        curl_url_cleanup(u);
        /* A catalog from the network does not reach into this host's files. */
        if (ok && !startswith(catalog_url, "file://") && startswith(out, "file://"))
                ok = false;
        if (!ok || !catalog_url_is_valid(out)) {
                curl_free(out);
                return error_setf(-EBADMSG, "the catalog's bundle URL '%s' is not valid", url);
        }
        *ret = strdup(out);
        curl_free(out);
        return *ret ? 0 : -ENOMEM;
}
