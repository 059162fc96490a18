/* SPDX-License-Identifier: MIT */
/* Kernel identification and the kernel store: import a tiny crafted ELF and
 * Debian's real bzImage (from a `dpkg -x` of linux-image-*-amd64, cached in
 * $BANGER_TEST_CACHE), check the files, manifest and sha256 against
 * sha256sum/file, refusal while an image uses the kernel, and that failed
 * imports leave nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "debian-package.h"
#include "error.h"
#include "file-tree.h"
#include "firecracker-api.h"
#include "fs-util.h"
#include "kernel-image.h"
#include "kernel-store.h"
#include "spawn.h"
#include "store.h"
#include "string-util.h"

typedef struct Fixture {
        char dir[64];
        char *state;
        Store *store;
} Fixture;

static char *xasprintf(const char *fmt, ...) _printf_(1, 2);
static char *xasprintf(const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        assert_true(vasprintf(&s, fmt, ap) >= 0);
        va_end(ap);
        return s;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/banger-kernel-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        f->state = xasprintf("%s/state", f->dir);
        assert_int_equal(mkdir(f->state, 0700), 0);
        _cleanup_free_ char *db = xasprintf("%s/banger.db", f->state);
        assert_int_equal(store_open(db, 0, &f->store), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        store_close(f->store);
        assert_int_equal(rm_rf_at(AT_FDCWD, f->dir), 0);
        free(f->state);
        free(f);
        return 0;
}

/* A minimal x86_64 ET_EXEC with one PT_LOAD holding the banner. */
static size_t make_tiny_elf(uint8_t *buf, size_t cap, const char *banner) {
        static const uint8_t ehdr[64] = {
                0x7f, 'E', 'L', 'F', 2,  1, 1,  0, 0, 0, 0,  0, 0, 0, 0, 0,
                2,    0,   62,  0,   1,  0, 0,  0, /* ET_EXEC, EM_X86_64, version */
                0,    0,   0,   1,   0,  0, 0,  0, /* entry 0x1000000 */
                64,   0,   0,   0,   0,  0, 0,  0, /* phoff */
                0,    0,   0,   0,   0,  0, 0,  0, /* shoff */
                0,    0,   0,   0,   64, 0, 56, 0, 1, 0, 64, 0, 0, 0, 0, 0,
        };
        size_t blen = strlen(banner) + 1, off = 64 + 56;
        assert_true(off + blen <= cap);
        uint64_t ph[7] = { 1 | (5ULL << 32), off, 0x1000000, 0x1000000, blen, blen, 0x1000 };
        memcpy(buf, ehdr, sizeof(ehdr));
        memcpy(buf + 64, ph, sizeof(ph));
        memcpy(buf + off, banner, blen);
        return off + blen;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, data, len), 0);
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static char *make_tiny_elf_file(const char *dir, const char *name) {
        uint8_t buf[512];
        size_t n = make_tiny_elf(buf, sizeof(buf), "Linux version 9.9.9-test (t@banger) #1 SMP\n");
        char *p = xasprintf("%s/%s", dir, name);
        write_file(p, buf, n, 0644);
        return p;
}

/* First whitespace-separated word of `sha256sum path`. */
static void sha256sum(const char *path, char out[static 65]) {
        char *argv[] = { (char *) "sha256sum", (char *) path, NULL };
        _cleanup_free_ char *o = NULL;
        assert_int_equal(spawn_run_capture(argv, 60 * USEC_PER_SEC, 4096, false, &o), 0);
        assert_true(strlen(o) > 64);
        memcpy(out, o, 64);
        out[64] = 0;
}

static char *file_output(const char *path) {
        char *argv[] = { (char *) "file", (char *) "-b", (char *) path, NULL };
        char *o = NULL;
        assert_int_equal(spawn_run_capture(argv, 60 * USEC_PER_SEC, 8192, false, &o), 0);
        return o;
}

static bool path_is_elf(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        const void *d;
        size_t l;
        if (fd < 0 || kernel_image_map_fd(fd, &d, &l) < 0)
                return false;
        bool ok = kernel_elf_check(d, l) == 0;
        kernel_image_unmap(d, l);
        _cleanup_free_ char *o = file_output(path);
        return ok && startswith(o, "ELF 64-bit LSB executable, x86-64");
}

