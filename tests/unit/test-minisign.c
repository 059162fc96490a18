/* SPDX-License-Identifier: MIT */
/* minisign signatures: keys and signatures made by Debian's real `minisign`
 * tool (prehashed "ED" and legacy "Ed") verify; altered data, an altered
 * trusted comment, another key's signature and malformed files are refused
 * with the error the user would read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "minisign.h"
#include "spawn.h"
#include "time-util.h"

typedef struct Fixture {
        char dir[64];
} Fixture;

static char *path_in(const Fixture *f, const char *name) {
        char *p = NULL;
        assert_true(asprintf(&p, "%s/%s", f->dir, name) > 0);
        return p;
}

static int run(char *const argv[]) {
        char *out = NULL;
        int r = spawn_run_capture(argv, 60 * USEC_PER_SEC, 65536, true, &out);
        if (r != 0)
                fprintf(stderr, "%s: %d: %s\n", argv[0], r, out ? out : "");
        free(out);
        return r;
}

static void make_key(const Fixture *f, const char *name) {
        char *pub = NULL, *sec = NULL;
        assert_true(asprintf(&pub, "%s/%s.pub", f->dir, name) > 0 && asprintf(&sec, "%s/%s.key", f->dir, name) > 0);
        char *argv[] = { "minisign", "-G", "-W", "-f", "-p", pub, "-s", sec, NULL };
        assert_int_equal(run(argv), 0);
        free(pub);
        free(sec);
}

static void sign(const Fixture *f, const char *key, const char *file, bool legacy) {
        char *sec = NULL, *msg = path_in(f, file);
        assert_true(asprintf(&sec, "%s/%s.key", f->dir, key) > 0);
        char *argv[] = {
                "minisign", "-S", "-s", sec, "-m", msg, "-t", "catalog of the test", legacy ? "-l" : NULL, NULL
        };
        assert_int_equal(run(argv), 0);
        free(sec);
        free(msg);
}

static char *slurp(const Fixture *f, const char *name, size_t *len) {
        char *text = NULL, *p = path_in(f, name);
        assert_int_equal(read_file_at(AT_FDCWD, p, 1 << 20, &text, len), 0);
        free(p);
        return text;
}

static void write_text(const Fixture *f, const char *name, const char *text) {
        char *p = path_in(f, name);
        FILE *fp = fopen(p, "we");
        assert_non_null(fp);
        fputs(text, fp);
        assert_int_equal(fclose(fp), 0);
        free(p);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/banger-minisign-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        make_key(f, "good");
        make_key(f, "other");
        write_text(f, "catalog.json", "{\"format\":1,\"images\":[]}\n");
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char *argv[] = { "rm", "-rf", f->dir, NULL };
        run(argv);
        free(f);
        return 0;
}

static int verify_file(const Fixture *f, const char *key, const char *file, const char *sigfile) {
        size_t n = 0, dn = 0, sn = 0;
        char *pub = slurp(f, key, &n), *data = slurp(f, file, &dn), *sig = slurp(f, sigfile, &sn);
        MinisignPublicKey k;
        MinisignSignature s;
        int r = minisign_public_key_parse(pub, &k);
        if (r >= 0)
                r = minisign_signature_parse(sig, sn, &s);
        if (r >= 0)
                r = minisign_verify(&k, &s, data, dn);
        free(pub);
        free(data);
        free(sig);
        return r;
}

static void test_prehashed_and_legacy_verify(void **state) {
        Fixture *f = *state;
        sign(f, "good", "catalog.json", false);
        size_t n;
        MinisignSignature s;
        char *sig = slurp(f, "catalog.json.minisig", &n);
        assert_int_equal(minisign_signature_parse(sig, n, &s), 0);
        assert_true(s.prehashed);
        assert_string_equal(s.trusted_comment, "catalog of the test");
        free(sig);
        assert_int_equal(verify_file(f, "good.pub", "catalog.json", "catalog.json.minisig"), 0);

        sign(f, "good", "catalog.json", true);
        sig = slurp(f, "catalog.json.minisig", &n);
        assert_int_equal(minisign_signature_parse(sig, n, &s), 0);
        assert_false(s.prehashed);
        free(sig);
        assert_int_equal(verify_file(f, "good.pub", "catalog.json", "catalog.json.minisig"), 0);
}

/* The RW... line alone, as a user pastes it into config.toml. */
static void test_key_line_alone(void **state) {
        Fixture *f = *state;
        size_t n;
        char *pub = slurp(f, "good.pub", &n);
        char *line = strchr(pub, '\n') + 1;
        MinisignPublicKey a, b;
        assert_int_equal(minisign_public_key_parse(pub, &a), 0);
        assert_int_equal(minisign_public_key_parse(line, &b), 0);
        assert_memory_equal(&a, &b, sizeof(a));
        char id[17];
        minisign_key_id_format(a.key_id, id);
        /* minisign names the id in its comment, as %llX: without leading zeros. */
        const char *digits = id + strspn(id, "0");
        assert_non_null(strstr(pub, digits));
        free(pub);
        assert_int_equal(minisign_public_key_parse("RWQnotakey", &a), -EBADMSG);
        assert_int_equal(minisign_public_key_parse("", &a), -EBADMSG);
}

