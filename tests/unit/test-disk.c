/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "disk-clone.h"
#include "disk-fault.h"
#include "disk-reconcile.h"
#include "disk-test-util.h"
#include "error.h"
#include "fs-util.h"
#include "guest-patch.h"
#include "rootdisk.h"
#include "string-util.h"
#include "undo.h"
#include "workdisk.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

typedef struct Env {
        char dir[64];
        int dirfd;
} Env;

static int env_setup(void **state) {
        Env *e = calloc(1, sizeof(Env));
        snprintf(e->dir, sizeof(e->dir), "/tmp/banger-disk-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        e->dirfd = open_dir_nofollow(AT_FDCWD, e->dir);
        assert_true(e->dirfd >= 0);
        *state = e;
        return 0;
}

static bool owned_by_none(DiskHandleKind kind, const char *id, void *ud) {
        return false;
}

static int env_teardown(void **state) {
        Env *e = *state;
        disk_fault_hook = NULL;
        /* A failed assertion may have left the XFS mount or loops behind. */
        char mnt[128];
        snprintf(mnt, sizeof(mnt), "%s/mnt", e->dir);
        (void) umount2(mnt, MNT_DETACH);
        (void) disk_reconcile(e->dir, owned_by_none, NULL);
        safe_close(e->dirfd);
        assert_int_equal(dt_rm_rf(e->dir), 0);
        free(e);
        return 0;
}

static void write_at(int dirfd, const char *name, uint64_t off, size_t len, char fill) {
        _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        _cleanup_free_ char *buf = malloc(len);
        for (size_t i = 0; i < len; i++)
                buf[i] = (char) (fill + (char) (i % 251));
        assert_int_equal(pwrite(fd, buf, len, (off_t) off), (ssize_t) len);
}

static void make_sparse(int dirfd, const char *name, uint64_t size) {
        _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t) size), 0);
}

/* Same bytes in every data segment of a (holes read as zero on both). */
static void assert_same_data(int dirfd, const char *a, const char *b) {
        _cleanup_close_ int fa = openat(dirfd, a, O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int fb = openat(dirfd, b, O_RDONLY | O_CLOEXEC);
        struct stat sa, sb;
        assert_int_equal(fstat(fa, &sa), 0);
        assert_int_equal(fstat(fb, &sb), 0);
        assert_int_equal(sa.st_size, sb.st_size);
        static char ba[1 << 20], bb[1 << 20];
        for (off_t pos = 0; pos < sa.st_size;) {
                off_t data = lseek(fa, pos, SEEK_DATA);
                if (data < 0)
                        break;
                off_t hole = lseek(fa, data, SEEK_HOLE);
                for (off_t o = data; o < hole; o += sizeof(ba)) {
                        size_t n = (size_t) MIN((off_t) sizeof(ba), hole - o);
                        assert_int_equal(pread(fa, ba, n, o), (ssize_t) n);
                        assert_int_equal(pread(fb, bb, n, o), (ssize_t) n);
                        assert_memory_equal(ba, bb, n);
                }
                pos = hole;
        }
}

/* Every mapped extent of the file is shared with another file. */
static void assert_all_extents_shared(int dirfd, const char *name) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        size_t sz = sizeof(struct fiemap) + 256 * sizeof(struct fiemap_extent);
        _cleanup_free_ struct fiemap *fm = calloc(1, sz);
        unsigned total = 0;
        for (uint64_t start = 0;;) {
                memset(fm, 0, sz);
                fm->fm_start = start;
                fm->fm_length = FIEMAP_MAX_OFFSET - start;
                fm->fm_flags = FIEMAP_FLAG_SYNC;
                fm->fm_extent_count = 256;
                assert_int_equal(ioctl(fd, FS_IOC_FIEMAP, fm), 0);
                if (fm->fm_mapped_extents == 0)
                        break;
                for (unsigned i = 0; i < fm->fm_mapped_extents; i++)
                        assert_true(fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_SHARED);
                total += fm->fm_mapped_extents;
                struct fiemap_extent *last = &fm->fm_extents[fm->fm_mapped_extents - 1];
                if (last->fe_flags & FIEMAP_EXTENT_LAST)
                        break;
                start = last->fe_logical + last->fe_length;
        }
        assert_true(total > 0);
}

