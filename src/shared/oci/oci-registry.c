/* SPDX-License-Identifier: MIT */
#include "oci-registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "oci-digest.h"
#include "oci-limits.h"
#include "oci-manifest.h"
#include "string-util.h"

#define ERROR_BODY_MAX 4096
#define TOKEN_MAX (64U << 10)
#define HEADER_MAX 4096

struct OciRegistry {
        OciRef ref;
        char *base; /* "https://host" */
        char *token;
        CURL *curl;
};

/* One HTTP exchange. The body of a 200 goes to the sink (memory or a file
 * with a running digest); any other body is kept, truncated, for the error. */
typedef struct Request {
        const char *url;
        const char *accept;
        char *mem;
        size_t mem_len, mem_max;
        int fd;
        OciHasher *hasher;
        uint64_t done, limit;
        OciDownloadProgressFn progress;
        void *userdata;
        long status;
        char *www_authenticate;
        char *content_type;
        char err_body[ERROR_BODY_MAX];
        size_t err_len;
        bool err_cut; /* the error body was longer than err_body: not read further */
        int error;
} Request;

static void request_reset(Request *rq) {
        rq->status = 0;
        free(rq->www_authenticate);
        free(rq->content_type);
        rq->www_authenticate = rq->content_type = NULL;
        rq->err_len = 0;
        rq->err_cut = false;
        rq->error = 0;
}

static void request_done(Request *rq) {
        request_reset(rq);
        free(rq->mem);
        rq->mem = NULL;
}

int oci_registry_new(const OciRef *ref, OciRegistry **ret) {
        static bool initialized;
        if (!initialized) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                initialized = true;
        }
        OciRegistry *reg = calloc(1, sizeof(*reg));
        if (!reg)
                return -ENOMEM;
        int r = 0;
        reg->ref = (OciRef){ .plain_http = ref->plain_http };
        if (!(reg->ref.host = strdup(ref->host)) || !(reg->ref.repository = strdup(ref->repository)) ||
            asprintf(&reg->base, "%s://%s", ref->plain_http ? "http" : "https", ref->host) < 0)
                r = -ENOMEM;
        if (r == 0 && !(reg->curl = curl_easy_init()))
                r = -ENOMEM;
        if (r < 0) {
                oci_registry_free(reg);
                return r;
        }
        *ret = reg;
        return 0;
}

void oci_registry_free(OciRegistry *reg) {
        if (!reg)
                return;
        if (reg->curl)
                curl_easy_cleanup(reg->curl);
        oci_ref_done(&reg->ref);
        free(reg->base);
        free(reg->token);
        free(reg);
}

