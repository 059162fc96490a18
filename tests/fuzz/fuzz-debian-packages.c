/* SPDX-License-Identifier: MIT */
/* Fuzz the reading of a Debian mirror's Packages index as a debootstrap
 * image build reads it to find its kernel: the stanza of linux-image-amd64,
 * the first name of its Depends, and that package's stanza. The input is the
 * index. Besides memory errors: a stanza found is the one asked for, with a
 * Filename that stays beneath the mirror (relative, no "..", plain
 * characters), a SHA256 of 64 lowercase hex digits and a Size from 1 byte to
 * 1 GiB; a Depends name is a non-empty word. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "debian-package.h"
#include "error.h"
#include "fs-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_stanza(const DebianPackage *p, const char *name) {
        const char *f = p->filename;
        if (!p->package || strcmp(p->package, name) != 0 || !f || f[0] == '/' || strstr(f, ".."))
                abort();
        if (strspn(f, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._+~-%") != strlen(f))
                abort();
        if (!p->sha256 || strlen(p->sha256) != 64 || strspn(p->sha256, "0123456789abcdef") != 64)
                abort();
        if (p->size == 0 || p->size > (1ULL << 30))
                abort();
}

static void find_kernel(int fd) {
        DebianPackage meta = {}, pkg = {};
        char *name = NULL;
        if (debian_packages_find(fd, "linux-image-amd64", &meta) < 0)
                return;
        check_stanza(&meta, "linux-image-amd64");
        if (debian_depends_first(meta.depends, &name) == 0) {
                if (!*name || strpbrk(name, " ,|("))
                        abort();
                if (lseek(fd, 0, SEEK_SET) == 0 && debian_packages_find(fd, name, &pkg) == 0) {
                        check_stanza(&pkg, name);
                        debian_package_done(&pkg);
                }
                free(name);
        }
        debian_package_done(&meta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > (1U << 20))
                return 0;
        int fd = memfd_create("packages", MFD_CLOEXEC);
        if (fd < 0)
                return 0;
        error_clear();
        if (loop_write(fd, data, size) == 0 && lseek(fd, 0, SEEK_SET) == 0)
                find_kernel(fd);
        close(fd);
        return 0;
}
