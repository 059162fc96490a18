/* SPDX-License-Identifier: MIT */
/* The libraries banger loads only in the commands that need them
 * (src/shared/util/dlopen-lib.h): each table resolves against the installed
 * library, the wrappers compute what the linked functions did, a missing
 * library or symbol is an error that names it, and the banger binary links
 * neither libcurl nor libnftables at start-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive-dl.h"
#include "crypto-dl.h"
#include "error.h"
#include "file-tree.h"
#include "macro.h"
#include "nftables-dl.h"
#include "spawn.h"
#include "sqlite-dl.h"
#include "string-util.h"

static void test_archive(void **state) {
        assert_int_equal(archive_dl_open(), 0);
        assert_int_equal(archive_dl_open(), 0); /* once is enough; again is a no-op */
        struct archive *a = sym_archive_write_new();
        assert_non_null(a);
        assert_int_equal(sym_archive_write_set_format_pax(a), ARCHIVE_OK);
        assert_int_equal(sym_archive_write_free(a), ARCHIVE_OK);
}

static void test_nftables(void **state) {
        assert_int_equal(nftables_dl_open(), 0);
        struct nft_ctx *nft = sym_nft_ctx_new(NFT_CTX_DEFAULT);
        assert_non_null(nft);
        assert_int_equal(sym_nft_ctx_buffer_error(nft), 0);
        sym_nft_ctx_free(nft);
}

static void test_crypto(void **state) {
        char hex[SHA256_HEX_LEN + 1], want[SHA256_HEX_LEN + 1];
        const char *text = "banger workspace setup inputs\n";
        assert_int_equal(crypto_dl_sha256("abc", 3, hex), 0);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_int_equal(crypto_dl_sha256(text, strlen(text), hex), 0);
        assert_int_equal(sha256_buffer(text, strlen(text), want), 0);
        assert_string_equal(hex, want);

        unsigned char out[16];
        assert_int_equal(crypto_dl_base64_decode("aGVsbG8=", 8, out), 5);
        assert_memory_equal(out, "hello", 5);
        assert_int_equal(crypto_dl_base64_decode("aGVsbG8h", 8, out), 6);
        assert_memory_equal(out, "hello!", 6);
        assert_int_equal(crypto_dl_base64_decode("a*==", 4, out), -EBADMSG);
}

static void test_sqlite(void **state) {
        assert_int_equal(sqlite_dl_open(), 0);
        sqlite3 *db = NULL;
        assert_int_equal(sym_sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sym_sqlite3_prepare_v2(db, "SELECT 6 * 7", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sym_sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sym_sqlite3_column_int64(st, 0), 42);
        assert_int_equal(sym_sqlite3_finalize(st), SQLITE_OK);
        assert_int_equal(sym_sqlite3_close_v2(db), SQLITE_OK);
}

static int (*sym_no_such_function)(void);
static int (*sym_strlen)(void);

static void test_missing(void **state) {
        void *h = NULL;
        const DlSymbol lib[] = { { "strlen", (void **) &sym_strlen } };
        error_clear();
        assert_int_equal(dlopen_lib(&h, "libbanger-no-such-library.so.1", lib, 1), -ENOPKG);
        assert_null(h);
        assert_non_null(strstr(error_last_message(), "cannot load libbanger-no-such-library.so.1"));

        /* A symbol the library lacks: nothing is set, not even the ones before it. */
        const DlSymbol syms[] = { { "strlen", (void **) &sym_strlen },
                                  { "no_such_function", (void **) &sym_no_such_function } };
        assert_int_equal(dlopen_lib(&h, "libc.so.6", syms, ELEMENTSOF(syms)), -ENOPKG);
        assert_null(h);
        assert_null(sym_strlen);
        assert_null(sym_no_such_function);
        assert_non_null(strstr(error_last_message(), "libc.so.6 has no no_such_function"));
}

/* What `banger` needs from the loader when it starts: libc and jansson,
 * and the sanitizers' runtimes in their builds. Not libcurl (the
 * Firecracker REST client is the daemon's), libnftables, libarchive,
 * libcrypto or SQLite: the commands that use them load them (dlopen-lib.h;
 * catalog build through catalog-dl.c, the store through sqlite-dl.c). */
static bool start_up_library_allowed(const char *lib) {
        static const char *const allowed[] = { "libc.so.", "libm.so.",    "libjansson.so.",
                                               "ld-linux", "libasan.so.", "libubsan.so." };
        for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
                if (startswith(lib, allowed[i]))
                        return true;
        return false;
}

static void test_banger_start_up_libraries(void **state) {
        _cleanup_free_ char *readelf = find_executable("readelf"), *out = NULL;
        if (!readelf) {
                print_message("skipped: readelf (binutils) is not installed\n");
                skip();
        }
        char *argv[] = { readelf, "-d", TEST_BUILD_DIR "/src/cli/banger", NULL };
        assert_int_equal(spawn_run_capture(argv, 10 * USEC_PER_SEC, 1 << 20, false, &out), 0);
        size_t n = 0;
        for (const char *p = out; (p = strstr(p, "(NEEDED)")); n++) {
                const char *lib = strstr(p, "[");
                assert_non_null(lib);
                lib++;
                _cleanup_free_ char *name = strndup(lib, strcspn(lib, "]\n"));
                assert_non_null(name);
                if (!start_up_library_allowed(name))
                        fail_msg("banger links %s at start-up:\n%s", name, out);
                p = lib;
        }
        assert_true(n >= 2); /* libc, jansson */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_archive), cmocka_unit_test(test_nftables),
                cmocka_unit_test(test_crypto),  cmocka_unit_test(test_sqlite),
                cmocka_unit_test(test_missing), cmocka_unit_test(test_banger_start_up_libraries),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
