/* SPDX-License-Identifier: MIT */
/* A mirror's Packages index as a debootstrap build reads it to find its
 * kernel: the stanza of a package, the first name of its Depends, and the
 * stanzas refused (a Filename that leaves the mirror, a bad SHA256 or
 * Size). The same reading is fuzzed by fuzz-debian-packages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "debian-package.h"
#include "fs-util.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const char index_text[] =
        "Package: linux-headers-amd64\n"
        "Depends: linux-headers-6.1.0-41-amd64 (= 6.1.158-1)\n"
        "Filename: pool/main/l/linux-signed-amd64/linux-headers-amd64_6.1.158-1_amd64.deb\n"
        "Size: 1480\n"
        "SHA256: " SHA_A "\n"
        "\n"
        "Package: linux-image-amd64\n"
        "Version: 6.1.158-1\n"
        "Depends: linux-image-6.1.0-41-amd64 (= 6.1.158-1)\n"
        "Filename: pool/main/l/linux-signed-amd64/linux-image-amd64_6.1.158-1_amd64.deb\n"
        "Size: 1492\n"
        "SHA256: " SHA_A "\n"
        "\n"
        "Package: linux-image-6.1.0-41-amd64\n"
        "Depends: kmod, linux-base (>= 4.3~) | linux-initramfs-tool\n"
        "Filename: pool/main/l/linux-signed-amd64/linux-image-6.1.0-41-amd64_6.1.158-1_amd64.deb\n"
        "Size: 69517044\n"
        "SHA256: " SHA_A; /* the last stanza ends without a newline */

static int index_fd(const char *text) {
        int fd = memfd_create("packages", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, text, strlen(text)), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

static void test_find_kernel(void **state) {
        int fd = index_fd(index_text);
        DebianPackage meta = {}, pkg = {};
        char *name = NULL;
        assert_int_equal(debian_packages_find(fd, "linux-image-amd64", &meta), 0);
        assert_string_equal(meta.version, "6.1.158-1");
        assert_int_equal(meta.size, 1492);
        assert_int_equal(debian_depends_first(meta.depends, &name), 0);
        assert_string_equal(name, "linux-image-6.1.0-41-amd64");
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        assert_int_equal(debian_packages_find(fd, name, &pkg), 0);
        assert_string_equal(pkg.filename,
                            "pool/main/l/linux-signed-amd64/linux-image-6.1.0-41-amd64_6.1.158-1_amd64.deb");
        assert_int_equal(pkg.size, 69517044);
        assert_string_equal(pkg.sha256, SHA_A);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        DebianPackage none = {};
        assert_int_equal(debian_packages_find(fd, "linux-image-6.1.0-40-amd64", &none), -ENOENT);
        free(name);
        debian_package_done(&meta);
        debian_package_done(&pkg);
        close(fd);
}

static void expect_refused(const char *filename, const char *size, const char *sha256) {
        char text[512];
        snprintf(text, sizeof(text), "Package: k\nFilename: %s\nSize: %s\nSHA256: %s\n", filename, size, sha256);
        int fd = index_fd(text);
        DebianPackage p = {};
        assert_int_equal(debian_packages_find(fd, "k", &p), -EBADMSG);
        close(fd);
}

static void test_refused_stanzas(void **state) {
        expect_refused("pool/k.deb", "10", SHA_A "0"); /* the control: one digit too many */
        expect_refused("../../etc/passwd", "10", SHA_A);
        expect_refused("pool/../../etc/passwd", "10", SHA_A);
        expect_refused("/etc/shadow", "10", SHA_A);
        expect_refused("pool/k deb", "10", SHA_A);
        expect_refused("pool/k.deb", "0", SHA_A);
        expect_refused("pool/k.deb", "2147483648", SHA_A);
        expect_refused("pool/k.deb", "18446744073709551616", SHA_A);
        expect_refused("pool/k.deb", "10\r", SHA_A);
        expect_refused("pool/k.deb", "10", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        /* The same stanza with sane fields is found. */
        int fd = index_fd("Package: k\nFilename: pool/k_1.0+b1~x%2b.deb\nSize: 10\nSHA256: " SHA_A "\n");
        DebianPackage p = {};
        assert_int_equal(debian_packages_find(fd, "k", &p), 0);
        debian_package_done(&p);
        close(fd);
}

static void test_depends_first(void **state) {
        char *n = NULL;
        assert_int_equal(debian_depends_first("a (>= 1) | b, c", &n), 0);
        assert_string_equal(n, "a");
        free(n);
        assert_int_equal(debian_depends_first(", a", &n), -EBADMSG);
        assert_int_equal(debian_depends_first(NULL, &n), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_find_kernel),
                cmocka_unit_test(test_refused_stanzas),
                cmocka_unit_test(test_depends_first),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