static uint64_t free_bytes(int fd) {
        struct statvfs sv;
        assert_int_equal(fstatvfs(fd, &sv), 0);
        return (uint64_t) sv.f_bfree * sv.f_frsize;
}

/* XFS on a loop device mounted at <dir>/mnt: the reflink path. */
static void test_reflink_xfs(void **state) {
        Env *e = *state;
        make_sparse(e->dirfd, "xfs.img", 1 * GiB);
        char img[128], mnt[128];
        snprintf(img, sizeof(img), "%s/xfs.img", e->dir);
        snprintf(mnt, sizeof(mnt), "%s/mnt", e->dir);
        _cleanup_free_ char *out = NULL;
        char *mkfs[] = { "mkfs.xfs", "-q", "-f", img, NULL };
        int r = dt_run(&out, mkfs);
        if (r != 0) {
                print_message("mkfs.xfs unavailable (%d): %s\n", r, out ?: "");
                skip();
        }
        assert_int_equal(mkdirat(e->dirfd, "mnt", 0700), 0);
        _cleanup_close_ int imgfd = openat(e->dirfd, "xfs.img", O_RDWR | O_CLOEXEC);
        LoopDevice loop = LOOP_DEVICE_NULL;
        assert_int_equal(loop_attach(imgfd, LOOP_ATTACH_AUTOCLEAR, &loop), 0);
        assert_int_equal(dt_loops_beneath(e->dir), 1);
        if (mount(loop.node, mnt, "xfs", 0, NULL) < 0) {
                loop_device_detach(&loop);
                fail_msg("mount xfs: %m");
        }
        {
                _cleanup_close_ int m = open_dir_nofollow(e->dirfd, "mnt");
                write_at(m, "small.img", 0, 16 * MiB, 'a');
                make_sparse(m, "large.img", 8 * GiB);
                write_at(m, "large.img", 0, 4 * MiB, 'b');
                write_at(m, "large.img", 4 * GiB, 4 * MiB, 'c');
                write_at(m, "large.img", 8 * GiB - 4 * MiB, 4 * MiB, 'd');
                assert_int_equal(fsync(m), 0);
                sync();

                DiskCloneMethod probe = 0;
                assert_int_equal(disk_clone_probe(m, &probe), 0);
                assert_int_equal(probe, DISK_CLONE_REFLINK);

                uint64_t before = free_bytes(m);
                DiskCloneMethod used = 0;
                assert_int_equal(disk_clone(m, "small.img", m, "small.clone", DISK_CLONE_ANY, &used), 0);
                assert_int_equal(used, DISK_CLONE_REFLINK);
                assert_int_equal(disk_clone(m, "large.img", m, "large.clone", DISK_CLONE_ANY, &used), 0);
                assert_int_equal(used, DISK_CLONE_REFLINK);
                sync();
                /* Both clones together cost (almost) no data blocks: 28 MiB of data was cloned. */
                uint64_t after = free_bytes(m);
                int64_t used_bytes = (int64_t) (before - after); /* XFS may even free preallocations */
                print_message("free space used by both clones: %lld KiB\n", (long long) (used_bytes / 1024));
                assert_true(used_bytes < (int64_t) (2 * MiB));
                assert_all_extents_shared(m, "small.clone");
                assert_all_extents_shared(m, "large.clone");
                assert_same_data(m, "small.img", "small.clone");
                assert_same_data(m, "large.img", "large.clone");
                struct stat st;
                assert_int_equal(fstatat(m, "large.clone", &st, 0), 0);
                assert_true(st.st_size == (off_t) (8 * GiB));
                assert_int_equal(st.st_mode & 07777, 0600);
        }
        loop_device_release(&loop); /* the mount holds the device now */
        assert_int_equal(umount2(mnt, 0), 0);
        assert_int_equal(loop_detach(loop.node ?: "/dev/loop-none"), 0);
        /* The kernel lets a detached loop device go asynchronously; under a
         * heavy load that took longer than 2 s, so allow 30. */
        for (int i = 0; i < 1500 && dt_loops_beneath(e->dir) > 0; i++)
                usleep(20000);
        assert_int_equal(dt_loops_beneath(e->dir), 0);
        assert_int_equal(dt_mounts_beneath(e->dir), 0);
}

