/* SPDX-License-Identifier: MIT */
#include "agent-tar.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

/* ustar header field offsets and sizes. */
#define H_NAME 0
#define H_MODE 100
#define H_UID 108
#define H_GID 116
#define H_SIZE 124
#define H_MTIME 136
#define H_CHKSUM 148
#define H_TYPE 156
#define H_LINK 157
#define H_MAGIC 257
#define H_VERSION 263
#define H_DEVMAJOR 329
#define H_DEVMINOR 337
#define H_PREFIX 345

void tar_entry_done(TarEntry *e) {
        free(e->path);
        free(e->linkpath);
        *e = (TarEntry){};
}

/* ---- writing ---- */

/* Octal into a field of len bytes (len-1 digits and a NUL); false if too big. */
static bool put_octal(uint8_t *f, size_t len, uint64_t v) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%0*" PRIo64, (int) len - 1, v);
        if (n < 0 || (size_t) n != len - 1)
                return false;
        memcpy(f, buf, len);
        return true;
}

static void checksum(uint8_t *h) {
        memset(h + H_CHKSUM, ' ', 8);
        unsigned sum = 0;
        for (size_t i = 0; i < TAR_BLOCK; i++)
                sum += h[i];
        snprintf((char *) h + H_CHKSUM, 8, "%06o", sum & 0777777);
        h[H_CHKSUM + 7] = ' ';
}

/* name, or prefix + "/" + name, in the ustar fields. */
static bool put_name(uint8_t *h, const char *path) {
        size_t len = strlen(path);
        if (len <= 100) {
                memcpy(h + H_NAME, path, len);
                return true;
        }
        for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
                size_t plen = (size_t) (s - path), nlen = len - plen - 1;
                if (plen <= 155 && nlen <= 100 && nlen > 0) {
                        memcpy(h + H_PREFIX, path, plen);
                        memcpy(h + H_NAME, s + 1, nlen);
                        return true;
                }
        }
        return false;
}

typedef struct Pax {
        char *buf;
        size_t len;
        bool oom;
} Pax;

/* One record: "<len> <key>=<value>\n", len counting itself. */
static void pax_add(Pax *p, const char *key, const char *value) {
        size_t body = 1 + strlen(key) + 1 + strlen(value) + 1, n = body;
        for (size_t digits = 1;; digits++) {
                char tmp[24];
                n = body + digits;
                if ((size_t) snprintf(tmp, sizeof(tmp), "%zu", n) == digits)
                        break;
        }
        char *b = realloc(p->buf, p->len + n + 1);
        if (!b) {
                p->oom = true;
                return;
        }
        p->buf = b;
        snprintf(b + p->len, n + 1, "%zu %s=%s\n", n, key, value);
        p->len += n;
}

static void pax_add_u64(Pax *p, const char *key, uint64_t v) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        pax_add(p, key, buf);
}

/* The ustar block for e; what does not fit goes into pax records. */
static void ustar_block(const TarEntry *e, uint8_t *h, Pax *pax) {
        memset(h, 0, TAR_BLOCK);
        if (!put_name(h, e->path)) {
                pax_add(pax, "path", e->path);
                memcpy(h + H_NAME, e->path, 99); /* a truncated fallback for pax-blind readers */
        }
        if (e->linkpath && strlen(e->linkpath) <= 100)
                memcpy(h + H_LINK, e->linkpath, strlen(e->linkpath));
        else if (e->linkpath)
                pax_add(pax, "linkpath", e->linkpath);
        put_octal(h + H_MODE, 8, e->mode & 07777);
        if (!put_octal(h + H_UID, 8, e->uid)) {
                pax_add_u64(pax, "uid", e->uid);
                put_octal(h + H_UID, 8, 0);
        }
        if (!put_octal(h + H_GID, 8, e->gid)) {
                pax_add_u64(pax, "gid", e->gid);
                put_octal(h + H_GID, 8, 0);
        }
        if (!put_octal(h + H_SIZE, 12, e->size)) {
                pax_add_u64(pax, "size", e->size);
                put_octal(h + H_SIZE, 12, 0);
        }
        if (e->mtime_sec < 0 || e->mtime_nsec != 0 || !put_octal(h + H_MTIME, 12, (uint64_t) e->mtime_sec)) {
                char buf[48];
                snprintf(buf, sizeof(buf), "%" PRId64 ".%09u", e->mtime_sec, e->mtime_nsec);
                pax_add(pax, "mtime", buf);
                put_octal(h + H_MTIME, 12, e->mtime_sec < 0 ? 0 : (uint64_t) MIN(e->mtime_sec, 077777777777LL));
        }
        h[H_TYPE] = (uint8_t) e->type;
        memcpy(h + H_MAGIC, "ustar", 6);
        memcpy(h + H_VERSION, "00", 2);
        put_octal(h + H_DEVMAJOR, 8, e->devmajor & 07777777);
        put_octal(h + H_DEVMINOR, 8, e->devminor & 07777777);
        checksum(h);
}

