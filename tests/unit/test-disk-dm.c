/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk-clone.h"
#include "disk-test-util.h"
#include "dm-snapshot.h"
#include "ext4-edit.h"
#include "fs-util.h"
#include "workdisk.h"

/* The dm-snapshot clone: base on a read-only loop, COW store on another,
 * snapshot written through, base untouched, everything gone after removal. */
static void test_dm_snapshot(void **state) {
        char dir[] = "/tmp/banger-dm-XXXXXX";
        assert_non_null(mkdtemp(dir));
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        assert_int_equal(workdisk_create(dfd, "base.img", 64ULL << 20), 0);
        DiskCloneMethod used = 0;
        assert_int_equal(disk_clone(dfd, "base.img", dfd, "cow.img", DISK_CLONE_DM_SNAPSHOT, &used), 0);
        assert_int_equal(used, DISK_CLONE_DM_SNAPSHOT);
        _cleanup_free_ char *dev = NULL;
        _cleanup_close_ int bfd = openat(dfd, "base.img", O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int cfd = openat(dfd, "cow.img", O_RDWR | O_CLOEXEC);
        assert_true(bfd >= 0 && cfd >= 0);
        assert_int_equal(dm_snapshot_assemble(bfd, cfd, "banger-test-dm", &dev), 0);
        {
                _cleanup_close_ int fd = open(dev, O_RDWR | O_CLOEXEC);
                assert_true(fd >= 0);
                Ext4Image *img = NULL;
                assert_int_equal(ext4_image_open_fd(fd, &img), 0);
                assert_int_equal(ext4_write_file(img, "/marker", "dm\n", 3, 0644, 0, 0), 0);
                assert_int_equal(ext4_image_close(img), 0);
        }
        assert_int_equal(dm_snapshot_remove("banger-test-dm"), 0);
        assert_int_equal(dm_snapshot_remove("banger-test-dm"), 0); /* absent: fine */
        for (int i = 0; i < 100 && dt_loops_beneath(dir) > 0; i++)
                usleep(20000);
        assert_int_equal(dt_loops_beneath(dir), 0);
        /* The base never saw the write. */
        _cleanup_close_ int base = openat(dfd, "base.img", O_RDWR | O_CLOEXEC);
        Ext4Image *img = NULL;
        assert_int_equal(ext4_image_open_fd(base, &img), 0);
        Ext4Stat st;
        assert_int_equal(ext4_stat(img, "/marker", &st), -ENOENT);
        ext4_image_abort(img);
        assert_int_equal(dt_rm_rf(dir), 0);
}

int main(void) {
        if (!disk_dm_available()) {
                printf("device-mapper not available: /dev/mapper/control missing\n");
                return 77;
        }
        if (geteuid() != 0) {
                printf("dm test needs root\n");
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dm_snapshot),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