/* /tmp here is ext4: no reflink, so the sparse copy is used and keeps holes. */
static void test_sparse_copy(void **state) {
        Env *e = *state;
        DiskCloneMethod probe = 0;
        assert_int_equal(disk_clone_probe(e->dirfd, &probe), 0);
        if (probe == DISK_CLONE_REFLINK) {
                print_message("%s supports reflink; sparse copy not reachable here\n", e->dir);
                skip();
        }
        make_sparse(e->dirfd, "base.img", 64 * MiB);
        write_at(e->dirfd, "base.img", 0, 1 * MiB, 'x');
        write_at(e->dirfd, "base.img", 32 * MiB, 1 * MiB, 'y');
        DiskCloneMethod used = 0;
        assert_int_equal(disk_clone(e->dirfd, "base.img", e->dirfd, "clone.img", DISK_CLONE_ANY, &used), 0);
        assert_int_equal(used, DISK_CLONE_SPARSE_COPY);
        assert_same_data(e->dirfd, "base.img", "clone.img");
        _cleanup_close_ int fd = openat(e->dirfd, "clone.img", O_RDONLY | O_CLOEXEC);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_size, 64 * MiB);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_true((uint64_t) st.st_blocks * 512 <= 3 * MiB); /* 2 MiB of data, the rest holes */
        assert_int_equal(lseek(fd, 0, SEEK_HOLE), 1 * MiB);
        assert_int_equal(lseek(fd, 1 * MiB, SEEK_DATA), 32 * MiB);
        assert_int_equal(lseek(fd, 33 * MiB, SEEK_DATA), -1);

        /* Reflink only: refused, and nothing is left behind. */
        assert_int_equal(disk_clone(e->dirfd, "base.img", e->dirfd, "r.img", DISK_CLONE_REFLINK, NULL), -EOPNOTSUPP);
        assert_int_equal(faccessat(e->dirfd, "r.img", F_OK, AT_SYMLINK_NOFOLLOW), -1);
        /* An existing destination is never overwritten. */
        assert_int_equal(disk_clone(e->dirfd, "base.img", e->dirfd, "clone.img", DISK_CLONE_ANY, NULL), -EEXIST);
        assert_same_data(e->dirfd, "base.img", "clone.img");
        /* Escapes are refused. */
        assert_int_equal(disk_clone(e->dirfd, "../etc/passwd", e->dirfd, "p.img", DISK_CLONE_ANY, NULL), -EXDEV);
        assert_int_equal(symlinkat("/etc/passwd", e->dirfd, "link.img"), 0);
        assert_int_equal(disk_clone(e->dirfd, "link.img", e->dirfd, "p.img", DISK_CLONE_ANY, NULL), -ELOOP);
        /* O_EXCL refuses an existing symlink as destination: never followed. */
        assert_int_equal(disk_clone(e->dirfd, "base.img", e->dirfd, "link.img", DISK_CLONE_ANY, NULL), -EEXIST);
        assert_int_equal(dt_count_entries(e->dir), 3); /* base, clone, link */
}

static bool owned_by_path(DiskHandleKind kind, const char *id, void *ud) {
        return kind == DISK_HANDLE_LOOP && streq(id, (const char *) ud);
}