int oci_registry_header_value(const char *line, size_t len, const char *name, char **ret) {
        size_t nl = strlen(name);
        if (len > HEADER_MAX || len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
                return 0;
        const char *v = line + nl + 1;
        size_t vl = len - nl - 1;
        while (vl > 0 && (*v == ' ' || *v == '\t'))
                v++, vl--;
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
                vl--;
        /* A NUL or a control inside: not a value banger could use or quote. */
        for (size_t i = 0; i < vl; i++)
                if (((unsigned char) v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
                        return 0;
        char *c = strndup(v, vl);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 1;
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
        Request *rq = userdata;
        size_t len = size * n;
        if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                request_reset(rq); /* a new response (after a redirect) */
                return len;
        }
        char *v = NULL;
        if (oci_registry_header_value(data, len, "WWW-Authenticate", &v) > 0) {
                free(rq->www_authenticate);
                rq->www_authenticate = v;
        } else if (oci_registry_header_value(data, len, "Content-Type", &v) > 0) {
                free(rq->content_type);
                rq->content_type = v;
        }
        return len;
}

static int sink_write(Request *rq, const char *data, size_t len) {
        if (rq->limit && rq->done + len > rq->limit)
                return -EFBIG;
        if (rq->fd >= 0) {
                int r = loop_write(rq->fd, data, len);
                if (r < 0)
                        return r;
                if ((r = oci_hasher_update(rq->hasher, data, len)) < 0)
                        return r;
        } else {
                if (rq->mem_len + len > rq->mem_max)
                        return -EFBIG;
                char *m = realloc(rq->mem, rq->mem_len + len + 1);
                if (!m)
                        return -ENOMEM;
                memcpy(m + rq->mem_len, data, len);
                rq->mem = m;
                rq->mem_len += len;
                m[rq->mem_len] = '\0';
        }
        rq->done += len;
        if (rq->progress && rq->progress(rq->done, rq->userdata) != 0)
                return -ECANCELED;
        return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
        Request *rq = userdata;
        size_t len = size * n;
        if (rq->status != 200) {
                size_t k = MIN(len, sizeof(rq->err_body) - 1 - rq->err_len);
                memcpy(rq->err_body + rq->err_len, data, k);
                rq->err_len += k;
                rq->err_body[rq->err_len] = '\0';
                if (k == len)
                        return len;
                rq->err_cut = true; /* an endless error page is not read to its end */
                return 0;
        }
        int r = sink_write(rq, data, len);
        if (r < 0) {
                rq->error = r;
                return 0; /* aborts the transfer */
        }
        return len;
}

static int on_headers_done(Request *rq, CURL *c) {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        rq->status = code;
        return 0;
}

static size_t on_body_first(char *data, size_t size, size_t n, void *userdata) {
        Request *rq = ((void **) userdata)[0];
        CURL *c = ((void **) userdata)[1];
        on_headers_done(rq, c);
        return on_body(data, size, n, rq);
}

static int setup(OciRegistry *reg, Request *rq, struct curl_slist **headers, void **ctx) {
        CURL *c = reg->curl;
        curl_easy_reset(c);
        const char *protocols = reg->ref.plain_http ? "http,https" : "https";
        _cleanup_free_ char *auth = NULL, *accept = NULL;
        if (reg->token && asprintf(&auth, "Authorization: Bearer %s", reg->token) < 0)
                return -ENOMEM;
        if (rq->accept && asprintf(&accept, "Accept: %s", rq->accept) < 0)
                return -ENOMEM;
        if (auth)
                *headers = curl_slist_append(*headers, auth);
        if (accept)
                *headers = curl_slist_append(*headers, accept);
        ctx[0] = rq;
        ctx[1] = c;
        if (curl_easy_setopt(c, CURLOPT_URL, rq->url) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, protocols) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_USERAGENT, "banger") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, *headers) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HEADERDATA, rq) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body_first) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEDATA, ctx) != CURLE_OK)
                return -EIO;
        /* A body announced longer than expected is refused before it starts. */
        curl_off_t max = (curl_off_t) (rq->fd >= 0 ? rq->limit : rq->mem_max);
        if (max > 0 && curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, max) != CURLE_OK)
                return -EIO;
        return 0;
}

void oci_registry_error_message(const char *body, size_t len, char *buf, size_t size) {
        json_t *j = json_loadb(body, len, 0, NULL);
        const char *m = json_string_value(json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));
        snprintf(buf, size, "%s", m ? m : "");
        json_decref(j);
}

static int perform(OciRegistry *reg, Request *rq) {
        struct curl_slist *headers = NULL;
        void *ctx[2];
        request_reset(rq);
        int r = setup(reg, rq, &headers, ctx);
        CURLcode cc = r == 0 ? curl_easy_perform(reg->curl) : CURLE_OK;
        curl_slist_free_all(headers);
        if (r < 0)
                return r;
        if (rq->error < 0)
                return rq->error == -EFBIG
                               ? error_setf(-EFBIG, "%s: the registry sent more than the %llu bytes expected", rq->url,
                                            (unsigned long long) (rq->fd >= 0 ? rq->limit : rq->mem_max))
                               : rq->error;
        if (cc == CURLE_FILESIZE_EXCEEDED)
                return error_setf(-EFBIG, "%s: the registry announced more than the %llu bytes expected", rq->url,
                                  (unsigned long long) rq->limit);
        if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && rq->err_cut))
                return error_setf(-EIO, "%s: %s", rq->url, curl_easy_strerror(cc));
        curl_easy_getinfo(reg->curl, CURLINFO_RESPONSE_CODE, &rq->status);
        return 0;
}