static json_t *load_manifest(const KernelRecord *k) {
        _cleanup_free_ char *p =
                xasprintf("%s/manifest.json", strndupa(k->elf_path, strrchr(k->elf_path, '/') - k->elf_path));
        json_t *m = json_load_file(p, 0, NULL);
        assert_non_null(m);
        return m;
}

static unsigned count_entries(const char *dir) {
        DIR *d = opendir(dir);
        unsigned n = 0;
        if (!d)
                return 0;
        for (struct dirent *de; (de = readdir(d));)
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void test_import_elf(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *src = make_tiny_elf_file(f->dir, "vmlinux-src");
        KernelImportOptions o = { .name = "tiny", .from = src };
        _cleanup_(kernel_record_done) KernelRecord k = {};
        assert_int_equal(kernel_store_import(f->store, f->state, &o, &k), 0);
        assert_string_equal(k.version, "9.9.9-test");
        assert_string_equal(k.kernel_path, k.elf_path);
        assert_true(path_is_elf(k.elf_path));
        char sum[65];
        sha256sum(src, sum);
        assert_string_equal(k.sha256, sum);
        json_t *m = load_manifest(&k);
        assert_string_equal(json_string_value(json_object_get(m, "version")), "9.9.9-test");
        json_t *vm = json_object_get(json_object_get(m, "files"), "vmlinux");
        assert_string_equal(json_string_value(json_object_get(vm, "sha256")), sum);
        assert_null(json_object_get(json_object_get(m, "files"), "bzImage"));
        json_decref(m);
        /* Firecracker is always handed the ELF. */
        json_t *bs = fc_json_boot_source(kernel_record_boot_path(&k, VMM_FIRECRACKER), NULL, "console=ttyS0");
        assert_true(path_is_elf(json_string_value(json_object_get(bs, "kernel_image_path"))));
        json_decref(bs);
        /* QEMU too (it is the only file), though it has no PVH entry. */
        assert_string_equal(kernel_record_boot_path(&k, VMM_QEMU), k.kernel_path);
        /* The name is taken now. */
        assert_int_equal(kernel_store_import(f->store, f->state, &o, NULL), -EEXIST);
        json_t *list = NULL;
        assert_int_equal(kernel_store_list_json(f->store, &list), 0);
        assert_int_equal(json_array_size(json_object_get(list, "kernels")), 1);
        json_decref(list);
}

/* Append an ELF note (name NUL-terminated, fields padded to 4 bytes). */
static size_t put_note(uint8_t *p, const char *name, uint32_t type, uint32_t descsz) {
        uint32_t nh[3] = { (uint32_t) strlen(name) + 1, descsz, type };
        size_t n = sizeof(nh);
        memcpy(p, nh, sizeof(nh));
        memset(p + n, 0, (nh[0] + 3) / 4 * 4 + (descsz + 3) / 4 * 4);
        memcpy(p + n, name, nh[0]);
        return n + (nh[0] + 3) / 4 * 4 + (descsz + 3) / 4 * 4;
}

/* The tiny ELF with a second program header, a PT_NOTE over notes
 * (note_len bytes at the end; filesz may claim more). */
static size_t make_noted_elf(uint8_t *buf, const uint8_t *notes, size_t note_len, uint64_t filesz) {
        size_t n = make_tiny_elf(buf, 512, "Linux version 9.9.9-test (t@banger) #1 SMP\n");
        /* Move the banger after room for a second program header. */
        memmove(buf + 64 + 2 * 56, buf + 64 + 56, n - (64 + 56));
        n += 56;
        uint64_t load_off = 64 + 2 * 56;
        memcpy(buf + 64 + 8, &load_off, sizeof(load_off));
        buf[56] = 2; /* e_phnum */
        uint64_t ph[7] = { 4, n, 0, 0, filesz, filesz, 4 };
        memcpy(buf + 64 + 56, ph, sizeof(ph));
        memcpy(buf + n, notes, note_len);
        assert_int_equal(kernel_elf_check(buf, n + note_len), 0);
        return n + note_len;
}

static void test_pvh_entry_note(void **state) {
        (void) state;
        uint8_t notes[128], elf[1024];
        size_t n = put_note(notes, "Xen", 6, 6);
        size_t other = n;
        n += put_note(notes + n, "Xen", 18, 8);
        /* Linux's own notes come first; the PVH entry is found after them. */
        assert_true(kernel_elf_has_pvh_entry(elf, make_noted_elf(elf, notes, n, n)));
        /* No PHYS32_ENTRY note, or one under another name. */
        assert_false(kernel_elf_has_pvh_entry(elf, make_noted_elf(elf, notes, other, other)));
        size_t m = put_note(notes, "Linux", 18, 8);
        assert_false(kernel_elf_has_pvh_entry(elf, make_noted_elf(elf, notes, m, m)));
        /* A note segment that runs past the end of the file, and a note whose
         * sizes run past its segment. */
        n = put_note(notes, "Xen", 18, 8);
        assert_false(kernel_elf_has_pvh_entry(elf, make_noted_elf(elf, notes, n, n + 4)));
        uint32_t huge = 0xfffffff0;
        memcpy(notes + 4, &huge, sizeof(huge));
        assert_false(kernel_elf_has_pvh_entry(elf, make_noted_elf(elf, notes, n, n)));
        /* The tiny ELF has no note at all; a bzImage-looking buffer is no ELF. */
        assert_false(kernel_elf_has_pvh_entry(elf, make_tiny_elf(elf, sizeof(elf), "Linux version 1")));
        assert_false(kernel_elf_has_pvh_entry("MZ", 2));
}

static void mkdirs(const char *base, const char *rel) {
        _cleanup_free_ char *p = xasprintf("%s/%s", base, rel);
        assert_int_equal(mkdir_p(p, 0755), 0);
}

/* A directory shaped like `dpkg -x` of a kernel package, with traps: a
 * symlinked kernel candidate and a symlink pointing out of the tree. */
static void test_import_dir_with_modules(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *root = xasprintf("%s/pkg", f->dir);
        mkdirs(root, "boot");
        mkdirs(root, "lib/modules/9.9.9-test/kernel/fs");
        _cleanup_free_ char *boot = xasprintf("%s/boot", root);
        free(make_tiny_elf_file(boot, "vmlinux-9.9.9-test"));
        _cleanup_free_ char *initrd = xasprintf("%s/initrd.img-9.9.9-test", boot);
        write_file(initrd, "initrd-bytes", 12, 0644);
        _cleanup_free_ char *ko = xasprintf("%s/lib/modules/9.9.9-test/kernel/fs/x.ko", root);
        write_file(ko, "ko", 2, 0600);
        _cleanup_free_ char *lnk = xasprintf("%s/lib/modules/9.9.9-test/build", root);
        assert_int_equal(symlink("/etc", lnk), 0);
        _cleanup_free_ char *trap = xasprintf("%s/vmlinuz", root);
        assert_int_equal(symlink("/etc/passwd", trap), 0);

        KernelImportOptions o = { .name = "pkg", .from = root };
        _cleanup_(kernel_record_done) KernelRecord k = {};
        assert_int_equal(kernel_store_import(f->store, f->state, &o, &k), 0);
        assert_non_null(k.initrd_path);
        assert_non_null(k.modules_path);
        _cleanup_free_ char *cko = xasprintf("%s/9.9.9-test/kernel/fs/x.ko", k.modules_path);
        struct stat st;
        assert_int_equal(lstat(cko, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        _cleanup_free_ char *clnk = xasprintf("%s/9.9.9-test/build", k.modules_path);
        char target[64] = {};
        assert_int_equal(readlink(clnk, target, sizeof(target) - 1), 4);
        assert_string_equal(target, "/etc");
        assert_int_equal(lstat(clnk, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        json_t *m = load_manifest(&k);
        assert_string_equal(json_string_value(json_object_get(m, "modules_version")), "9.9.9-test");
        assert_int_equal(
                json_integer_value(json_object_get(json_object_get(json_object_get(m, "files"), "initrd"), "size")),
                12);
        json_decref(m);
}

static void test_rm_refused_while_used(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *src = make_tiny_elf_file(f->dir, "vmlinux-src");
        KernelImportOptions o = { .name = "used", .from = src };
        _cleanup_(kernel_record_done) KernelRecord k = {};
        assert_int_equal(kernel_store_import(f->store, f->state, &o, &k), 0);
        char id[STORE_ID_GENERATED_LEN + 1];
        assert_int_equal(store_id_generate(id), 0);
        ImageRecord img = {
                .id = id, .name = (char *) "img", .kernel_id = k.id, .rootfs_path = (char *) "/nonexistent"
        };
        assert_int_equal(store_image_insert(f->store, &img), 0);
        assert_int_equal(kernel_store_remove(f->store, f->state, "used"), -EBUSY);
        assert_non_null(strstr(error_last_message(), "img"));
        assert_int_equal(access(k.elf_path, F_OK), 0);
        assert_int_equal(store_image_delete(f->store, id), 0);
        assert_int_equal(kernel_store_remove(f->store, f->state, "used"), 0);
        assert_int_equal(access(k.elf_path, F_OK), -1);
        KernelRecord gone = {};
        assert_int_equal(store_kernel_get_by_name(f->store, "used", &gone), -ENOENT);
        _cleanup_free_ char *kdir = xasprintf("%s/kernels", f->state);
        assert_int_equal(count_entries(kdir), 0);
}

static void test_failures_leave_nothing(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *kdir = xasprintf("%s/kernels", f->state);
        _cleanup_free_ char *junk = xasprintf("%s/junk", f->dir);
        write_file(junk, "not a kernel at all, just some bytes..........", 46, 0644);
        KernelImportOptions o = { .name = "bad", .from = junk };
        assert_int_equal(kernel_store_import(f->store, f->state, &o, NULL), -EBADMSG);
        assert_int_equal(count_entries(kdir), 0);

        /* The database refuses the row: the renamed directory goes again. */
        _cleanup_free_ char *src = make_tiny_elf_file(f->dir, "vmlinux-src");
        _cleanup_free_ char *db = xasprintf("%s/banger.db", f->state);
        Store *ro = NULL;
        assert_int_equal(store_open(db, STORE_OPEN_READONLY, &ro), 0);
        o = (KernelImportOptions){ .name = "rofail", .from = src };
        assert_true(kernel_store_import(ro, f->state, &o, NULL) < 0);
        store_close(ro);
        assert_int_equal(count_entries(kdir), 0);

        /* An unregistered directory in the way is not overwritten... */
        _cleanup_free_ char *orphan = xasprintf("%s/orphan", kdir);
        assert_int_equal(mkdir(orphan, 0700), 0);
        o = (KernelImportOptions){ .name = "orphan", .from = src };
        assert_int_equal(kernel_store_import(f->store, f->state, &o, NULL), -EEXIST);
        assert_int_equal(count_entries(kdir), 1);
        /* ...and the startup sweep clears it. */
        assert_int_equal(kernel_store_sweep(f->store, f->state), 0);
        assert_int_equal(count_entries(kdir), 0);
        assert_int_equal(kernel_store_import(f->store, f->state, &o, NULL), 0);
}

/* ---- Debian's real kernel ---- */

static int run_in(const char *cwd, char *const argv[]) {
        SpawnOptions so;
        Process p = PROCESS_NULL;
        int status = 0;
        spawn_options_init(&so);
        so.cwd = cwd;
        so.umask = 022;
        int r = spawn_process(argv, &so, &p);
        if (r < 0)
                return r;
        r = process_wait(&p, 600 * USEC_PER_SEC, &status);
        process_release(&p);
        return r < 0 ? r : (WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD);
}

/* The linux-image-<abi>-amd64 package linux-image-amd64 depends on. */
static char *kernel_package_name(void) {
        char *argv[] = { (char *) "apt-cache", (char *) "depends", (char *) "linux-image-amd64", NULL };
        _cleanup_free_ char *o = NULL;
        if (spawn_run_capture(argv, 60 * USEC_PER_SEC, 65536, false, &o) != 0)
                return NULL;
        for (char *line = strtok(o, "\n"); line; line = strtok(NULL, "\n")) {
                const char *v = startswith(line + strspn(line, " "), "Depends: linux-image-");
                if (v && v[0] >= '0' && v[0] <= '9')
                        return strdup(line + strspn(line, " ") + strlen("Depends: "));
        }
        return NULL;
}

/* A cached linux-image .deb (downloaded once into $BANGER_TEST_CACHE/debs). */
static char *kernel_deb(void) {
        const char *cache = getenv("BANGER_TEST_CACHE") ?: "/var/cache/banger-test";
        _cleanup_free_ char *pkg = kernel_package_name();
        if (!pkg)
                return NULL;
        _cleanup_free_ char *dir = xasprintf("%s/debs", cache);
        _cleanup_free_ char *pattern = xasprintf("%s/%s_*_amd64.deb", dir, pkg);
        glob_t g = {};
        if (glob(pattern, 0, NULL, &g) != 0) {
                char *argv[] = { (char *) "apt-get", (char *) "download", (char *) "-q", pkg, NULL };
                if (mkdir_p(dir, 0755) < 0 || run_in(dir, argv) != 0 || glob(pattern, 0, NULL, &g) != 0)
                        return NULL;
        }
        char *r = strdup(g.gl_pathv[0]);
        globfree(&g);
        return r;
}

static void test_import_debian_bzimage(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *deb = kernel_deb();
        if (!deb) {
                printf("SKIP: cannot get Debian's linux-image package (no apt lists or mirror)\n");
                skip();
        }
        _cleanup_free_ char *x = xasprintf("%s/deb", f->dir);
        char *argv[] = { (char *) "dpkg-deb", (char *) "-x", deb, x, NULL };
        assert_int_equal(run_in("/", argv), 0);
        glob_t g = {};
        _cleanup_free_ char *pat = xasprintf("%s/boot/vmlinuz-*", x);
        assert_int_equal(glob(pat, 0, NULL, &g), 0);
        _cleanup_free_ char *vmlinuz = strdup(g.gl_pathv[0]);
        globfree(&g);
        const char *release = strstr(vmlinuz, "/vmlinuz-") + strlen("/vmlinuz-");

        KernelImportOptions o = { .name = "debian", .from = x };
        _cleanup_(kernel_record_done) KernelRecord k = {};
        assert_int_equal(kernel_store_import(f->store, f->state, &o, &k), 0);
        /* The version is what `file` reads from the bzImage header. */
        _cleanup_free_ char *fo = file_output(vmlinuz);
        _cleanup_free_ char *expect = xasprintf("version %s ", k.version);
        assert_non_null(strstr(fo, expect));
        assert_string_equal(k.version, release);
        assert_true(endswith(k.kernel_path, "/bzImage"));
        assert_true(path_is_elf(k.elf_path));
        assert_false(path_is_elf(k.kernel_path));
        char sum[65];
        sha256sum(vmlinuz, sum);
        assert_string_equal(k.sha256, sum);
        json_t *m = load_manifest(&k);
        json_t *files = json_object_get(m, "files");
        assert_string_equal(json_string_value(json_object_get(json_object_get(files, "bzImage"), "sha256")), sum);
        sha256sum(k.elf_path, sum);
        assert_string_equal(json_string_value(json_object_get(json_object_get(files, "vmlinux"), "sha256")), sum);
        assert_string_equal(json_string_value(json_object_get(m, "modules_version")), release);
        json_decref(m);
        _cleanup_free_ char *ext4 = xasprintf("%s/%s/kernel/fs/ext4/ext4.ko", k.modules_path, release);
        assert_int_equal(access(ext4, F_OK), 0);
        /* Firecracker gets the decompressed ELF; so does QEMU, since Debian's
         * kernel has a PVH entry (CONFIG_PVH). */
        json_t *bs = fc_json_boot_source(kernel_record_boot_path(&k, VMM_FIRECRACKER), NULL, "console=ttyS0");
        assert_true(path_is_elf(json_string_value(json_object_get(bs, "kernel_image_path"))));
        json_decref(bs);
        assert_string_equal(kernel_record_boot_path(&k, VMM_QEMU), k.elf_path);

        /* A truncated bzImage fails cleanly and leaves nothing. */
        _cleanup_free_ char *cut = xasprintf("%s/vmlinuz-cut", f->dir);
        char *cp[] = { (char *) "cp", vmlinuz, cut, NULL };
        assert_int_equal(run_in("/", cp), 0);
        assert_int_equal(truncate(cut, 4 << 20), 0);
        o = (KernelImportOptions){ .name = "cut", .from = cut };
        assert_int_equal(kernel_store_import(f->store, f->state, &o, NULL), -EBADMSG);
        _cleanup_free_ char *kdir = xasprintf("%s/kernels", f->state);
        assert_int_equal(count_entries(kdir), 1);
}

/* gzip of [tiny ELF][zeros] with libarchive's own writer, zeros fed in small
 * chunks so this process never holds them. */
static size_t gzip_elf_and_zeros(uint8_t *out, size_t cap, size_t zeros) {
        static const uint8_t chunk[65536];
        uint8_t elf[512];
        size_t n = make_tiny_elf(elf, sizeof(elf), "Linux version 9.9.9-test (t@banger) #1 SMP\n"), used = 0;
        struct archive *a = archive_write_new();
        assert_non_null(a);
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
        assert_int_equal(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
        assert_int_equal(archive_write_open_memory(a, out, cap, &used), ARCHIVE_OK);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_pathname(e, "payload");
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        archive_entry_free(e);
        assert_int_equal(archive_write_data(a, elf, n), (la_ssize_t) n);
        for (size_t done = 0; done < zeros; done += sizeof(chunk))
                assert_int_equal(archive_write_data(a, chunk, sizeof(chunk)), (la_ssize_t) sizeof(chunk));
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        return used;
}

/* A bzImage (boot protocol 2.15, 4 setup sectors) around a gzip payload. */
static size_t make_bzimage(uint8_t *buf, size_t cap, const uint8_t *payload, size_t plen) {
        size_t setup = 5 * 512;
        assert_true(setup + plen <= cap);
        memset(buf, 0, setup);
        buf[0x1f1] = 4;
        buf[0x1fe] = 0x55;
        buf[0x1ff] = 0xaa;
        memcpy(buf + 0x202, "HdrS", 4);
        buf[0x206] = 0x0f;
        buf[0x207] = 0x02;
        uint32_t len = htole32((uint32_t) plen);
        memcpy(buf + 0x24c, &len, sizeof(len));
        memcpy(buf + setup, payload, plen);
        return setup + plen;
}

/* The peak memory (KiB) of a child that extracts the payload (or, without
 * info, does nothing), or -1 when the extraction did not fail as it must. */
static long child_peak_kib(const uint8_t *bz, size_t len, const KernelImageInfo *info) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                void *elf = NULL;
                size_t elf_len = 0;
                if (!info)
                        _exit(0);
                error_clear();
                int r = kernel_image_extract_elf(bz, len, info, &elf, &elf_len);
                const char *msg = error_last_message();
                _exit(r == -EFBIG && msg && strstr(msg, "decompresses to more than the 1048576 bytes") ? 0 : 1);
        }
        int status;
        struct rusage ru;
        assert_int_equal(wait4(pid, &status, 0, &ru), pid);
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status) == 0 ? ru.ru_maxrss : -1;
}

/* A payload whose trailer announces 1 MiB but that inflates to 96 MiB: the
 * decompression stops at the announced size instead of inflating it all
 * (the peak memory of a child that tries shows which). */
static void test_payload_held_to_its_announced_size(void **state) {
        size_t cap = 4 << 20, zeros = 96 << 20;
        _cleanup_free_ uint8_t *gz = malloc(cap), *bz = malloc(cap);
        assert_true(gz && bz);
        size_t glen = gzip_elf_and_zeros(gz, cap, zeros);
        uint32_t announced = htole32(1 << 20); /* gzip's ISIZE, forged */
        memcpy(gz + glen - 4, &announced, 4);
        size_t len = make_bzimage(bz, cap, gz, glen);
        KernelImageInfo info;
        assert_int_equal(kernel_image_identify(bz, len, &info), 0);
        assert_int_equal(info.payload_uncompressed_size, 1 << 20);
        long idle = child_peak_kib(NULL, 0, NULL), peak = child_peak_kib(bz, len, &info);
        if (peak < 0)
                fail_msg("the extraction did not stop at the announced size");
        if (peak - idle > 32 * 1024)
                fail_msg("decompression peaked at %ld KiB more than an idle child", peak - idle);
}

/* Run fn in a child with its own mount namespace and a 96 MiB tmpfs at
 * dir: what is free beyond the 64 MiB reserve is about 32 MiB. */
static void in_small_tmpfs(const char *dir, int (*fn)(const char *dir)) {
        if (geteuid() != 0) {
                printf("SKIP: mounting a small tmpfs needs root\n");
                skip();
        }
        assert_int_equal(mkdir(dir, 0700), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount("tmpfs", dir, "tmpfs", 0, "size=96m,mode=0700") < 0)
                        _exit(2);
                _exit(fn(dir));
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != 0)
                fail_msg("the check in the small tmpfs failed (%d)", WEXITSTATUS(status));
}

static char kernel_source[600];

/* A 40 MiB kernel (a tiny ELF padded with zeros) does not fit. */
static int import_big_kernel(const char *dir) {
        _cleanup_free_ char *db = xasprintf("%s/banger.db", dir);
        Store *s = NULL;
        if (store_open(db, 0, &s) < 0)
                return 3;
        KernelImportOptions o = { .name = "big", .from = kernel_source };
        error_clear();
        int r = kernel_store_import(s, dir, &o, NULL);
        const char *msg = error_last_message();
        store_close(s);
        _cleanup_free_ char *kdir = xasprintf("%s/kernels", dir);
        if (r != -ENOSPC || !msg || !strstr(msg, "not enough free space for the kernel") || count_entries(kdir) != 0)
                return 4;
        return 0;
}

/* A 512 MiB package is refused before anything is fetched (the mirror
 * does not even exist). */
static int download_big_package(const char *dir) {
        DebianPackage p = { .package = (char *) "linux-image-big",
                            .filename = (char *) "pool/main/l/big.deb",
                            .sha256 = (char *) "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                            .size = 512ULL << 20 };
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        error_clear();
        int r = debian_package_download("http://127.0.0.1:9", &p, dfd, "big.deb", NULL, "kernel");
        const char *msg = error_last_message();
        if (r != -ENOSPC || !msg || !strstr(msg, "not enough free space for package linux-image-big"))
                return 4;
        return faccessat(dfd, "big.deb", F_OK, 0) == 0 ? 5 : 0;
}

static void test_free_space_checked_before_writing(void **state) {
        Fixture *f = *state;
        snprintf(kernel_source, sizeof(kernel_source), "%s/vmlinux-big", f->dir);
        uint8_t buf[512];
        write_file(kernel_source, buf, make_tiny_elf(buf, sizeof(buf), "Linux version 9.9.9-big (t@b) #1\n"), 0644);
        assert_int_equal(truncate(kernel_source, 40 << 20), 0);
        _cleanup_free_ char *k = xasprintf("%s/small-k", f->dir), *d = xasprintf("%s/small-d", f->dir);
        in_small_tmpfs(k, import_big_kernel);
        in_small_tmpfs(d, download_big_package);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_import_elf, setup, teardown),
                cmocka_unit_test_setup_teardown(test_import_dir_with_modules, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rm_refused_while_used, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failures_leave_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_import_debian_bzimage, setup, teardown),
                cmocka_unit_test(test_payload_held_to_its_announced_size),
                cmocka_unit_test(test_pvh_entry_note),
                cmocka_unit_test_setup_teardown(test_free_space_checked_before_writing, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