static void test_loopdev(void **state) {
        Env *e = *state;
        make_sparse(e->dirfd, "a.img", 8 * MiB);
        make_sparse(e->dirfd, "b.img", 8 * MiB);
        _cleanup_close_ int a = openat(e->dirfd, "a.img", O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int b = openat(e->dirfd, "b.img", O_RDWR | O_CLOEXEC);
        LoopDevice la = LOOP_DEVICE_NULL, lb = LOOP_DEVICE_NULL;
        assert_int_equal(loop_attach(a, LOOP_ATTACH_READ_ONLY, &la), 0);
        assert_int_equal(loop_attach(b, 0, &lb), 0);
        LoopInfo *l = NULL;
        size_t n = 0;
        assert_int_equal(loop_list_beneath(e->dir, &l, &n), 0);
        assert_int_equal(n, 2);
        char want[128];
        snprintf(want, sizeof(want), "%s/a.img", e->dir);
        bool found = false;
        for (size_t i = 0; i < n; i++)
                found |= streq(l[i].node, la.node) && streq(l[i].backing, want);
        assert_true(found);
        loop_info_free_many(l, n);
        char ro[64];
        snprintf(ro, sizeof(ro), "/sys/block/loop%d/ro", la.nr);
        _cleanup_free_ char *rotext = NULL;
        assert_int_equal(read_file_at(AT_FDCWD, ro, 8192, &rotext, NULL), 0);
        assert_string_equal(rotext, "1\n");
        loop_device_release(&la);
        loop_device_release(&lb);

        /* Reconcile: a VM owns b.img; a.img's device is stale. */
        char owned_path[128];
        snprintf(owned_path, sizeof(owned_path), "%s/b.img", e->dir);
        assert_int_equal(disk_reconcile(e->dir, owned_by_path, owned_path), 1);
        assert_int_equal(loop_list_beneath(e->dir, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(l[0].backing, owned_path);
        assert_int_equal(loop_detach(l[0].node), 0);
        assert_int_equal(loop_detach(l[0].node), 0); /* already gone: fine */
        loop_info_free_many(l, n);
        assert_int_equal(dt_loops_beneath(e->dir), 0);
}

static unsigned fault_step, fault_at;
static int count_steps(const char *step) {
        return ++fault_step == fault_at ? -EIO : 0;
}

/* Run op with a fault injected at step 1, 2, ... until it succeeds without
 * reaching the fault; after every failure check that nothing was left.
 * Returns the number of steps that were failed. */
static unsigned fail_every_step(Env *e, int (*op)(Env *e), int expected_entries) {
        disk_fault_hook = count_steps;
        for (fault_at = 1;; fault_at++) {
                fault_step = 0;
                int r = op(e);
                if (fault_step < fault_at) {
                        assert_int_equal(r, 0);
                        break;
                }
                if (r != -EIO)
                        print_message("step %u: %s\n", fault_at, error_last_message() ?: "");
                assert_int_equal(r, -EIO);
                assert_non_null(strstr(error_last_message() ?: "", "injected fault"));
                assert_int_equal(dt_count_entries(e->dir), expected_entries);
                assert_int_equal(dt_loops_beneath(e->dir), 0);
                assert_int_equal(dt_mounts_beneath(e->dir), 0);
        }
        disk_fault_hook = NULL;
        print_message("failed each of %u steps, nothing left behind\n", fault_at - 1);
        return fault_at - 1;
}

static int op_loop_attach(Env *e) {
        _cleanup_close_ int fd = openat(e->dirfd, "a.img", O_RDONLY | O_CLOEXEC);
        LoopDevice d = LOOP_DEVICE_NULL;
        int r = loop_attach(fd, LOOP_ATTACH_READ_ONLY, &d);
        if (r >= 0)
                assert_int_equal(loop_device_detach(&d), 0);
        return r;
}

static int op_workdisk(Env *e) {
        int r = workdisk_create(e->dirfd, "work.img", 32 * MiB);
        if (r >= 0)
                assert_int_equal(unlinkat(e->dirfd, "work.img", 0), 0);
        return r;
}

static int op_workdisk_seed(Env *e) {
        int r = workdisk_from_seed(e->dirfd, "seed.img", e->dirfd, "work.img", 48 * MiB, DISK_CLONE_ANY, NULL);
        if (r >= 0)
                assert_int_equal(unlinkat(e->dirfd, "work.img", 0), 0);
        return r;
}

static int op_rootdisk(Env *e) {
        /* An unnamed host file, so the directory listing stays exact. */
        _cleanup_close_ int keyfd = openat(e->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        assert_int_equal(loop_write(keyfd, "copied\n", 7), 0);
        GuestFileCopy copy = { .src_fd = keyfd, .guest_path = "/opt/x/seed-copy", .mode = 0640 };
        GuestPatch p = {
                .hostname = "vm1",
                .address = "172.16.0.2/24",
                .gateway = "172.16.0.1",
                .mac = "02:fc:00:00:00:02",
                .dns = { "172.16.0.1" },
                .authorized_keys = "ssh-ed25519 AAAA k",
                .files = &copy,
                .n_files = 1,
        };
        int r = rootdisk_create(e->dirfd, "seed.img", e->dirfd, "root.img", DISK_CLONE_ANY, &p, NULL);
        if (r >= 0) {
                _cleanup_free_ char *out = NULL;
                char img[128];
                snprintf(img, sizeof(img), "%s/root.img", e->dir);
                char *argv[] = { "debugfs", "-R", "cat /etc/hostname", img, NULL };
                assert_int_equal(dt_run(&out, argv), 0);
                assert_non_null(strstr(out, "vm1\n"));
                free(out);
                out = NULL;
                char *cat[] = { "debugfs", "-R", "cat /opt/x/seed-copy", img, NULL };
                assert_int_equal(dt_run(&out, cat), 0);
                assert_non_null(strstr(out, "copied\n"));
                char *fsck[] = { "e2fsck", "-fn", img, NULL };
                assert_int_equal(dt_run(NULL, fsck), 0);
                assert_int_equal(unlinkat(e->dirfd, "root.img", 0), 0);
        }
        return r;
}

static void test_fault_injection(void **state) {
        Env *e = *state;
        make_sparse(e->dirfd, "a.img", 8 * MiB);
        assert_true(fail_every_step(e, op_loop_attach, 1) >= 3);
        assert_int_equal(unlinkat(e->dirfd, "a.img", 0), 0);
        assert_true(fail_every_step(e, op_workdisk, 0) >= 4);
        assert_int_equal(workdisk_create(e->dirfd, "seed.img", 32 * MiB), 0);
        assert_true(fail_every_step(e, op_workdisk_seed, 1) >= 6);
        /* clone + patch: every clone step, every file write, the flush. */
        assert_true(fail_every_step(e, op_rootdisk, 1) >= 12);
}

static void test_workdisk(void **state) {
        Env *e = *state;
        assert_int_equal(workdisk_create(e->dirfd, "w.img", 64 * MiB), 0);
        struct stat st;
        assert_int_equal(fstatat(e->dirfd, "w.img", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_size, 64 * MiB);
        assert_true((uint64_t) st.st_blocks * 512 < 16 * MiB); /* sparse, lazily initialised */
        char img[128];
        snprintf(img, sizeof(img), "%s/w.img", e->dir);
        _cleanup_free_ char *out = NULL;
        char *dump[] = { "dumpe2fs", "-h", img, NULL };
        assert_int_equal(dt_run(&out, dump), 0);
        assert_non_null(strstr(out, "banger-work"));
        assert_non_null(strstr(out, "Block count:              16384\n"));
        assert_int_equal(workdisk_create(e->dirfd, "w.img", 64 * MiB), -EEXIST);
        assert_int_equal(workdisk_create(e->dirfd, "tiny.img", 1 * MiB), -EINVAL);

        /* Grow a clone of it. */
        assert_int_equal(workdisk_from_seed(e->dirfd, "w.img", e->dirfd, "g.img", 128 * MiB, DISK_CLONE_ANY, NULL), 0);
        snprintf(img, sizeof(img), "%s/g.img", e->dir);
        free(out);
        out = NULL;
        char *dump2[] = { "dumpe2fs", "-h", img, NULL };
        assert_int_equal(dt_run(&out, dump2), 0);
        assert_non_null(strstr(out, "Block count:              32768\n"));
        char *fsck[] = { "e2fsck", "-fn", img, NULL };
        assert_int_equal(dt_run(NULL, fsck), 0);
        /* Shrinking is refused and leaves nothing. */
        assert_int_equal(workdisk_from_seed(e->dirfd, "g.img", e->dirfd, "s.img", 32 * MiB, DISK_CLONE_ANY, NULL),
                         -EINVAL);
        assert_int_equal(dt_count_entries(e->dir), 2);
}

/* Work disks cloned from a template per size: the first makes it, the
 * others clone it; each clone is a complete, clean filesystem; at most
 * WORKDISK_TEMPLATES_MAX templates are kept, then disks are formatted. */
static void test_workdisk_cached(void **state) {
        Env *e = *state;
        assert_int_equal(mkdirat(e->dirfd, "t", 0700), 0);
        _cleanup_close_ int tfd = open_dir_nofollow(e->dirfd, "t");
        bool cloned = false;
        assert_int_equal(workdisk_create_cached(tfd, e->dirfd, "w1.img", 64 * MiB, &cloned), 0);
        assert_true(cloned);
        assert_int_equal(workdisk_create_cached(tfd, e->dirfd, "w2.img", 64 * MiB, &cloned), 0);
        assert_true(cloned);
        assert_int_equal(workdisk_create_cached(tfd, e->dirfd, "w2.img", 64 * MiB, &cloned), -EEXIST);
        assert_int_equal(workdisk_create_cached(tfd, e->dirfd, "tiny.img", 1 * MiB, &cloned), -EINVAL);
        struct stat st;
        assert_int_equal(fstatat(tfd, "work-67108864.ext4", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(dt_count_entries(e->dir), 3); /* t, w1.img, w2.img */
        for (const char *const *n = (const char *const[]){ "w1.img", "w2.img", NULL }; *n; n++) {
                assert_int_equal(fstatat(e->dirfd, *n, &st, AT_SYMLINK_NOFOLLOW), 0);
                assert_int_equal(st.st_mode & 07777, 0600);
                assert_int_equal(st.st_size, 64 * MiB);
                char img[160];
                snprintf(img, sizeof(img), "%s/%s", e->dir, *n);
                _cleanup_free_ char *out = NULL;
                char *dump[] = { "dumpe2fs", "-h", img, NULL };
                assert_int_equal(dt_run(&out, dump), 0);
                assert_non_null(strstr(out, "banger-work"));
                assert_non_null(strstr(out, "metadata_csum_seed"));
                char *fsck[] = { "e2fsck", "-fn", img, NULL };
                assert_int_equal(dt_run(NULL, fsck), 0);
        }
        /* Templates of 7 more sizes fill the directory; the next size is formatted. */
        for (uint64_t i = 1; i < WORKDISK_TEMPLATES_MAX; i++) {
                char n[32];
                snprintf(n, sizeof(n), "s%llu.img", (unsigned long long) i);
                assert_int_equal(workdisk_create_cached(tfd, e->dirfd, n, (16 + i) * MiB, &cloned), 0);
                assert_true(cloned);
        }
        assert_int_equal(workdisk_create_cached(tfd, e->dirfd, "big.img", 100 * MiB, &cloned), 0);
        assert_false(cloned);
        assert_int_equal(dt_count_entries(e->dir), 3 + WORKDISK_TEMPLATES_MAX);
        char tdir[128];
        snprintf(tdir, sizeof(tdir), "%s/t", e->dir);
        assert_int_equal(dt_count_entries(tdir), WORKDISK_TEMPLATES_MAX);
}

/* Which dm devices reconcile may remove: banger's own names, stacked only
 * on loops over files in the managed directory. Anything else (an LVM
 * volume someone stacked on a loop of one of our files, a snapshot over
 * another helper's files) is not ours, whatever it sits on. */
static void test_dm_is_managed(void **state) {
        char *ours[] = { "/var/lib/banger/vms/a/base.img", "/var/lib/banger/vms/a/cow.img", NULL };
        char *mixed[] = { "/var/lib/banger/vms/a/cow.img", "/home/u/other.img", NULL };
        char *theirs[] = { "/var/lib/banger-b/vms/a/cow.img", NULL };
        char *none[] = { NULL };
        const char *dir = "/var/lib/banger";
        assert_true(disk_dm_is_managed(&(DmDevice){ .name = "banger-vm1", .backings = ours }, dir));
        assert_false(disk_dm_is_managed(&(DmDevice){ .name = "vg0-root", .backings = ours }, dir));
        assert_false(disk_dm_is_managed(&(DmDevice){ .name = "bangerx", .backings = ours }, dir));
        assert_false(disk_dm_is_managed(&(DmDevice){ .name = "banger-vm1", .backings = mixed }, dir));
        assert_false(disk_dm_is_managed(&(DmDevice){ .name = "banger-vm1", .backings = theirs }, dir));
        assert_false(disk_dm_is_managed(&(DmDevice){ .name = "banger-vm1", .backings = none }, dir));
        assert_false(disk_dm_is_managed(&(DmDevice){ .name = "banger-vm1", .backings = NULL }, dir));
}

int main(void) {
        if (geteuid() != 0) {
                printf("disk tests need root (loop devices, mount)\n");
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dm_is_managed),
                cmocka_unit_test_setup_teardown(test_reflink_xfs, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_sparse_copy, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_loopdev, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_workdisk, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_workdisk_cached, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_fault_injection, env_setup, env_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
