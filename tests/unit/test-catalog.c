/* SPDX-License-Identifier: MIT */
/* Bundles and catalogs: a bundle written from a kernel and an image on disk
 * unpacks to the same bytes with its holes kept; hostile archives (a "../"
 * member, an absolute path, a link, an unlisted member, altered bytes, a cut
 * file) are refused; the catalog document is built, parsed and searched;
 * downloads of file:// URLs are checked against their sha256; [[catalog]]
 * entries parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "catalog-doc.h"
#include "catalog-fetch.h"
#include "config.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "string-util.h"

#define ROOTFS_SIZE (64U << 20)

typedef struct Fixture {
        char dir[64];
        int dfd;
} Fixture;

static char *at(const Fixture *f, const char *name) {
        char *p = NULL;
        assert_true(asprintf(&p, "%s/%s", f->dir, name) > 0);
        return p;
}

static void put(const Fixture *f, const char *name, const void *data, size_t len, off_t off) {
        int fd = openat(f->dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, data, len, off), (ssize_t) len);
        close(fd);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/banger-catalog-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        f->dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->dfd >= 0);
        /* A sparse "rootfs": 64 MiB with data at 1 MiB and 40 MiB only. */
        put(f, "rootfs.ext4", "superblock", 10, 1 << 20);
        put(f, "rootfs.ext4", "data", 4, 40 << 20);
        int fd = openat(f->dfd, "rootfs.ext4", O_WRONLY | O_CLOEXEC);
        assert_int_equal(ftruncate(fd, ROOTFS_SIZE), 0);
        close(fd);
        put(f, "bzImage", "not really a kernel", 19, 0);
        put(f, "initrd", "an initrd", 9, 0);
        assert_int_equal(mkdirat(f->dfd, "modules", 0755), 0);
        assert_int_equal(mkdirat(f->dfd, "modules/6.1.0-test", 0755), 0);
        put(f, "modules/6.1.0-test/virtio.ko", "module", 6, 0);
        assert_int_equal(symlinkat("/usr/src/linux", f->dfd, "modules/6.1.0-test/build"), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        assert_int_equal(rm_rf_at(AT_FDCWD, f->dir), 0);
        close(f->dfd);
        free(f);
        return 0;
}

static void write_bundle(const Fixture *f, const char *out, bool image) {
        char *kp = at(f, "bzImage"), *ip = at(f, "initrd"), *mp = at(f, "modules"), *rp = at(f, "rootfs.ext4");
        char *op = at(f, out);
        KernelRecord k = {
                .name = "testk", .version = "6.1.0-test", .kernel_path = kp, .initrd_path = ip, .modules_path = mp
        };
        ImageRecord img = { .name = "test", .rootfs_path = rp };
        BundleOptions o = { .name = image ? "test" : "testk",
                            .version = "1.0",
                            .description = "a test",
                            .kernel = &k,
                            .image = image ? &img : NULL,
                            .output = op };
        error_clear();
        int r = bundle_write(&o);
        if (r < 0)
                fprintf(stderr, "bundle_write: %s\n", error_last_message());
        assert_int_equal(r, 0);
        free(kp), free(ip), free(mp), free(rp), free(op);
}

static int unpack_into(const Fixture *f, const char *bundle, const char *dir, json_t **ret) {
        (void) rm_rf_at(f->dfd, dir);
        assert_int_equal(mkdirat(f->dfd, dir, 0700), 0);
        int dfd = open_dir_nofollow(f->dfd, dir), fd = openat(f->dfd, bundle, O_RDONLY | O_CLOEXEC);
        assert_true(dfd >= 0 && fd >= 0);
        json_t *m = NULL;
        error_clear();
        int r = bundle_unpack(fd, dfd, 1ULL << 30, NULL, NULL, &m);
        if (r < 0)
                fprintf(stderr, "bundle_unpack %s: %s\n", bundle, error_last_message());
        close(fd);
        close(dfd);
        if (ret)
                *ret = m;
        else
                json_decref(m);
        return r;
}