bool oci_registry_realm_is_allowed(bool plain_http, const char *realm) {
        if (startswith(realm, "https://"))
                return true;
        if (!plain_http || !startswith(realm, "http://"))
                return false;
        CURLU *u = curl_url();
        char *host = NULL;
        bool ok = u && curl_url_set(u, CURLUPART_URL, realm, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && oci_registry_is_loopback(host);
        curl_free(host);
        curl_url_cleanup(u);
        return ok;
}

int oci_registry_token_parse(const char *body, size_t len, char **ret) {
        json_t *j = json_loadb(body, len, 0, NULL);
        const char *tok = json_string_value(json_object_get(j, "token"));
        if (!tok)
                tok = json_string_value(json_object_get(j, "access_token"));
        int r = tok && *tok ? 0 : -EBADMSG;
        for (const char *p = tok; r == 0 && *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f) /* it goes into a header line */
                        r = -EBADMSG;
        char *c = r == 0 ? strdup(tok) : NULL;
        json_decref(j);
        if (r < 0)
                return r;
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

static int fetch_token(OciRegistry *reg, const char *www_authenticate) {
        OciBearerChallenge ch = {};
        int r = oci_bearer_challenge_parse(www_authenticate, &ch);
        if (r < 0)
                return error_setf(r, "registry %s asks for authentication banger cannot give (%s)", reg->ref.host,
                                  www_authenticate ? www_authenticate : "no challenge");
        _cleanup_free_ char *url = NULL, *default_scope = NULL;
        bool realm_ok = oci_registry_realm_is_allowed(reg->ref.plain_http, ch.realm);
        char *service = ch.service ? curl_easy_escape(reg->curl, ch.service, 0) : NULL;
        if (!ch.scope && asprintf(&default_scope, "repository:%s:pull", reg->ref.repository) < 0)
                r = -ENOMEM;
        char *scope = r == 0 ? curl_easy_escape(reg->curl, ch.scope ? ch.scope : default_scope, 0) : NULL;
        if (!realm_ok)
                r = error_setf(-EPERM, "registry token realm \"%s\" is not HTTPS (plain HTTP only to loopback)",
                               ch.realm);
        else if (r == 0 && (!scope || (ch.service && !service)))
                r = -ENOMEM;
        else if (r == 0 && asprintf(&url, "%s%sscope=%s%s%s", ch.realm, strchr(ch.realm, '?') ? "&" : "?", scope,
                                    service ? "&service=" : "", service ? service : "") < 0)
                r = -ENOMEM;
        curl_free(service);
        curl_free(scope);
        oci_bearer_challenge_done(&ch);
        if (r < 0)
                return r;
        Request rq = { .url = url, .accept = "application/json", .fd = -EBADF, .mem_max = TOKEN_MAX };
        r = perform(reg, &rq);
        if (r == 0 && rq.status != 200)
                r = error_setf(-EACCES, "registry token request failed with HTTP %ld", rq.status);
        char *tok = NULL;
        if (r == 0 && (r = oci_registry_token_parse(rq.mem ? rq.mem : "", rq.mem_len, &tok)) == -EBADMSG)
                r = error_setf(r, "registry token response carries no usable token");
        if (r == 0) {
                free(reg->token);
                reg->token = tok;
        }
        request_done(&rq);
        return r;
}

/* perform(), answering one Bearer challenge; the status must be 200. */
static int request_ok(OciRegistry *reg, Request *rq, const char *what) {
        int r = perform(reg, rq);
        if (r == 0 && rq->status == 401 && !reg->token) {
                if ((r = fetch_token(reg, rq->www_authenticate)) < 0)
                        return r;
                r = perform(reg, rq);
        }
        if (r < 0)
                return r;
        if (rq->status == 200)
                return 0;
        char msg[256];
        oci_registry_error_message(rq->err_body, rq->err_len, msg, sizeof(msg));
        int code = rq->status == 404 ? -ENOENT : rq->status == 401 || rq->status == 403 ? -EACCES : -EIO;
        return error_setf(code, "%s: registry answered HTTP %ld%s%s", what, rq->status, *msg ? ": " : "", msg);
}

int oci_registry_get_manifest(OciRegistry *reg, const char *reference, uint64_t size, char **ret_body, size_t *ret_len,
                              char **ret_content_type, char **ret_digest) {
        _cleanup_free_ char *url = NULL, *what = NULL;
        if (asprintf(&url, "%s/v2/%s/manifests/%s", reg->base, reg->ref.repository, reference) < 0 ||
            asprintf(&what, "%s/%s:%s", reg->ref.host, reg->ref.repository, reference) < 0)
                return -ENOMEM;
        if (size > OCI_JSON_MAX)
                return error_setf(-EFBIG, "manifest %s is %llu bytes, more than the %u a JSON document may have", what,
                                  (unsigned long long) size, OCI_JSON_MAX);
        Request rq = {
                .url = url,
                .accept = OCI_MT_INDEX ", " OCI_MT_MANIFEST ", " DOCKER_MT_LIST ", " DOCKER_MT_MANIFEST,
                .fd = -EBADF,
                .mem_max = size ? (size_t) size : OCI_JSON_MAX,
        };
        int r = request_ok(reg, &rq, what);
        char digest[OCI_DIGEST_STRLEN];
        if (r == 0)
                r = oci_digest_buffer(rq.mem ? rq.mem : "", rq.mem_len, digest);
        if (r == 0 && oci_digest_is_valid(reference) && !streq(reference, digest))
                r = error_setf(-EBADMSG, "digest mismatch for manifest %s: got %s", what, digest);
        char *d = r == 0 ? strdup(digest) : NULL;
        if (r == 0 && !d)
                r = -ENOMEM;
        if (r < 0) {
                request_done(&rq);
                return r;
        }
        *ret_len = rq.mem_len;
        *ret_body = rq.mem ? TAKE_PTR(rq.mem) : strdup("");
        *ret_content_type = TAKE_PTR(rq.content_type);
        *ret_digest = d;
        request_done(&rq);
        return 0;
}

int oci_cache_blob_dir(int cache_dirfd, int *ret_fd) {
        int r = mkdirat_private(cache_dirfd, "blobs", 0700);
        if (r < 0)
                return r;
        _cleanup_close_ int blobs = open_dir_nofollow(cache_dirfd, "blobs");
        if (blobs < 0)
                return blobs;
        if ((r = mkdirat_private(blobs, "sha256", 0700)) < 0)
                return r;
        int fd = open_dir_nofollow(blobs, "sha256");
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

int oci_cache_blob_publish(int cache_dirfd, int fd, const char *digest) {
        const char *hex = oci_digest_hex(digest);
        if (!hex)
                return -EINVAL;
        _cleanup_close_ int dirfd = -EBADF;
        int r = oci_cache_blob_dir(cache_dirfd, &dirfd);
        if (r < 0)
                return r;
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        /* Another import that got there first is fine: content addressing
         * makes both copies the same. */
        if (linkat(AT_FDCWD, proc, dirfd, hex, AT_SYMLINK_FOLLOW) < 0 && errno != EEXIST)
                return -errno;
        return fsync(dirfd) < 0 ? -errno : 0;
}

/* Stream the blob into fd, hashed, never past size. */
static int blob_download(OciRegistry *reg, int fd, const char *digest, uint64_t size, OciDownloadProgressFn progress,
                         void *userdata) {
        _cleanup_oci_hasher_ OciHasher *h = NULL;
        int r = oci_hasher_new(&h);
        if (r < 0)
                return r;
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "%s/v2/%s/blobs/%s", reg->base, reg->ref.repository, digest) < 0)
                return -ENOMEM;
        Request rq = { .url = url, .fd = fd, .hasher = h, .limit = size, .progress = progress, .userdata = userdata };
        r = request_ok(reg, &rq, digest);
        request_done(&rq);
        if (r == -EFBIG)
                return error_setf(r, "the registry sent blob %s longer than the %llu bytes its descriptor says", digest,
                                  (unsigned long long) size);
        if (r < 0)
                return r;
        if (rq.done != size)
                return error_setf(-EBADMSG, "blob %s is %llu bytes, its descriptor says %llu", digest,
                                  (unsigned long long) rq.done, (unsigned long long) size);
        char got[OCI_DIGEST_STRLEN];
        if ((r = oci_hasher_final(h, got)) < 0)
                return r;
        if (!streq(got, digest))
                return error_setf(-EBADMSG, "digest mismatch for blob %s: got %s", digest, got);
        return 0;
}

int oci_registry_fetch_blob(OciRegistry *reg, int cache_dirfd, const char *digest, uint64_t size,
                            OciDownloadProgressFn progress, void *userdata, int *ret_fd, bool *ret_downloaded) {
        const char *hex = oci_digest_hex(digest);
        if (!hex || size == 0)
                return -EINVAL;
        _cleanup_close_ int dirfd = -EBADF;
        int r = oci_cache_blob_dir(cache_dirfd, &dirfd);
        if (r < 0)
                return error_setf(r, "cannot open the blob cache: %s", strerror(-r));
        /* Verified when it was stored, and again when a layer is read. */
        int fd = openat(dirfd, hex, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0) {
                struct stat st;
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        safe_close(fd);
                        return error_setf(-EBADFD, "cached blob %s is not a regular file", digest);
                }
                *ret_fd = fd;
                *ret_downloaded = false;
                return 0;
        }
        char what[OCI_DIGEST_STRLEN + 16];
        snprintf(what, sizeof(what), "blob %s", digest);
        if ((r = oci_check_free(dirfd, size, what)) < 0)
                return r;
        /* Unnamed until the import that wanted it succeeds. */
        _cleanup_close_ int tmp = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
        if (tmp < 0)
                return error_setf(-errno, "cannot create a temp file in the blob cache: %m");
        if ((r = blob_download(reg, tmp, digest, size, progress, userdata)) < 0)
                return r;
        if (fsync(tmp) < 0 || lseek(tmp, 0, SEEK_SET) < 0)
                return -errno;
        *ret_fd = TAKE_FD(tmp);
        *ret_downloaded = true;
        return 0;
}
