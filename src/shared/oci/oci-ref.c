/* SPDX-License-Identifier: MIT */
#include "oci-ref.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "macro.h"
#include "oci-digest.h"
#include "string-util.h"

void oci_ref_done(OciRef *r) {
        free(r->registry);
        free(r->host);
        free(r->repository);
        free(r->tag);
        free(r->digest);
        *r = (OciRef){};
}

const char *oci_ref_reference(const OciRef *r) {
        return r->digest ? r->digest : r->tag;
}

static bool is_lower_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Path components: lowercase alnum runs joined by '.', '_', '__' or '-'s. */
static bool repository_is_valid(const char *s) {
        size_t len = strlen(s);
        if (len == 0 || len > OCI_REPOSITORY_MAX)
                return false;
        bool at_start = true;
        for (const char *p = s; *p; p++) {
                if (is_lower_alnum(*p)) {
                        at_start = false;
                        continue;
                }
                if (*p == '/') {
                        if (at_start || !is_lower_alnum(p[-1]))
                                return false;
                        at_start = true;
                        continue;
                }
                if (!strchr("._-", *p) || at_start)
                        return false;
        }
        return !at_start && is_lower_alnum(s[len - 1]);
}

static bool tag_is_valid(const char *s) {
        size_t len = strlen(s);
        if (len == 0 || len > OCI_TAG_MAX || !(isalnum((unsigned char) s[0]) || s[0] == '_'))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("._-", *p))
                        return false;
        return true;
}

/* host, host:port, [v6]:port. Restricted to characters that cannot change
 * the meaning of the URL the registry client builds from it. */
static bool registry_is_valid(const char *s) {
        size_t len = strlen(s);
        if (len == 0 || len > 253)
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr(".-:[]", *p))
                        return false;
        return s[0] != '-' && s[0] != '.' && s[0] != ':';
}

bool oci_registry_is_loopback(const char *reg) {
        const char *names[] = { "localhost", "127.0.0.1", "[::1]" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                const char *rest = startswith(reg, names[i]);
                if (rest && (*rest == '\0' || *rest == ':'))
                        return true;
        }
        return false;
}

/* The first component names a registry when it looks like a host. */
static bool component_is_registry(const char *s, size_t len) {
        if (len == 9 && strncmp(s, "localhost", 9) == 0)
                return true;
        return memchr(s, '.', len) || memchr(s, ':', len) || memchr(s, '[', len);
}

static int split_name(char *name, OciRef *r) {
        char *slash = strchr(name, '/');
        const char *repo = name;
        if (slash && component_is_registry(name, (size_t) (slash - name))) {
                *slash = '\0';
                r->registry = strdup(name);
                repo = slash + 1;
        } else
                r->registry = strdup("docker.io");
        if (!r->registry)
                return -ENOMEM;
        if (!registry_is_valid(r->registry))
                return error_setf(-EINVAL, "invalid registry name \"%s\"", r->registry);
        bool hub = streq(r->registry, "docker.io") || streq(r->registry, "index.docker.io");
        if (hub && !strchr(repo, '/')) {
                if (asprintf(&r->repository, "library/%s", repo) < 0)
                        return -ENOMEM;
        } else if (!(r->repository = strdup(repo)))
                return -ENOMEM;
        if (!repository_is_valid(r->repository))
                return error_setf(-EINVAL, "invalid repository name \"%s\"", repo);
        r->host = strdup(hub ? "registry-1.docker.io" : r->registry);
        if (!r->host)
                return -ENOMEM;
        r->plain_http = oci_registry_is_loopback(r->registry);
        return 0;
}