static void test_bundle_round_trip_keeps_holes(void **state) {
        Fixture *f = *state;
        write_bundle(f, "test.tar.zst", true);
        json_t *m = NULL;
        assert_int_equal(unpack_into(f, "test.tar.zst", "out", &m), 0);
        assert_string_equal(json_string_value(json_object_get(m, "kind")), "image");
        assert_string_equal(json_string_value(json_object_get(json_object_get(m, "kernel"), "version")), "6.1.0-test");
        /* "data" counts what the rootfs holds, not its holes: what a pull
         * checks the disk for before it unpacks. */
        json_t *rootfs = json_array_get(json_object_get(m, "files"), 0);
        assert_string_equal(json_string_value(json_object_get(rootfs, "path")), "rootfs.ext4");
        assert_int_equal(json_integer_value(json_object_get(rootfs, "size")), ROOTFS_SIZE);
        assert_true(json_integer_value(json_object_get(rootfs, "data")) < (1 << 20));
        assert_true(bundle_manifest_unpacked_bytes(m) < ROOTFS_SIZE / 2);
        json_decref(m);
        char a[SHA256_HEX_LEN + 1], b[SHA256_HEX_LEN + 1];
        int fa = openat(f->dfd, "rootfs.ext4", O_RDONLY | O_CLOEXEC), fb = openat(f->dfd, "out/rootfs.ext4", O_RDONLY);
        assert_int_equal(sha256_fd(fa, a, NULL), 0);
        assert_int_equal(sha256_fd(fb, b, NULL), 0);
        assert_string_equal(a, b);
        struct stat st;
        assert_int_equal(fstat(fb, &st), 0);
        assert_int_equal(st.st_size, ROOTFS_SIZE);
        assert_true(st.st_blocks * 512 < (1 << 20)); /* the holes stayed holes */
        close(fa), close(fb);
        assert_int_equal(faccessat(f->dfd, "out/kernel/bzImage", F_OK, 0), 0);
        assert_int_equal(faccessat(f->dfd, "out/kernel/modules/6.1.0-test/virtio.ko", F_OK, 0), 0);
        /* The modules tree's link to /usr/src stayed out. */
        assert_int_equal(faccessat(f->dfd, "out/kernel/modules/6.1.0-test/build", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}

/* A tar.zst of manifest (the given files list) and members made by add(). */
static void hostile(const Fixture *f, const char *name, const char *files_json, void (*add)(struct archive *a, void *u),
                    void *u) {
        char *p = at(f, name);
        struct archive *a = archive_write_new();
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
        assert_int_equal(archive_write_open_filename(a, p), ARCHIVE_OK);
        char *m = NULL;
        assert_true(asprintf(&m,
                             "{\"format\":1,\"kind\":\"kernel\",\"name\":\"k\",\"version\":\"1\","
                             "\"kernel\":{\"name\":\"k\"},\"files\":%s}",
                             files_json) > 0);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, "manifest.json");
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t) strlen(m));
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        assert_int_equal(archive_write_data(a, m, strlen(m)), (la_ssize_t) strlen(m));
        archive_entry_free(e);
        add(a, u);
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        free(m);
        free(p);
}

typedef struct Member {
        const char *path, *data, *link;
        int type;
} Member;

static void add_member(struct archive *a, void *u) {
        const Member *mb = u;
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, mb->path);
        archive_entry_set_filetype(e, (unsigned) mb->type);
        archive_entry_set_perm(e, 0644);
        if (mb->type == AE_IFLNK)
                archive_entry_set_symlink(e, mb->link);
        archive_entry_set_size(e, mb->data ? (la_int64_t) strlen(mb->data) : 0);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (mb->data)
                archive_write_data(a, mb->data, strlen(mb->data));
        archive_entry_free(e);
}

/* sha256("hello") */
#define HELLO_SHA "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define FILE_JSON(path) \
        "[{\"path\":\"" path "\",\"type\":\"file\",\"mode\":420,\"size\":5,\"sha256\":\"" HELLO_SHA "\"}]"