int tar_header_encode(const TarEntry *e, uint8_t **ret, size_t *ret_len) {
        uint8_t h[TAR_BLOCK];
        Pax pax = {};
        ustar_block(e, h, &pax);
        if (pax.oom) {
                free(pax.buf);
                return -ENOMEM;
        }
        size_t pax_blocks = (pax.len + TAR_BLOCK - 1) / TAR_BLOCK;
        size_t total = (pax.len ? (1 + pax_blocks) * TAR_BLOCK : 0) + TAR_BLOCK;
        uint8_t *out = calloc(1, total);
        if (!out) {
                free(pax.buf);
                return -ENOMEM;
        }
        if (pax.len) {
                TarEntry x = { .path = (char *) "PaxHeader", .type = 'x', .mode = 0644, .size = pax.len };
                Pax none = {};
                ustar_block(&x, out, &none);
                memcpy(out + TAR_BLOCK, pax.buf, pax.len);
        }
        memcpy(out + total - TAR_BLOCK, h, TAR_BLOCK);
        free(pax.buf);
        *ret = out;
        *ret_len = total;
        return 0;
}

/* ---- reading ---- */

/* Exactly len bytes: 1, 0 at end of input before the first byte, -EBADMSG
 * when the input ends part way, -errno. */
static int read_full(TarReader *r, uint8_t *buf, size_t len) {
        size_t done = 0;
        while (done < len) {
                long n = r->read(r->userdata, buf + done, len - done);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return done == 0 ? 0 : -EBADMSG;
                done += (size_t) n;
        }
        return 1;
}

static int skip(TarReader *r, uint64_t n) {
        uint8_t buf[4096];
        while (n > 0) {
                size_t k = (size_t) MIN(n, (uint64_t) sizeof(buf));
                int q = read_full(r, buf, k);
                if (q <= 0)
                        return q == 0 ? -EBADMSG : q;
                n -= k;
        }
        return 0;
}

/* An octal field (leading spaces, digits, then NUL or space), or base-256
 * when the top bit of the first byte is set. */
static int get_number(const uint8_t *f, size_t len, uint64_t *ret) {
        uint64_t v = 0;
        if (f[0] & 0x80) {
                if (f[0] != 0x80)
                        return -EBADMSG; /* negative, or more than 64 bits */
                for (size_t i = 1; i < len; i++) {
                        if (v >> 55)
                                return -EBADMSG;
                        v = v << 8 | f[i];
                }
                *ret = v;
                return 0;
        }
        size_t i = 0;
        while (i < len && f[i] == ' ')
                i++;
        for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
                if (v >> 60)
                        return -EBADMSG;
                v = v * 8 + (uint64_t) (f[i] - '0');
        }
        if (i < len && f[i] != 0 && f[i] != ' ')
                return -EBADMSG;
        *ret = v;
        return 0;
}

static bool checksum_ok(const uint8_t *h) {
        uint64_t want;
        if (get_number(h + H_CHKSUM, 8, &want) < 0)
                return false;
        unsigned usum = 0;
        int ssum = 0;
        for (size_t i = 0; i < TAR_BLOCK; i++) {
                uint8_t c = i >= H_CHKSUM && i < H_CHKSUM + 8 ? ' ' : h[i];
                usum += c;
                ssum += (signed char) c;
        }
        return want == usum || (int64_t) want == ssum;
}

static bool block_is_zero(const uint8_t *h) {
        for (size_t i = 0; i < TAR_BLOCK; i++)
                if (h[i])
                        return false;
        return true;
}

/* What pax and GNU headers say about the next entry. */
typedef struct Overrides {
        char *path, *linkpath;
        bool has_size, has_uid, has_gid, has_mtime;
        uint64_t size, uid, gid;
        int64_t mtime_sec;
        uint32_t mtime_nsec;
} Overrides;

static void overrides_done(Overrides *o) {
        free(o->path);
        free(o->linkpath);
        *o = (Overrides){};
}

static int parse_u64(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;
        if (len == 0 || len > 20)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        *ret = v;
        return 0;
}

