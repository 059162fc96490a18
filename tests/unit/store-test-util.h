/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers shared by the store's unit tests: a temporary directory per test
 * and a few records to build on. Include after cmocka.h. */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs-util.h"
#include "store.h"
#include "string-util.h"

static char tmpdir[64];

static inline int setup(void **state) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/banger-store-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int teardown(void **state) {
        DIR *d = opendir(tmpdir);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                                (void) unlinkat(dirfd(d), de->d_name, 0);
                closedir(d);
        }
        return rmdir(tmpdir);
}

static inline char *db_path(const char *name) {
        char *p = path_join(tmpdir, name);
        assert_non_null(p);
        return p;
}

static inline void make_kernel(Store *s, const char *id, const char *name) {
        KernelRecord k = { .id = (char *) id, .name = (char *) name, .kernel_path = "/boot/vmlinuz", .size = 42 };
        assert_int_equal(store_kernel_insert(s, &k), 0);
}

static inline void make_image(Store *s, const char *id, const char *name, const char *kernel_id) {
        ImageRecord i = { .id = (char *) id,
                          .name = (char *) name,
                          .kernel_id = (char *) kernel_id,
                          .rootfs_path = "/var/lib/banger/images/rootfs.ext4",
                          .managed = true,
                          .source = "docker.io/library/debian:12" };
        assert_int_equal(store_image_insert(s, &i), 0);
}

static inline VmRecord vm_template(const char *id, const char *name, const char *image_id) {
        return (VmRecord){ .id = (char *) id,
                           .name = (char *) name,
                           .image_id = (char *) image_id,
                           .state = VM_STATE_CREATED,
                           .vmm = VMM_QEMU,
                           .vcpus = 2,
                           .mem_mib = 1024,
                           .disk_bytes = 8ULL << 30,
                           .spec_json = "{\"vcpus\":2}" };
}

static inline void make_vm(Store *s, const char *id, const char *name, const char *image_id) {
        VmRecord v = vm_template(id, name, image_id);
        assert_int_equal(store_vm_insert(s, &v), 0);
}

#define KERNEL1 "aaaaaaaaaaaaaaa1"
#define IMAGE1 "bbbbbbbbbbbbbbb1"
#define IMAGE2 "bbbbbbbbbbbbbbb2"