static void test_hostile_bundles_refused(void **state) {
        Fixture *f = *state;
        static const struct {
                const char *files;
                Member m;
                const char *why;
        } cases[] = {
                { FILE_JSON("kernel"), { "../evil", "hello", NULL, AE_IFREG }, "unsafe path" },
                { FILE_JSON("kernel"), { "/etc/evil", "hello", NULL, AE_IFREG }, "unsafe path" },
                { FILE_JSON("kernel"), { "kernel", NULL, "/etc/passwd", AE_IFLNK }, "link" },
                { FILE_JSON("kernel"), { "kernel/other", "hello", NULL, AE_IFREG }, "without listing" },
                { FILE_JSON("kernel"), { "kernel", "hellO", NULL, AE_IFREG }, "sha256" },
                { FILE_JSON("../kernel"), { "../kernel", "hello", NULL, AE_IFREG }, "unsafe path" },
                { FILE_JSON("kernel"), { "rootfs.ext4", "hello", NULL, AE_IFREG }, "without listing" },
                { "[{\"path\":\"kernel\",\"type\":\"file\",\"mode\":420,\"size\":5,\"data\":6,\"sha256\":\"" HELLO_SHA
                  "\"}]",
                  { "kernel", "hello", NULL, AE_IFREG },
                  "no valid data size" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                hostile(f, "bad.tar.zst", cases[i].files, add_member, (void *) &cases[i].m);
                int r = unpack_into(f, "bad.tar.zst", "bad", NULL);
                if (r >= 0 || !strstr(error_last_message() ?: "", cases[i].why))
                        fprintf(stderr, "case %zu: %d %s\n", i, r, error_last_message());
                assert_true(r < 0);
                assert_non_null(strstr(error_last_message(), cases[i].why));
                /* Nothing landed outside the directory. */
                assert_int_equal(faccessat(f->dfd, "evil", F_OK, AT_SYMLINK_NOFOLLOW), -1);
        }
        /* The good one of the same shape unpacks. */
        Member ok = { "kernel", "hello", NULL, AE_IFREG };
        hostile(f, "good.tar.zst", FILE_JSON("kernel"), add_member, &ok);
        assert_int_equal(unpack_into(f, "good.tar.zst", "good", NULL), 0);
}

static void test_cut_bundle_refused(void **state) {
        Fixture *f = *state;
        write_bundle(f, "k.tar.zst", false);
        struct stat st;
        assert_int_equal(fstatat(f->dfd, "k.tar.zst", &st, 0), 0);
        int fd = openat(f->dfd, "k.tar.zst", O_WRONLY | O_CLOEXEC);
        assert_int_equal(ftruncate(fd, st.st_size / 2), 0);
        close(fd);
        assert_true(unpack_into(f, "k.tar.zst", "cut", NULL) < 0);
}

static void test_catalog_build_parse_find(void **state) {
        Fixture *f = *state;
        assert_int_equal(mkdirat(f->dfd, "pub", 0755), 0);
        write_bundle(f, "pub/test.tar.zst", true);
        write_bundle(f, "pub/testk.tar.zst", false);
        int pfd = open_dir_nofollow(f->dfd, "pub");
        json_t *c = NULL;
        assert_int_equal(catalog_build(pfd, "https://example.org/b/", &c), 0);
        close(pfd);
        char *text = json_dumps(c, 0);
        json_decref(c);
        assert_int_equal(catalog_parse(text, strlen(text), &c), 0);
        free(text);
        json_t *e = catalog_find(c, "images", "test", NULL);
        assert_non_null(e);
        assert_string_equal(json_string_value(json_object_get(e, "url")), "https://example.org/b/test.tar.zst");
        assert_string_equal(json_string_value(json_object_get(json_object_get(e, "kernel"), "name")), "testk");
        assert_null(catalog_find(c, "images", "test", "2.0"));
        assert_non_null(catalog_find(c, "kernels", "testk", "1.0"));
        json_decref(c);

        const char *versions =
                "{\"format\":1,\"kernels\":["
                "{\"name\":\"k\",\"version\":\"1.9\",\"url\":\"a\",\"size\":1,\"sha256\":\"" HELLO_SHA
                "\"},{\"name\":\"k\",\"version\":\"1.10\",\"url\":\"b\",\"size\":1,\"sha256\":\"" HELLO_SHA "\"}]}";
        assert_int_equal(catalog_parse(versions, strlen(versions), &c), 0);
        assert_string_equal(json_string_value(json_object_get(catalog_find(c, "kernels", "k", NULL), "version")),
                            "1.10");
        json_decref(c);
        static const char *const bad[] = {
                "{\"format\":2}",
                "{\"format\":1,\"kernels\":[{\"name\":\"K!\",\"version\":\"1\",\"url\":\"a\",\"size\":1,"
                "\"sha256\":\"" HELLO_SHA "\"}]}",
                "{\"format\":1,\"images\":[{\"name\":\"i\",\"version\":\"1\",\"url\":\"a\",\"size\":1,"
                "\"sha256\":\"" HELLO_SHA "\"}]}", /* an image without its kernel */
                "{\"format\":1,\"kernels\":[{\"name\":\"k\",\"version\":\"1\",\"url\":\"a\",\"size\":1,"
                "\"sha256\":\"xyz\"}]}",
                "not json",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_true(catalog_parse(bad[i], strlen(bad[i]), &c) < 0);
}

static void test_resolve_and_refs(void **state) {
        (void) state;
        char *u = NULL, *n = NULL, *v = NULL;
        assert_int_equal(catalog_resolve_url("https://h.example/c/catalog.json", "b/x.tar.zst", &u), 0);
        assert_string_equal(u, "https://h.example/c/b/x.tar.zst");
        free(u);
        assert_int_equal(catalog_resolve_url("file:///srv/c/catalog.json", "x.tar.zst", &u), 0);
        assert_string_equal(u, "file:///srv/c/x.tar.zst");
        free(u);
        assert_int_equal(catalog_resolve_url("https://h.example/c.json", "http://o.example/x", &u), 0);
        free(u);
        /* A catalog from the network does not point at this host's files. */
        assert_true(catalog_resolve_url("https://h.example/c.json", "file:///etc/shadow", &u) < 0);
        assert_int_equal(catalog_ref_parse("debian-bookworm:2026.12.01", &n, &v), 0);
        assert_string_equal(n, "debian-bookworm");
        assert_string_equal(v, "2026.12.01");
        free(n), free(v);
        assert_int_equal(catalog_ref_parse("debian", &n, &v), 0);
        assert_null(v);
        free(n);
        assert_true(catalog_ref_parse("Debian", &n, &v) < 0);
        assert_true(catalog_ref_parse("debian:../x", &n, &v) < 0);
        assert_true(catalog_ref_parse("debian:", &n, &v) < 0);
        assert_true(bundle_path_is_safe("kernel/modules/6.1/a.ko"));
        assert_false(bundle_path_is_safe("kernel/../../etc"));
        assert_false(bundle_path_is_safe("/kernel"));
        assert_false(bundle_path_is_safe("kernel//x"));
        assert_false(bundle_path_is_safe("etc/passwd"));
}

static int download(const char *url, const char *sha, uint64_t size, int fd) {
        CatalogDownload d = { .url = url, .fd = fd, .size = size, .max = 1 << 20, .sha256 = sha };
        error_clear();
        return catalog_download(&d);
}

static void test_file_download_checked(void **state) {
        Fixture *f = *state;
        put(f, "hello", "hello", 5, 0);
        char *url = NULL, *missing = NULL;
        assert_true(asprintf(&url, "file://%s/hello", f->dir) > 0 && asprintf(&missing, "file://%s/nope", f->dir) > 0);
        int fd = openat(f->dfd, "dl", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_int_equal(download(url, HELLO_SHA, 5, fd), 0);
        char *buf = NULL;
        assert_int_equal(read_file_at(f->dfd, "dl", 100, &buf, NULL), 0);
        assert_memory_equal(buf, "hello", 5);
        free(buf);
        assert_int_equal(ftruncate(fd, 0), 0);
        char wrong[] = HELLO_SHA;
        wrong[0] = '3';
        assert_int_equal(download(url, wrong, 5, fd), -EBADMSG);
        assert_non_null(strstr(error_last_message(), "sha256"));
        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(download(url, HELLO_SHA, 4, fd), -EBADMSG); /* larger than the catalog says */
        assert_int_equal(download(missing, HELLO_SHA, 5, fd), -ENOENT);
        assert_int_equal(download("ftp://example.org/x", HELLO_SHA, 5, fd), -EINVAL);
        char *text = NULL;
        assert_int_equal(catalog_fetch_buffer(url, 5, &text, NULL), 0);
        assert_string_equal(text, "hello");
        free(text);
        assert_int_equal(catalog_fetch_buffer(url, 4, &text, NULL), -EFBIG);
        close(fd);
        free(url), free(missing);
}

static void test_config_catalogs(void **state) {
        (void) state;
        BangerConfig c;
        const char *good = "[[catalog]]\nurl = \"https://images.example.org/catalog.json\"\n"
                           "public_key = \"RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\"\n"
                           "[[catalog]]\nurl = \"file:///srv/catalog.json\"\ninsecure = true\n";
        assert_int_equal(config_parse_string(good, strlen(good), NULL, &c), 0);
        assert_int_equal(c.n_catalogs, 2);
        assert_string_equal(c.catalogs[0].url, "https://images.example.org/catalog.json");
        assert_non_null(c.catalogs[0].public_key);
        assert_false(c.catalogs[0].insecure);
        assert_null(c.catalogs[1].public_key);
        assert_true(c.catalogs[1].insecure);
        config_done(&c);
        static const char *const bad[] = {
                "[[catalog]]\npublic_key = \"RW\"\n",
                "[[catalog]]\nurl = \"ftp://x/c.json\"\n",
                "[[catalog]]\nurl = \"https://x/c.json\"\nkey = \"RW\"\n",
                "catalog = \"https://x/c.json\"\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                error_clear();
                assert_int_equal(config_parse_string(bad[i], strlen(bad[i]), NULL, &c), -EINVAL);
                assert_non_null(strstr(error_last_message(), "catalog"));
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_bundle_round_trip_keeps_holes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_bundles_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cut_bundle_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_catalog_build_parse_find, setup, teardown),
                cmocka_unit_test(test_resolve_and_refs),
                cmocka_unit_test_setup_teardown(test_file_download_checked, setup, teardown),
                cmocka_unit_test(test_config_catalogs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