int oci_ref_parse(const char *s, OciRef *ret) {
        if (!s || strlen(s) == 0 || strlen(s) > OCI_REF_MAX)
                return error_setf(-EINVAL, "invalid image reference");
        /* Otherwise "http:" would be taken for a registry name. */
        if (strstr(s, "://"))
                return error_setf(-EINVAL, "image reference \"%s\" has a URL scheme: write "
                                  "[REGISTRY/]REPOSITORY[:TAG] (plain HTTP is used for loopback registries only)", s);
        _cleanup_free_ char *buf = strdup(s);
        if (!buf)
                return -ENOMEM;
        OciRef r = {};
        int k = 0;
        char *at = strchr(buf, '@');
        if (at) {
                *at = '\0';
                if (!oci_digest_is_valid(at + 1)) {
                        k = error_setf(-EINVAL, "invalid digest in image reference \"%s\"", s);
                        goto fail;
                }
                if (!(r.digest = strdup(at + 1))) {
                        k = -ENOMEM;
                        goto fail;
                }
        }
        char *last_slash = strrchr(buf, '/');
        char *colon = strrchr(last_slash ? last_slash : buf, ':');
        if (colon) {
                *colon = '\0';
                if (!tag_is_valid(colon + 1)) {
                        k = error_setf(-EINVAL, "invalid tag in image reference \"%s\"", s);
                        goto fail;
                }
                if (!(r.tag = strdup(colon + 1))) {
                        k = -ENOMEM;
                        goto fail;
                }
        } else if (!r.digest && !(r.tag = strdup("latest"))) {
                k = -ENOMEM;
                goto fail;
        }
        if ((k = split_name(buf, &r)) < 0)
                goto fail;
        *ret = r;
        return 0;
fail:
        oci_ref_done(&r);
        return k;
}

void oci_bearer_challenge_done(OciBearerChallenge *c) {
        free(c->realm);
        free(c->service);
        free(c->scope);
        *c = (OciBearerChallenge){};
}

/* One key=value or key="quoted value" pair; advances *p past a comma. */
static int challenge_pair(const char **p, char **ret_key, char **ret_value) {
        const char *s = *p;
        while (*s == ' ' || *s == '\t')
                s++;
        const char *k = s;
        while (isalnum((unsigned char) *s) || *s == '_' || *s == '-')
                s++;
        if (s == k || *s != '=')
                return -EBADMSG;
        size_t klen = (size_t) (s - k);
        s++;
        _cleanup_free_ char *v = malloc(strlen(s) + 1);
        if (!v)
                return -ENOMEM;
        size_t n = 0;
        if (*s == '"') {
                for (s++; *s != '"'; s++) {
                        if (*s == '\0')
                                return -EBADMSG;
                        if (*s == '\\' && s[1])
                                s++;
                        v[n++] = *s;
                }
                s++;
        } else
                while (*s && *s != ',' && *s != ' ')
                        v[n++] = *s++;
        v[n] = '\0';
        while (*s == ' ' || *s == '\t')
                s++;
        if (*s == ',')
                s++;
        else if (*s != '\0')
                return -EBADMSG;
        *ret_key = strndup(k, klen);
        if (!*ret_key)
                return -ENOMEM;
        *ret_value = TAKE_PTR(v);
        *p = s;
        return 0;
}

int oci_bearer_challenge_parse(const char *value, OciBearerChallenge *ret) {
        if (!value || strlen(value) > 4096)
                return -EBADMSG;
        const char *p = value;
        while (*p == ' ')
                p++;
        if (strncasecmp(p, "Bearer ", 7) != 0)
                return -EOPNOTSUPP;
        p += 7;
        OciBearerChallenge c = {};
        int r = 0;
        while (*p && r == 0) {
                char *k = NULL, *v = NULL;
                if ((r = challenge_pair(&p, &k, &v)) < 0)
                        break;
                char **slot = streq(k, "realm") ? &c.realm : streq(k, "service") ? &c.service
                                                    : streq(k, "scope")         ? &c.scope
                                                                                : NULL;
                if (slot) {
                        free(*slot);
                        *slot = TAKE_PTR(v);
                }
                free(k);
                free(v);
        }
        if (r == 0 && (!c.realm || !*c.realm))
                r = -EBADMSG;
        if (r < 0) {
                oci_bearer_challenge_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}
