/* SPDX-License-Identifier: MIT */
/* catalog build runs the shared catalog code (catalog_build() and the bundle
 * code it reaches), which calls libarchive and libcrypto directly. banger is
 * linked with -Wl,--wrap=FUNCTION for each function below (the list is
 * catalog_dl_wrapped in meson.build), so those calls land here and go
 * through the pointers archive-dl.c and crypto-dl.c load: a banger process
 * loads neither library unless a command uses it.
 *
 * The constructors load their library, so every object reaching the other
 * wrappers came from it; catalog build loads both first anyway, to report a
 * missing library by name. A function listed in meson.build without a
 * wrapper here fails the link; one the shared code starts calling without
 * being listed brings its library back into every banger start, which
 * test-cli-dl catches. */
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "archive-dl.h"
#include "catalog-dl.h"
#include "crypto-dl.h"

#define WRAP(ret, name, params, args)   \
        ret __wrap_##name params;       \
        ret __wrap_##name params {      \
                return sym_##name args; \
        }
#define WRAP_VOID(name, params, args) \
        void __wrap_##name params;    \
        void __wrap_##name params {   \
                sym_##name args;      \
        }
/* A constructor: loads the library first (NULL, as for no memory, if it cannot). */
#define WRAP_NEW(ret, name, open)                        \
        ret __wrap_##name(void);                         \
        ret __wrap_##name(void) {                        \
                return open() < 0 ? NULL : sym_##name(); \
        }
/* A destructor: NULL is a no-op, also before the library is loaded. */
#define WRAP_FREE(ret, name, type, ok) \
        ret __wrap_##name(type *p);    \
        ret __wrap_##name(type *p) {   \
                if (!p)                \
                        return ok;     \
                return sym_##name(p);  \
        }

int catalog_dl_open(void) {
        int r = archive_dl_open();
        return r < 0 ? r : crypto_dl_open();
}

WRAP_NEW(struct archive *, archive_read_new, archive_dl_open)
WRAP_NEW(struct archive *, archive_write_new, archive_dl_open)
WRAP_NEW(struct archive_entry *, archive_entry_new, archive_dl_open)
WRAP_FREE(int, archive_read_free, struct archive, ARCHIVE_OK)
WRAP_FREE(int, archive_write_free, struct archive, ARCHIVE_OK)

void __wrap_archive_entry_free(struct archive_entry *e);
void __wrap_archive_entry_free(struct archive_entry *e) {
        if (e)
                sym_archive_entry_free(e);
}

WRAP(__LA_MODE_T, archive_entry_filetype, (struct archive_entry * e), (e))
WRAP(const char *, archive_entry_pathname, (struct archive_entry * e), (e))
WRAP_VOID(archive_entry_set_filetype, (struct archive_entry * e, unsigned t), (e, t))
WRAP_VOID(archive_entry_set_mtime, (struct archive_entry * e, time_t t, long ns), (e, t, ns))
WRAP_VOID(archive_entry_set_pathname, (struct archive_entry * e, const char *p), (e, p))
WRAP_VOID(archive_entry_set_perm, (struct archive_entry * e, __LA_MODE_T m), (e, m))
WRAP_VOID(archive_entry_set_size, (struct archive_entry * e, la_int64_t s), (e, s))
WRAP(la_int64_t, archive_entry_size, (struct archive_entry * e), (e))
WRAP_VOID(archive_entry_sparse_add_entry, (struct archive_entry * e, la_int64_t o, la_int64_t l), (e, o, l))
WRAP_VOID(archive_entry_sparse_clear, (struct archive_entry * e), (e))
WRAP(int, archive_errno, (struct archive * a), (a))
WRAP(const char *, archive_error_string, (struct archive * a), (a))
WRAP(la_ssize_t, archive_read_data, (struct archive * a, void *buf, size_t n), (a, buf, n))
WRAP(int, archive_read_next_header, (struct archive * a, struct archive_entry **e), (a, e))
WRAP(int, archive_read_open_fd, (struct archive * a, int fd, size_t block), (a, fd, block))
WRAP(int, archive_read_support_filter_zstd, (struct archive * a), (a))
WRAP(int, archive_read_support_format_tar, (struct archive * a), (a))
WRAP(int, archive_write_add_filter_zstd, (struct archive * a), (a))
WRAP(int, archive_write_close, (struct archive * a), (a))
WRAP(la_ssize_t, archive_write_data, (struct archive * a, const void *buf, size_t n), (a, buf, n))
WRAP(int, archive_write_header, (struct archive * a, struct archive_entry *e), (a, e))
WRAP(int, archive_write_open_fd, (struct archive * a, int fd), (a, fd))
WRAP(int, archive_write_set_bytes_in_last_block, (struct archive * a, int n), (a, n))
WRAP(int, archive_write_set_format_pax_restricted, (struct archive * a), (a))

WRAP_NEW(EVP_MD_CTX *, EVP_MD_CTX_new, crypto_dl_open)
WRAP_NEW(const EVP_MD *, EVP_sha256, crypto_dl_open)

void __wrap_EVP_MD_CTX_free(EVP_MD_CTX *ctx);
void __wrap_EVP_MD_CTX_free(EVP_MD_CTX *ctx) {
        if (ctx)
                sym_EVP_MD_CTX_free(ctx);
}

WRAP(int, EVP_DigestInit_ex, (EVP_MD_CTX * ctx, const EVP_MD *md, ENGINE *e), (ctx, md, e))
WRAP(int, EVP_DigestUpdate, (EVP_MD_CTX * ctx, const void *d, size_t n), (ctx, d, n))
WRAP(int, EVP_DigestFinal_ex, (EVP_MD_CTX * ctx, unsigned char *md, unsigned *n), (ctx, md, n))
