/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk-clone.h"
#include "disk-test-util.h"
#include "ext2fs-util.h"
#include "ext4-edit.h"
#include "fs-util.h"
#include "guest-patch.h"
#include "workdisk.h"

typedef struct Env {
        char dir[64];
        char img[128];
        int dirfd;
        int imgfd;
} Env;

static int env_setup(void **state) {
        Env *e = calloc(1, sizeof(Env));
        snprintf(e->dir, sizeof(e->dir), "/tmp/banger-ext4-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        e->dirfd = open_dir_nofollow(AT_FDCWD, e->dir);
        snprintf(e->img, sizeof(e->img), "%s/root.img", e->dir);
        assert_int_equal(workdisk_create(e->dirfd, "root.img", 64ULL << 20), 0);
        e->imgfd = openat(e->dirfd, "root.img", O_RDWR | O_CLOEXEC);
        assert_true(e->imgfd >= 0);
        *state = e;
        return 0;
}

static int env_teardown(void **state) {
        Env *e = *state;
        safe_close(e->imgfd);
        safe_close(e->dirfd);
        assert_int_equal(dt_rm_rf(e->dir), 0);
        free(e);
        return 0;
}

/* debugfs -R "<cmd> <path>" on the image: what a third party reads back. */
static char *debugfs(Env *e, const char *cmd, const char *path) {
        char req[512];
        snprintf(req, sizeof(req), "%s %s", cmd, path);
        char *argv[] = { "debugfs", "-R", req, e->img, NULL };
        char *out = NULL;
        assert_int_equal(dt_run(&out, argv), 0);
        /* debugfs prints its banner first; drop it. */
        const char *banner = strstr(out, "(5-Feb-2023)\n");
        if (banner) {
                char *rest = strdup(strchr(banner, '\n') + 1);
                free(out);
                out = rest;
        }
        return out;
}

static void assert_stat(Env *e, const char *path, const char *mode, unsigned uid, unsigned gid) {
        _cleanup_free_ char *out = debugfs(e, "stat", path);
        char want[64];
        snprintf(want, sizeof(want), "Mode:  %s", mode);
        if (!strstr(out, want))
                fail_msg("%s: want %s in\n%s", path, want, out);
        snprintf(want, sizeof(want), "User: %5u   Group: %5u", uid, gid);
        if (!strstr(out, want))
                fail_msg("%s: want '%s' in\n%s", path, want, out);
}

static void assert_fsck_clean(Env *e) {
        _cleanup_free_ char *out = NULL;
        char *argv[] = { "e2fsck", "-fn", e->img, NULL };
        int r = dt_run(&out, argv);
        if (r != 0)
                fail_msg("e2fsck -fn exit %d:\n%s", r, out);
}

static void test_write_read_back(void **state) {
        Env *e = *state;
        Ext4Image *img = NULL;
        assert_int_equal(ext4_image_open_fd(e->imgfd, &img), 0);
        assert_int_equal(ext4_mkdir_p(img, "/etc/banger/deep", 0750, 1000, 1000), 0);
        assert_int_equal(ext4_write_file(img, "/etc/banger/deep/a", "hello\n", 6, 0640, 1000, 100), 0);
        /* 3 MiB + a bit: many blocks, through extents. */
        size_t big = (3U << 20) + 123;
        _cleanup_free_ char *data = malloc(big);
        for (size_t i = 0; i < big; i++)
                data[i] = (char) ('a' + i % 26);
        assert_int_equal(ext4_write_file(img, "/big", data, big, 0600, 100000, 100001), 0);
        /* Replace: shorter content, new mode and owner. */
        assert_int_equal(ext4_write_file(img, "/big", "small", 5, 0644, 0, 0), 0);
        assert_int_equal(ext4_write_file(img, "/etc/hostname", "x\n", 2, 0644, 0, 0), 0);
        assert_int_equal(ext4_symlink(img, "/etc/resolv.conf", "../run/resolv.conf"), 0);
        /* A file where a symlink was replaces the link, never follows it. */
        assert_int_equal(ext4_write_file(img, "/etc/resolv.conf", "nameserver 1.1.1.1\n", 19, 0644, 0, 0), 0);
        _cleanup_free_ char *back = NULL;
        size_t len = 0;
        assert_int_equal(ext4_read_file(img, "/etc/banger/deep/a", 100, &back, &len), 0);
        assert_int_equal(len, 6);
        assert_string_equal(back, "hello\n");
        Ext4Stat st;
        assert_int_equal(ext4_stat(img, "/big", &st), 0);
        assert_int_equal(st.size, 5);
        assert_int_equal(st.mode, S_IFREG | 0644);
        assert_int_equal(ext4_image_close(img), 0);

        _cleanup_free_ char *a = debugfs(e, "cat", "/etc/banger/deep/a");
        assert_string_equal(a, "hello\n");
        _cleanup_free_ char *b = debugfs(e, "cat", "/big");
        assert_string_equal(b, "small");
        _cleanup_free_ char *rc = debugfs(e, "cat", "/etc/resolv.conf");
        assert_string_equal(rc, "nameserver 1.1.1.1\n");
        assert_stat(e, "/etc/banger/deep/a", "0640", 1000, 100);
        assert_stat(e, "/etc/banger/deep", "0750", 1000, 1000);
        assert_stat(e, "/big", "0644", 0, 0);
        /* Blocks of the replaced 3 MiB file were freed: the fs is consistent. */
        assert_fsck_clean(e);
}

/* More subdirectories and files than one directory block holds: creating
 * them has to grow the parent (the expand paths of libext2fs_mkdir and
 * libext2fs_link). */
static void test_many_dirs(void **state) {
        Env *e = *state;
        Ext4Image *img = NULL;
        assert_int_equal(ext4_image_open_fd(e->imgfd, &img), 0);
        char path[256];
        for (int i = 0; i < 60; i++) {
                snprintf(path, sizeof(path), "/many/%0200d", i);
                assert_int_equal(ext4_mkdir_p(img, path, 0700, 7, 8), 0);
        }
        assert_int_equal(ext4_mkdir_p(img, "/files", 0755, 0, 0), 0);
        for (int i = 0; i < 60; i++) {
                snprintf(path, sizeof(path), "/files/%0200d", i);
                assert_int_equal(ext4_write_file(img, path, "f", 1, 0640, 9, 10), 0);
        }
        assert_int_equal(ext4_image_close(img), 0);
        _cleanup_free_ char *files = debugfs(e, "ls -l", "/files");
        size_t nf = 0;
        for (const char *l = files; (l = strstr(l, "100640")); l++)
                nf++;
        assert_int_equal(nf, 60);
        _cleanup_free_ char *ls = debugfs(e, "ls -l", "/many");
        size_t n = 0;
        for (const char *l = ls; (l = strstr(l, "40700")); l++)
                n++;
        assert_int_equal(n, 61); /* and "." */
        snprintf(path, sizeof(path), "/many/%0200d", 59);
        assert_stat(e, path, "0700", 7, 8);
        _cleanup_free_ char *st = debugfs(e, "stat", "/many");
        assert_non_null(strstr(st, "Size: 16384")); /* grown from one 4 KiB block */
        assert_fsck_clean(e);
}

static void test_big_and_high_uid(void **state) {
        Env *e = *state;
        Ext4Image *img = NULL;
        assert_int_equal(ext4_image_open_fd(e->imgfd, &img), 0);
        size_t big = 5U << 20;
        _cleanup_free_ char *data = malloc(big);
        for (size_t i = 0; i < big; i++)
                data[i] = (char) (i * 7);
        assert_int_equal(ext4_write_file(img, "/blob", data, big, 0600, 100000, 100001), 0);
        assert_int_equal(ext4_image_close(img), 0);
        assert_stat(e, "/blob", "0600", 100000, 100001);
        /* dump the file with debugfs and compare every byte */
        char dump[160], req[256];
        snprintf(dump, sizeof(dump), "%s/blob.out", e->dir);
        snprintf(req, sizeof(req), "dump /blob %s", dump);
        char *argv[] = { "debugfs", "-R", req, e->img, NULL };
        assert_int_equal(dt_run(NULL, argv), 0);
        _cleanup_free_ char *got = NULL;
        size_t len = 0;
        assert_int_equal(read_file_at(e->dirfd, "blob.out", big + 1, &got, &len), 0);
        assert_int_equal(len, big);
        assert_memory_equal(got, data, big);
        assert_fsck_clean(e);
}

static void test_path_validation(void **state) {
        Env *e = *state;
        Ext4Image *img = NULL;
        assert_int_equal(ext4_image_open_fd(e->imgfd, &img), 0);
        const char *bad[] = { "etc/x", "/etc/../x", "/../x", "/a//b", "/a/./b", "/", "/a/", "", NULL };
        for (size_t i = 0; bad[i]; i++) {
                assert_false(ext4_guest_path_is_valid(bad[i]));
                assert_int_equal(ext4_write_file(img, bad[i], "x", 1, 0644, 0, 0), -EINVAL);
        }
        assert_int_equal(ext4_write_file(img, NULL, "x", 1, 0644, 0, 0), -EINVAL);
        /* A symlinked directory inside the image is never walked through. */
        assert_int_equal(ext4_mkdir_p(img, "/etc", 0755, 0, 0), 0);
        assert_int_equal(ext4_symlink(img, "/etc/evil", "/"), 0);
        assert_int_equal(ext4_write_file(img, "/etc/evil/pwned", "x", 1, 0644, 0, 0), -ELOOP);
        assert_int_equal(ext4_mkdir_p(img, "/etc/evil/sub", 0755, 0, 0), -ELOOP);
        assert_int_equal(ext4_write_file(img, "/nodir/x", "x", 1, 0644, 0, 0), -ENOENT);
        assert_int_equal(ext4_write_file(img, "/etc", "x", 1, 0644, 0, 0), -EISDIR);
        assert_int_equal(ext4_write_file(img, "/toolarge", "x", EXT4_FILE_MAX + 1, 0644, 0, 0), -EFBIG);
        assert_int_equal(ext4_image_close(img), 0);
        _cleanup_free_ char *ls = debugfs(e, "ls", "/");
        assert_null(strstr(ls, "pwned"));
        assert_fsck_clean(e);
}

static void test_guest_patch(void **state) {
        Env *e = *state;
        _cleanup_close_ int src = openat(e->dirfd, "motd", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_int_equal(loop_write(src, "welcome\n", 8), 0);
        GuestFileCopy copy = { .src_fd = src, .guest_path = "/usr/local/etc/motd", .mode = 0640, .uid = 0, .gid = 4 };
        GuestPatch p = {
                .hostname = "web-01",
                .address = "172.16.0.2/24",
                .gateway = "172.16.0.1",
                .mac = "02:fc:00:00:00:02",
                .dns = { "172.16.0.1", "1.1.1.1" },
                .authorized_keys = "ssh-ed25519 AAAAC3Nza user@host",
                .files = &copy,
                .n_files = 1,
        };
        assert_int_equal(guest_patch_apply(e->img, &p), 0);
        _cleanup_free_ char *hn = debugfs(e, "cat", "/etc/hostname");
        assert_string_equal(hn, "web-01\n");
        _cleanup_free_ char *hosts = debugfs(e, "cat", "/etc/hosts");
        assert_non_null(strstr(hosts, "127.0.1.1\tweb-01\n"));
        _cleanup_free_ char *net = debugfs(e, "cat", "/etc/banger/network.conf");
        assert_non_null(strstr(net, "\nADDRESS=172.16.0.2/24\nGATEWAY=172.16.0.1\nMAC=02:fc:00:00:00:02\n"
                                    "DNS=172.16.0.1 1.1.1.1\n"));
        _cleanup_free_ char *res = debugfs(e, "cat", "/etc/resolv.conf");
        assert_non_null(strstr(res, "nameserver 172.16.0.1\nnameserver 1.1.1.1\n"));
        _cleanup_free_ char *keys = debugfs(e, "cat", "/root/.ssh/authorized_keys");
        assert_string_equal(keys, "ssh-ed25519 AAAAC3Nza user@host\n");
        assert_stat(e, "/root/.ssh/authorized_keys", "0600", 0, 0);
        assert_stat(e, "/root/.ssh", "0700", 0, 0);
        assert_stat(e, "/etc/banger/network.conf", "0644", 0, 0);
        _cleanup_free_ char *motd = debugfs(e, "cat", "/usr/local/etc/motd");
        assert_string_equal(motd, "welcome\n");
        assert_stat(e, "/usr/local/etc/motd", "0640", 0, 4);
        /* Applying again replaces everything in place. */
        p.hostname = "web-02";
        assert_int_equal(guest_patch_apply(e->img, &p), 0);
        _cleanup_free_ char *hn2 = debugfs(e, "cat", "/etc/hostname");
        assert_string_equal(hn2, "web-02\n");
        assert_fsck_clean(e);

        /* Bad input is refused before the image is touched. */
        GuestPatch bad = p;
        bad.hostname = "-bad";
        assert_int_equal(guest_patch_apply(e->img, &bad), -EINVAL);
        bad = p;
        bad.address = "172.16.0.2/33";
        assert_int_equal(guest_patch_apply(e->img, &bad), -EINVAL);
        bad = p;
        bad.mac = "02:fc:00:00:00";
        assert_int_equal(guest_patch_apply(e->img, &bad), -EINVAL);
        GuestFileCopy esc = copy;
        esc.guest_path = "/etc/../../x";
        bad = p;
        bad.files = &esc;
        assert_int_equal(guest_patch_apply(e->img, &bad), -EINVAL);
        _cleanup_free_ char *hn3 = debugfs(e, "cat", "/etc/hostname");
        assert_string_equal(hn3, "web-02\n");
}

static char *dumpe2fs_line(Env *e, const char *name, const char *field) {
        char img[160];
        snprintf(img, sizeof(img), "%s/%s", e->dir, name);
        char *argv[] = { "dumpe2fs", "-h", img, NULL };
        _cleanup_free_ char *out = NULL;
        assert_int_equal(dt_run(&out, argv), 0);
        const char *l = strstr(out, field);
        assert_non_null(l);
        return strndup(l, strcspn(l, "\n"));
}

/* A clone of a work disk takes a UUID and hash seed of its own: the
 * filesystem stays clean (the checksums are seeded from the stored seed). */
static void test_new_identity(void **state) {
        Env *e = *state;
        assert_int_equal(disk_clone(e->dirfd, "root.img", e->dirfd, "clone.img", DISK_CLONE_FILE, NULL), 0);
        _cleanup_close_ int fd = openat(e->dirfd, "clone.img", O_RDWR | O_CLOEXEC);
        Ext4Image *img = NULL;
        assert_int_equal(ext4_image_open_fd(fd, &img), 0);
        assert_int_equal(ext4_image_new_identity(img), 0);
        assert_int_equal(ext4_mkdir_p(img, "/.ssh", 0700, 0, 0), 0);
        assert_int_equal(ext4_image_close(img), 0);
        _cleanup_free_ char *u0 = dumpe2fs_line(e, "root.img", "Filesystem UUID:");
        _cleanup_free_ char *u1 = dumpe2fs_line(e, "clone.img", "Filesystem UUID:");
        _cleanup_free_ char *h0 = dumpe2fs_line(e, "root.img", "Directory Hash Seed:");
        _cleanup_free_ char *h1 = dumpe2fs_line(e, "clone.img", "Directory Hash Seed:");
        assert_string_not_equal(u0, u1);
        assert_string_not_equal(h0, h1);
        assert_int_equal(u1[strlen(u1) - 22], '4'); /* version 4: ...-4xxx-yxxx-xxxxxxxxxxxx */
        char clone[160];
        snprintf(clone, sizeof(clone), "%s/clone.img", e->dir);
        char *fsck[] = { "e2fsck", "-fn", clone, NULL };
        assert_int_equal(dt_run(NULL, fsck), 0);

        /* Without a stored checksum seed the checksums would all be wrong. */
        char plain[160];
        snprintf(plain, sizeof(plain), "%s/plain.img", e->dir);
        _cleanup_close_ int pfd = openat(e->dirfd, "plain.img", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_int_equal(ftruncate(pfd, 32 << 20), 0);
        char *mkfs[] = { "mkfs.ext4", "-F", "-q", "-O", "metadata_csum", plain, NULL };
        assert_int_equal(dt_run(NULL, mkfs), 0);
        assert_int_equal(ext4_image_open_fd(pfd, &img), 0);
        assert_int_equal(ext4_image_new_identity(img), -EOPNOTSUPP);
        ext4_image_abort(img);
}

static void test_not_ext4(void **state) {
        Env *e = *state;
        _cleanup_close_ int fd = openat(e->dirfd, "junk", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_int_equal(ftruncate(fd, 1 << 20), 0);
        Ext4Image *img = NULL;
        assert_int_equal(ext4_image_open_fd(fd, &img), -EUCLEAN);
        assert_null(img);
}

static void test_libext2fs_errors(void **state) {
        /* System errors pass through both ways. */
        assert_string_equal(libext2fs_error_text(ENOENT), strerror(ENOENT));
        assert_int_equal(libext2fs_error_to_errno(EACCES), -EACCES);
        /* ext2 codes read as the library's own text and map to their errno. */
        assert_non_null(strstr(libext2fs_error_text(EXT2_ET_BAD_MAGIC), "magic"));
        assert_int_equal(libext2fs_error_to_errno(EXT2_ET_BAD_MAGIC), -EUCLEAN);
        assert_int_equal(libext2fs_error_to_errno(EXT2_ET_FILE_NOT_FOUND), -ENOENT);
        assert_int_equal(libext2fs_error_to_errno(EXT2_ET_DIR_NO_SPACE), -ENOSPC);
        assert_int_equal(libext2fs_error_to_errno(EXT2_ET_RO_FILSYS), -EROFS);
        assert_int_equal(libext2fs_error_to_errno(EXT2_ET_MAGIC_EXT2FS_FILSYS), -EIO);
        assert_string_equal(libext2fs_error_text(1L << 40), "unknown libext2fs error");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_write_read_back, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_many_dirs, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_big_and_high_uid, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_path_validation, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_guest_patch, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_new_identity, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_not_ext4, env_setup, env_teardown),
                cmocka_unit_test(test_libext2fs_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