static void test_altered_data_refused(void **state) {
        Fixture *f = *state;
        sign(f, "good", "catalog.json", false);
        write_text(f, "catalog.json", "{\"format\":1,\"images\":[{}]}\n");
        error_clear();
        assert_int_equal(verify_file(f, "good.pub", "catalog.json", "catalog.json.minisig"), -EKEYREJECTED);
        assert_non_null(strstr(error_last_message(), "does not match"));
        write_text(f, "catalog.json", "{\"format\":1,\"images\":[]}\n");
        assert_int_equal(verify_file(f, "good.pub", "catalog.json", "catalog.json.minisig"), 0);
}

static void test_other_key_refused(void **state) {
        Fixture *f = *state;
        sign(f, "other", "catalog.json", false);
        error_clear();
        assert_int_equal(verify_file(f, "good.pub", "catalog.json", "catalog.json.minisig"), -EKEYREJECTED);
        assert_non_null(strstr(error_last_message(), "not by the configured key"));
        assert_int_equal(verify_file(f, "other.pub", "catalog.json", "catalog.json.minisig"), 0);
}

static void test_altered_trusted_comment_refused(void **state) {
        Fixture *f = *state;
        sign(f, "good", "catalog.json", false);
        size_t n;
        char *sig = slurp(f, "catalog.json.minisig", &n);
        char *tc = strstr(sig, "trusted comment: catalog");
        assert_non_null(tc);
        tc[strlen("trusted comment: ")] = 'K';
        MinisignSignature s;
        MinisignPublicKey k;
        char *pub = slurp(f, "good.pub", &n);
        assert_int_equal(minisign_public_key_parse(pub, &k), 0);
        assert_int_equal(minisign_signature_parse(sig, strlen(sig), &s), 0);
        char *data = slurp(f, "catalog.json", &n);
        error_clear();
        assert_int_equal(minisign_verify(&k, &s, data, n), -EKEYREJECTED);
        assert_non_null(strstr(error_last_message(), "trusted comment"));
        free(sig);
        free(pub);
        free(data);
}

static void test_malformed_signatures(void **state) {
        (void) state;
        static const char *bad[] = {
                "",
                "untrusted comment: x\n",
                "trusted comment: x\nRWQ\n",
                "untrusted comment: x\nnot base64!\ntrusted comment: t\nAAAA\n",
                /* 74 bytes of "Xd..." : an unknown algorithm */
                "untrusted comment: "
                "x\nWGRBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\n"
                "trusted comment: t\n"
                "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\n",
        };
        MinisignSignature s;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(minisign_signature_parse(bad[i], strlen(bad[i]), &s), -EBADMSG);
        char big[MINISIGN_SIGNATURE_FILE_MAX + 2];
        memset(big, 'a', sizeof(big));
        assert_int_equal(minisign_signature_parse(big, sizeof(big), &s), -EBADMSG);
}

/* Text after the global signature is not part of any signature: refused. */
static void test_trailing_text_refused(void **state) {
        Fixture *f = *state;
        sign(f, "good", "catalog.json", false);
        size_t n;
        char *sig = slurp(f, "catalog.json.minisig", &n);
        MinisignSignature s;
        assert_int_equal(minisign_signature_parse(sig, n, &s), 0);
        char *more = NULL;
        assert_true(asprintf(&more, "%s\n\nextra\n", sig) > 0);
        assert_int_equal(minisign_signature_parse(more, strlen(more), &s), -EBADMSG);
        free(more);
        free(sig);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_prehashed_and_legacy_verify),
                cmocka_unit_test(test_key_line_alone),
                cmocka_unit_test(test_altered_data_refused),
                cmocka_unit_test(test_other_key_refused),
                cmocka_unit_test(test_altered_trusted_comment_refused),
                cmocka_unit_test(test_malformed_signatures),
                cmocka_unit_test(test_trailing_text_refused),
        };
        char *mp = find_executable("minisign");
        if (!mp) {
                printf("skipping: the minisign tool is not installed (scripts/deps.sh test)\n");
                return 77;
        }
        free(mp);
        return cmocka_run_group_tests(tests, setup, teardown);
}