static int parse_mtime(const char *s, size_t len, Overrides *o) {
        bool neg = len > 0 && s[0] == '-';
        const char *dot = memchr(s, '.', len);
        size_t ilen = (size_t) ((dot ? dot : s + len) - s) - neg;
        uint64_t sec;
        if (parse_u64(s + neg, ilen, &sec) < 0 || sec > INT64_MAX)
                return -EBADMSG;
        uint32_t nsec = 0;
        if (dot) {
                const char *f = dot + 1, *end = s + len;
                for (unsigned i = 0; i < 9; i++) {
                        char c = f + i < end ? f[i] : '0';
                        if (c < '0' || c > '9')
                                return -EBADMSG;
                        nsec = nsec * 10 + (uint32_t) (c - '0');
                }
        }
        o->mtime_sec = neg ? -(int64_t) sec : (int64_t) sec;
        o->mtime_nsec = neg ? 0 : nsec;
        o->has_mtime = true;
        return 0;
}

static int set_string(char **dst, const char *s, size_t len) {
        if (len == 0 || len > TAR_PATH_MAX || memchr(s, 0, len))
                return -EBADMSG;
        char *c = strndup(s, len);
        if (!c)
                return -ENOMEM;
        free(*dst);
        *dst = c;
        return 0;
}

static int pax_record(const char *key, size_t klen, const char *v, size_t vlen, Overrides *o) {
#define KEY(k) (klen == strlen(k) && memcmp(key, k, klen) == 0)
        if (KEY("path"))
                return set_string(&o->path, v, vlen);
        if (KEY("linkpath"))
                return set_string(&o->linkpath, v, vlen);
        if (KEY("size"))
                return o->has_size = true, parse_u64(v, vlen, &o->size);
        if (KEY("uid"))
                return o->has_uid = true, parse_u64(v, vlen, &o->uid);
        if (KEY("gid"))
                return o->has_gid = true, parse_u64(v, vlen, &o->gid);
        if (KEY("mtime"))
                return parse_mtime(v, vlen, o);
#undef KEY
        return 0; /* atime, ctime, uname, xattrs ...: not kept */
}

static int pax_parse(const char *p, size_t len, Overrides *o) {
        while (len > 0) {
                uint64_t rlen = 0;
                size_t i = 0;
                while (i < len && i < 8 && p[i] >= '0' && p[i] <= '9')
                        rlen = rlen * 10 + (uint64_t) (p[i++] - '0');
                if (i == 0 || i >= len || p[i] != ' ' || rlen > len || rlen < i + 3 || p[rlen - 1] != '\n')
                        return -EBADMSG;
                const char *key = p + i + 1, *end = p + rlen - 1;
                const char *eq = memchr(key, '=', (size_t) (end - key));
                if (!eq || eq == key)
                        return -EBADMSG;
                int r = pax_record(key, (size_t) (eq - key), eq + 1, (size_t) (end - eq - 1), o);
                if (r < 0)
                        return r;
                p += rlen;
                len -= rlen;
        }
        return 0;
}

/* Read the data of a pax or GNU long-name header (at most max bytes). */
static int read_meta(TarReader *r, uint64_t size, size_t max, char **ret) {
        if (size > max)
                return -EBADMSG;
        char *buf = malloc((size_t) size + 1);
        if (!buf)
                return -ENOMEM;
        int q = read_full(r, (uint8_t *) buf, (size_t) size);
        if (q >= 0 && size > 0 && q == 0)
                q = -EBADMSG;
        if (q >= 0)
                q = skip(r, (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK);
        if (q < 0) {
                free(buf);
                return q;
        }
        buf[size] = 0;
        *ret = buf;
        return 0;
}

static int meta_header(TarReader *r, char type, uint64_t size, Overrides *o) {
        _cleanup_free_ char *data = NULL;
        int q = read_meta(r, size, type == 'x' || type == 'g' ? TAR_PAX_MAX : TAR_PATH_MAX + 1, &data);
        if (q < 0)
                return q;
        if (type == 'x')
                return pax_parse(data, (size_t) size, o);
        if (type == 'g')
                return 0;
        size_t len = strnlen(data, (size_t) size);
        return set_string(type == 'L' ? &o->path : &o->linkpath, data, len);
}

static int ustar_path(const uint8_t *h, char **ret) {
        char buf[256 + 2];
        size_t plen = memchr(h + H_PREFIX, 0, 155) ? strlen((const char *) h + H_PREFIX) : 155;
        size_t nlen = memchr(h + H_NAME, 0, 100) ? strlen((const char *) h + H_NAME) : 100;
        bool ustar = memcmp(h + H_MAGIC, "ustar\0", 6) == 0;
        size_t n = 0;
        if (ustar && plen > 0) {
                memcpy(buf, h + H_PREFIX, plen);
                buf[plen] = '/';
                n = plen + 1;
        }
        memcpy(buf + n, h + H_NAME, nlen);
        n += nlen;
        return set_string(ret, buf, n);
}

static int fill_entry(const uint8_t *h, Overrides *o, TarEntry *e) {
        uint64_t mode, uid, gid, size, mtime, maj, min;
        if (get_number(h + H_MODE, 8, &mode) < 0 || get_number(h + H_UID, 8, &uid) < 0 ||
            get_number(h + H_GID, 8, &gid) < 0 || get_number(h + H_SIZE, 12, &size) < 0 ||
            get_number(h + H_MTIME, 12, &mtime) < 0 || get_number(h + H_DEVMAJOR, 8, &maj) < 0 ||
            get_number(h + H_DEVMINOR, 8, &min) < 0 || mtime > INT64_MAX)
                return -EBADMSG;
        char type = h[H_TYPE] == 0 || h[H_TYPE] == '7' ? TAR_REG : (char) h[H_TYPE];
        *e = (TarEntry){ .type = type,
                         .mode = (uint32_t) (mode & 07777),
                         .uid = o->has_uid ? o->uid : uid,
                         .gid = o->has_gid ? o->gid : gid,
                         .size = o->has_size ? o->size : size,
                         .mtime_sec = o->has_mtime ? o->mtime_sec : (int64_t) mtime,
                         .mtime_nsec = o->has_mtime ? o->mtime_nsec : 0,
                         .devmajor = (uint32_t) maj,
                         .devminor = (uint32_t) min };
        e->path = TAKE_PTR(o->path);
        e->linkpath = TAKE_PTR(o->linkpath);
        int q = e->path ? 0 : ustar_path(h, &e->path);
        if (q >= 0 && !e->linkpath && (type == TAR_LINK || type == TAR_SYMLINK)) {
                size_t l = memchr(h + H_LINK, 0, 100) ? strlen((const char *) h + H_LINK) : 100;
                q = set_string(&e->linkpath, (const char *) h + H_LINK, l);
        }
        return q;
}

static int next_block(TarReader *r, uint8_t *h, const char **why) {
        int q = read_full(r, h, TAR_BLOCK);
        if (q == 0 || (q > 0 && block_is_zero(h))) {
                r->end = true;
                return 0;
        }
        if (q < 0) {
                *why = "the archive ends in the middle of a header";
                return q;
        }
        if (!checksum_ok(h) || memcmp(h + H_MAGIC, "ustar", 5) != 0) {
                *why = "not a tar header (bad checksum or magic)";
                return -EBADMSG;
        }
        return 1;
}

int tar_read_header(TarReader *r, TarEntry *ret, const char **ret_why) {
        const char *why = "malformed archive";
        Overrides o = {};
        uint8_t h[TAR_BLOCK];
        int q = r->end ? 0 : skip(r, r->left + r->pad);
        r->left = r->pad = 0;
        while (q >= 0 && !r->end) {
                q = next_block(r, h, &why);
                if (q <= 0)
                        break;
                uint64_t size;
                char type = (char) h[H_TYPE];
                if (get_number(h + H_SIZE, 12, &size) < 0) {
                        q = -EBADMSG;
                        break;
                }
                if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
                        q = meta_header(r, type, size, &o);
                        why = "malformed extended header";
                        continue;
                }
                if (!strchr("01234567", type) && type != 0) {
                        why = "unsupported entry type";
                        q = -EBADMSG;
                        break;
                }
                TarEntry e = {};
                q = fill_entry(h, &o, &e);
                if (q < 0) {
                        tar_entry_done(&e);
                        break;
                }
                r->left = e.size;
                r->pad = (TAR_BLOCK - e.size % TAR_BLOCK) % TAR_BLOCK;
                overrides_done(&o);
                *ret = e;
                return 1;
        }
        overrides_done(&o);
        if (q < 0 && ret_why)
                *ret_why = why;
        return q < 0 ? q : 0;
}

long tar_read_data(TarReader *r, uint8_t *buf, size_t len) {
        if (r->left == 0)
                return 0;
        size_t want = (size_t) MIN((uint64_t) len, r->left);
        long n = r->read(r->userdata, buf, want);
        if (n < 0)
                return n;
        if (n == 0)
                return -EBADMSG;
        r->left -= (uint64_t) n;
        return n;
}
