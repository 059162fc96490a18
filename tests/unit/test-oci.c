/* SPDX-License-Identifier: MIT */
/* OCI image import: images built here by hand (libarchive layers, OCI
 * layout written as text), converted with skopeo, served by a real
 * docker-registry on 127.0.0.1, imported, and checked in the resulting ext4
 * with debugfs and e2fsck. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "error.h"
#include "oci-import.h"
#include "oci-ref.h"
#include "oci-test-util.h"
#include "oci-tree.h"
#include "spawn.h"
#include "string-util.h"

static char workdir[] = "/tmp/banger-oci-XXXXXX";
static char layout[600], agent[600];

#define PASSWD2 "root:x:0:0:layer2:/root:/bin/sh\n"
#define AGENT_TEXT "#!/bin/sh\necho fake agent for the import test\n"
#define LONG_TARGET "../usr/share/a-rather-long-directory-name/with/more/components/than/sixty/characters/target"

static char *path_in(const char *a, const char *b) {
        char *p = NULL;
        assert_true(asprintf(&p, "%s/%s", a, b) > 0);
        return p;
}

static int run(char **out, const char *a0, ...) {
        char *argv[16];
        size_t n = 0;
        va_list ap;
        va_start(ap, a0);
        for (const char *s = a0; s && n < 15; s = va_arg(ap, const char *))
                argv[n++] = (char *) s;
        va_end(ap);
        argv[n] = NULL;
        return spawn_run_capture(argv, 120 * USEC_PER_SEC, 1 << 20, true, out);
}

static char *debugfs(const char *img, const char *cmd) {
        char *argv[] = { (char *) "debugfs", (char *) "-R", (char *) cmd, (char *) img, NULL };
        char *out = NULL;
        assert_int_equal(spawn_run_capture(argv, 60 * USEC_PER_SEC, 1 << 20, false, &out), 0);
        return out;
}

static void assert_stat_has(const char *img, const char *path, const char *needle) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "stat \"%s\"", path);
        _cleanup_free_ char *out = debugfs(img, cmd);
        if (!strstr(out, needle))
                fail_msg("stat %s: expected \"%s\" in:\n%s", path, needle, out);
}

static bool image_has(const char *img, const char *path) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "stat \"%s\"", path);
        _cleanup_free_ char *out = debugfs(img, cmd);
        return strstr(out, "Inode:") != NULL;
}

static unsigned inode_of(const char *img, const char *path) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "stat \"%s\"", path);
        _cleanup_free_ char *out = debugfs(img, cmd);
        const char *p = strstr(out, "Inode: ");
        assert_non_null(p);
        return (unsigned) strtoul(p + 7, NULL, 10);
}

static void assert_cat(const char *img, const char *path, const char *want) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "cat \"%s\"", path);
        _cleanup_free_ char *out = debugfs(img, cmd);
        assert_string_equal(out, want);
}

static void assert_fsck_clean(const char *img) {
        _cleanup_free_ char *out = NULL;
        int r = run(&out, "e2fsck", "-fn", img, NULL);
        if (r != 0)
                fail_msg("e2fsck -fn %s exited %d:\n%s", img, r, out);
}

static void build_base_layers(TestLayer *l1, TestLayer *l2) {
        layer_begin(l1, workdir, "l1.tar", false);
        layer_add(l1, "./", 'd', 0755, 0, NULL, 0, 0);
        layer_add(l1, "etc/", 'd', 0755, 0, NULL, 0, 0);
        layer_add(l1, "etc/passwd", 'f', 0644, 0, "root:x:0:0::/root:/bin/sh\n", 0, 0);
        layer_add(l1, "etc/removed", 'f', 0644, 0, "gone in layer 2\n", 0, 0);
        layer_add(l1, "etc/localtime", 'l', 0777, 0, "/usr/share/zoneinfo/UTC", 0, 0);
        layer_add(l1, "etc/systemd/system/", 'd', 0755, 0, NULL, 0, 0);
        layer_add(l1, "bin/", 'd', 0755, 0, NULL, 0, 0);
        layer_add(l1, "bin/busybox", 'f', 0755, 0, "#!fake busybox\n", 0, 0);
        layer_add(l1, "bin/a", 'f', 0644, 0, "hard linked\n", 0, 0);
        layer_add(l1, "bin/b", 'h', 0, 0, "bin/a", 0, 0);
        layer_add(l1, "bin/su", 'f', 04755, 0, "setuid\n", 0, 0);
        layer_add(l1, "bin/sh", 'l', 0777, 0, "busybox", 0, 0);
        layer_add(l1, "bin/long", 'l', 0777, 0, LONG_TARGET, 0, 0);
        layer_add(l1, "opq/", 'd', 0755, 0, NULL, 0, 0);
        layer_add(l1, "opq/old", 'f', 0644, 0, "old\n", 0, 0);
        layer_add(l1, "opq/sub/deep", 'f', 0644, 0, "deep\n", 0, 0);
        layer_add(l1, "dev/", 'd', 0755, 0, NULL, 0, 0);
        layer_add(l1, "dev/null", 'c', 0666, 0, NULL, 1, 3);
        layer_add(l1, "dev/sda", 'b', 0660, 0, NULL, 8, 0);
        layer_add(l1, "dev/fifo", 'p', 0600, 0, NULL, 0, 0);
        layer_add(l1, "home/user/", 'd', 0750, 1000, NULL, 0, 0);
        layer_add(l1, "home/user/f", 'f', 0600, 1000, "mine\n", 0, 0);
        layer_add(l1, "tmp/", 'd', 01777, 0, NULL, 0, 0);
        layer_add(l1, "usr/sbin/sshd", 'f', 0755, 0, "#!fake sshd\n", 0, 0);
        layer_add(l1, "usr/lib/systemd/systemd", 'f', 0755, 0, "#!fake systemd\n", 0, 0);
        layer_add(l1, "usr/lib/systemd/system/ssh.service", 'f', 0644, 0, "[Service]\n", 0, 0);
        layer_add(l1, "lib", 'l', 0777, 0, "usr/lib", 0, 0);
        layer_end(l1, layout);

        layer_begin(l2, workdir, "l2.tar", true);
        layer_add(l2, "etc/.wh.removed", 'f', 0644, 0, NULL, 0, 0);
        layer_add(l2, "opq/", 'd', 0711, 0, NULL, 0, 0);
        layer_add(l2, "opq/.wh..wh..opq", 'f', 0644, 0, NULL, 0, 0);
        layer_add(l2, "opq/new", 'f', 0644, 0, "new\n", 0, 0);
        layer_add(l2, "bin/c", 'h', 0, 0, "bin/a", 0, 0);
        layer_add(l2, "etc/passwd", 'f', 0644, 0, PASSWD2, 0, 0);
        layer_add(l2, "bin/sgid", 'f', 02755, 0, "setgid\n", 0, 0);
        layer_end(l2, layout);
}

/* index.json -> image index -> {arm64, amd64} manifests over the same layers. */
static int setup_fixture(void **state) {
        assert_non_null(mkdtemp(workdir));
        snprintf(layout, sizeof(layout), "%s/layout", workdir);
        snprintf(agent, sizeof(agent), "%s/banger-agent", workdir);
        assert_int_equal(write_text(agent, AGENT_TEXT, 0755), 0);
        layout_init(layout);
        TestLayer l[2];
        build_base_layers(&l[0], &l[1]);
        char amd[OCI_DIGEST_STRLEN], arm[OCI_DIGEST_STRLEN], idx[OCI_DIGEST_STRLEN], text[4096];
        size_t amd_size, arm_size, idx_size;
        image_put(layout, "amd64", l, 2, amd, &amd_size);
        image_put(layout, "arm64", l, 2, arm, &arm_size);
        snprintf(text, sizeof(text),
                 "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
                 "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu,"
                 "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
                 "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu,"
                 "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
                 arm, arm_size, amd, amd_size);
        blob_put(layout, text, idx, &idx_size);
        snprintf(text, sizeof(text),
                 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                 "\"digest\":\"%s\",\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"latest\"}}]}",
                 idx, idx_size);
        index_put(layout, text);
        return 0;
}

static int teardown_fixture(void **state) {
        _cleanup_free_ char *out = NULL;
        run(&out, "rm", "-rf", "--one-file-system", workdir, NULL);
        return 0;
}

typedef struct Dirs {
        char *cache, *out;
        int cache_fd, out_fd;
} Dirs;

static void dirs_new(Dirs *d, const char *tag) {
        char name[64];
        snprintf(name, sizeof(name), "cache-%s", tag);
        d->cache = path_in(workdir, name);
        snprintf(name, sizeof(name), "out-%s", tag);
        d->out = path_in(workdir, name);
        assert_int_equal(mkdir(d->cache, 0700), 0);
        assert_int_equal(mkdir(d->out, 0700), 0);
        d->cache_fd = open(d->cache, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        d->out_fd = open(d->out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(d->cache_fd >= 0 && d->out_fd >= 0);
}

static void dirs_done(Dirs *d) {
        safe_close(d->cache_fd);
        safe_close(d->out_fd);
        free(d->cache);
        free(d->out);
}

static size_t dir_entries(const char *path) {
        DIR *dir = opendir(path);
        if (!dir)
                return 0;
        size_t n = 0;
        for (struct dirent *de; (de = readdir(dir));)
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(dir);
        return n;
}

static int import(Dirs *d, const char *source, OciSourceKind kind, const char *agent_path, OciImportResult *res) {
        OciImportOptions o = {
                .source = source,
                .kind = kind,
                .cache_dirfd = d->cache_fd,
                .out_dirfd = d->out_fd,
                .out_name = "rootfs.ext4",
                .agent_path = agent_path,
        };
        error_clear();
        return oci_import(&o, res);
}

/* What every import of the fixture image must show. */
static void check_base_image(const char *img) {
        assert_fsck_clean(img);
        assert_cat(img, "/etc/passwd", PASSWD2);
        assert_false(image_has(img, "/etc/removed"));
        assert_false(image_has(img, "/opq/old"));
        assert_false(image_has(img, "/opq/sub"));
        assert_cat(img, "/opq/new", "new\n");
        assert_stat_has(img, "/opq", "Mode:  0711");
        unsigned a = inode_of(img, "/bin/a");
        assert_int_equal(inode_of(img, "/bin/b"), a);
        assert_int_equal(inode_of(img, "/bin/c"), a);
        assert_stat_has(img, "/bin/a", "Links: 3");
        assert_cat(img, "/bin/c", "hard linked\n");
        assert_stat_has(img, "/bin/su", "Mode:  04755");
        assert_stat_has(img, "/bin/sgid", "Mode:  02755");
        assert_stat_has(img, "/tmp", "Mode:  01777");
        assert_stat_has(img, "/dev/null", "Type: character special");
        assert_stat_has(img, "/dev/null", "Device major/minor number: 01:03");
        assert_stat_has(img, "/dev/sda", "Type: block special");
        assert_stat_has(img, "/dev/sda", "Device major/minor number: 08:00");
        assert_stat_has(img, "/dev/fifo", "Type: FIFO");
        assert_stat_has(img, "/home/user/f", "User:  1000");
        assert_stat_has(img, "/home/user/f", "Mode:  0600");
        assert_stat_has(img, "/home/user", "Mode:  0750");
        assert_stat_has(img, "/etc/localtime", "Fast link dest: \"/usr/share/zoneinfo/UTC\"");
        assert_stat_has(img, "/bin/sh", "Fast link dest: \"busybox\"");
        assert_stat_has(img, "/bin/long", "Type: symlink");
        char size[64];
        snprintf(size, sizeof(size), "Size: %zu\n", strlen(LONG_TARGET));
        assert_stat_has(img, "/bin/long", size);
}

static void test_path_normalize(void **state) {
        char *p = NULL;
        assert_int_equal(oci_path_normalize("./etc//passwd/", &p), 0);
        assert_string_equal(p, "etc/passwd");
        free(p);
        assert_int_equal(oci_path_normalize("/./", &p), 0);
        assert_string_equal(p, "");
        free(p);
        assert_int_equal(oci_path_normalize("a/../b", &p), -EINVAL);
        assert_int_equal(oci_path_normalize("..", &p), -EINVAL);
        assert_int_equal(oci_path_normalize("a/..b/c", &p), 0);
        assert_string_equal(p, "a/..b/c");
        free(p);
}

static void test_ref_parse(void **state) {
        OciRef r;
        assert_int_equal(oci_ref_parse("debian:12", &r), 0);
        assert_string_equal(r.host, "registry-1.docker.io");
        assert_string_equal(r.repository, "library/debian");
        assert_string_equal(r.tag, "12");
        assert_false(r.plain_http);
        oci_ref_done(&r);
        assert_int_equal(oci_ref_parse("127.0.0.1:5000/test/busybox", &r), 0);
        assert_string_equal(r.host, "127.0.0.1:5000");
        assert_string_equal(r.repository, "test/busybox");
        assert_string_equal(r.tag, "latest");
        assert_true(r.plain_http);
        oci_ref_done(&r);
        assert_int_equal(oci_ref_parse("example.com/x@sha256:"
                                       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                       &r),
                         0);
        assert_null(r.tag);
        assert_false(r.plain_http);
        oci_ref_done(&r);
        assert_int_equal(oci_ref_parse("localhost.evil.com/x", &r), 0);
        assert_false(r.plain_http);
        oci_ref_done(&r);
        assert_true(oci_ref_parse("Upper/case", &r) < 0);
        assert_true(oci_ref_parse("a/b:bad tag", &r) < 0);
        assert_true(oci_ref_parse("x@sha256:short", &r) < 0);
        assert_true(oci_ref_parse("host/with space", &r) < 0);
        assert_true(oci_ref_parse("http://127.0.0.1:5000/x:1", &r) < 0);
        assert_true(oci_ref_parse("https://example.com/x", &r) < 0);
        assert_true(oci_registry_is_loopback("127.0.0.1:5000") && oci_registry_is_loopback("[::1]") &&
                    oci_registry_is_loopback("localhost"));
        assert_false(oci_registry_is_loopback("127.0.0.1.evil.com") || oci_registry_is_loopback("localhostx:1") ||
                     oci_registry_is_loopback("198.18.0.1:5000"));
        assert_true(oci_ref_parse("evil.com#@x/y", &r) < 0);
}

static void test_challenge(void **state) {
        OciBearerChallenge c;
        assert_int_equal(oci_bearer_challenge_parse("Bearer realm=\"https://auth.docker.io/token\","
                                                    "service=\"registry.docker.io\",scope=\"repository:library/"
                                                    "debian:pull\"",
                                                    &c),
                         0);
        assert_string_equal(c.realm, "https://auth.docker.io/token");
        assert_string_equal(c.service, "registry.docker.io");
        assert_string_equal(c.scope, "repository:library/debian:pull");
        oci_bearer_challenge_done(&c);
        assert_int_equal(oci_bearer_challenge_parse("Basic realm=\"x\"", &c), -EOPNOTSUPP);
        assert_int_equal(oci_bearer_challenge_parse("Bearer service=\"x\"", &c), -EBADMSG);
        assert_int_equal(oci_bearer_challenge_parse("Bearer realm=\"unterminated", &c), -EBADMSG);
}

static void test_import_layout(void **state) {
        Dirs d;
        dirs_new(&d, "layout");
        OciImportResult res;
        int r = import(&d, layout, OCI_SOURCE_AUTO, agent, &res);
        if (r < 0)
                fail_msg("import failed: %s", error_last_message());
        _cleanup_free_ char *img = path_in(d.out, "rootfs.ext4");
        check_base_image(img);
        struct stat st;
        assert_int_equal(stat(img, &st), 0);
        assert_true((uint64_t) st.st_size == OCI_IMPORT_MIN_SIZE);
        assert_true(res.image_size == OCI_IMPORT_MIN_SIZE);
        assert_true(res.content_size > 0);
        assert_true(res.has_sshd && res.has_systemd && res.sshd_enabled && res.agent_installed);
        assert_string_equal(res.agent_boot, "systemd");
        assert_non_null(strstr(res.config_json, "\"Cmd\":[\"/bin/sh\"]"));
        assert_non_null(strstr(res.config_json, "\"WorkingDir\":\"/root\""));
        assert_null(strstr(res.config_json, "Labels"));
        assert_true(oci_digest_is_valid(res.manifest_digest));
        assert_cat(img, "/usr/local/bin/banger-agent", AGENT_TEXT);
        assert_stat_has(img, "/usr/local/bin/banger-agent", "Mode:  0755");
        _cleanup_free_ char *unit = debugfs(img, "cat /etc/systemd/system/banger-agent.service");
        assert_non_null(strstr(unit, "ExecStart=/usr/local/bin/banger-agent"));
        assert_stat_has(img, "/etc/systemd/system/multi-user.target.wants/banger-agent.service",
                        "Fast link dest: \"/etc/systemd/system/banger-agent.service\"");
        assert_stat_has(img, "/etc/systemd/system/multi-user.target.wants/ssh.service",
                        "Fast link dest: \"/usr/lib/systemd/system/ssh.service\"");
        /* Only the image: no spool, no temp file, no staging left. */
        assert_int_equal(dir_entries(d.out), 1);
        assert_int_equal(dir_entries(d.cache), 0);
        /* The name is never overwritten. */
        OciImportResult again;
        assert_int_equal(import(&d, layout, OCI_SOURCE_AUTO, NULL, &again), -EEXIST);
        oci_import_result_done(&res);
        dirs_done(&d);
}

/* A one-image layout in its own directory from 1 or 2 crafted layers. */
typedef void (*LayerFill)(TestLayer *l, int which);

static char *crafted_layout(const char *name, LayerFill fill, int n_layers) {
        char *dir = path_in(workdir, name);
        layout_init(dir);
        TestLayer l[2];
        for (int i = 0; i < n_layers; i++) {
                layer_begin(&l[i], workdir, "crafted.tar", false);
                fill(&l[i], i);
                layer_end(&l[i], dir);
        }
        char m[OCI_DIGEST_STRLEN], text[1024];
        size_t ms;
        image_put(dir, "amd64", l, (size_t) n_layers, m, &ms);
        snprintf(text, sizeof(text),
                 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                 "\"digest\":\"%s\",\"size\":%zu}]}",
                 m, ms);
        index_put(dir, text);
        return dir;
}

static void fill_dotdot(TestLayer *l, int which) {
        layer_add(l, "etc/", 'd', 0755, 0, NULL, 0, 0);
        layer_add(l, "etc/../../evil", 'f', 0644, 0, "escape\n", 0, 0);
}

static void fill_symlink_then_file(TestLayer *l, int which) {
        layer_add(l, "etc2", 'l', 0777, 0, "/etc", 0, 0);
        layer_add(l, "etc2/passwd", 'f', 0644, 0, "owned\n", 0, 0);
}

static void fill_link_across_layers(TestLayer *l, int which) {
        if (which == 0)
                layer_add(l, "up", 'l', 0777, 0, "..", 0, 0);
        else
                layer_add(l, "up/x", 'f', 0644, 0, "owned\n", 0, 0);
}

static void fill_abs_hardlink(TestLayer *l, int which) {
        layer_add(l, "h", 'h', 0, 0, "/etc/shadow", 0, 0);
}

static void fill_dotdot_hardlink(TestLayer *l, int which) {
        layer_add(l, "a", 'f', 0644, 0, "x\n", 0, 0);
        layer_add(l, "h", 'h', 0, 0, "../../etc/shadow", 0, 0);
}

static void fill_missing_hardlink(TestLayer *l, int which) {
        layer_add(l, "h", 'h', 0, 0, "not/there", 0, 0);
}

static void expect_refused(const char *name, LayerFill fill, int n_layers, int err, const char *needle) {
        _cleanup_free_ char *dir = crafted_layout(name, fill, n_layers);
        Dirs d;
        dirs_new(&d, name);
        OciImportResult res;
        int r = import(&d, dir, OCI_SOURCE_OCI_LAYOUT, agent, &res);
        const char *msg = error_last_message();
        if (r != err || !msg || !strstr(msg, needle))
                fail_msg("%s: expected %d with \"%s\", got %d: %s", name, err, needle, r, msg ? msg : "(none)");
        assert_int_equal(dir_entries(d.out), 0);
        assert_int_equal(dir_entries(d.cache), 0);
        dirs_done(&d);
}

static void test_refusals(void **state) {
        expect_refused("dotdot", fill_dotdot, 1, -EINVAL, "etc/../../evil");
        expect_refused("symfile", fill_symlink_then_file, 1, -ELOOP, "etc2/passwd");
        expect_refused("crosslayer", fill_link_across_layers, 2, -ELOOP, "up/x");
        expect_refused("abshard", fill_abs_hardlink, 1, -EXDEV, "/etc/shadow");
        expect_refused("dotdothard", fill_dotdot_hardlink, 1, -EINVAL, "../../etc/shadow");
        expect_refused("nohard", fill_missing_hardlink, 1, -ENOENT, "not/there");
}

static void test_digest_mismatch(void **state) {
        _cleanup_free_ char *copy = path_in(workdir, "tampered");
        _cleanup_free_ char *out = NULL;
        assert_int_equal(run(&out, "cp", "-a", layout, copy, NULL), 0);
        /* Change one letter of a file's content inside the uncompressed
         * layer: the tar still parses, only the digest differs. */
        _cleanup_free_ char *blobs = path_in(copy, "blobs/sha256");
        DIR *dir = opendir(blobs);
        assert_non_null(dir);
        bool done = false;
        for (struct dirent *de; !done && (de = readdir(dir));) {
                char p[1200];
                _cleanup_free_ char *buf = NULL;
                size_t len;
                snprintf(p, sizeof(p), "%s/%s", blobs, de->d_name);
                if (de->d_name[0] == '.' || read_file_at(AT_FDCWD, p, 1 << 20, &buf, &len) < 0)
                        continue;
                char *hit = memmem(buf, len, "hard linked", 11);
                if (!hit)
                        continue;
                int fd = open(p, O_WRONLY | O_CLOEXEC);
                assert_true(fd >= 0);
                assert_int_equal(pwrite(fd, "H", 1, hit - buf), 1);
                close(fd);
                done = true;
        }
        closedir(dir);
        assert_true(done);
        Dirs d;
        dirs_new(&d, "mismatch");
        OciImportResult res;
        assert_int_equal(import(&d, copy, OCI_SOURCE_AUTO, NULL, &res), -EBADMSG);
        assert_non_null(strstr(error_last_message(), "digest mismatch"));
        assert_int_equal(dir_entries(d.out), 0);
        dirs_done(&d);
}

/* Bytes this process has handed to write(2) and friends so far. */
static uint64_t self_wchar(void) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        assert_int_equal(read_file_at(AT_FDCWD, "/proc/self/io", 4096, &buf, &len), 0);
        const char *p = strstr(buf, "wchar: ");
        assert_non_null(p);
        return strtoull(p + 7, NULL, 10);
}

static int import_max(Dirs *d, const char *source, uint64_t max, OciImportResult *res) {
        OciImportOptions o = { .source = source,
                               .cache_dirfd = d->cache_fd,
                               .out_dirfd = d->out_fd,
                               .out_name = "rootfs.ext4",
                               .max_bytes = max };
        error_clear();
        return oci_import(&o, res);
}

/* The layout at dir as a tar.gz, then one extra member of zeros. */
static void archive_layout(const char *dir, const char *tar, const char *extra, size_t extra_size) {
        struct archive *a = tar_begin(tar);
        tar_add_file(a, dir, "oci-layout");
        tar_add_file(a, dir, "index.json");
        _cleanup_free_ char *blobs = path_in(dir, "blobs/sha256");
        DIR *d = opendir(blobs);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));) {
                char rel[300];
                if (de->d_name[0] == '.')
                        continue;
                snprintf(rel, sizeof(rel), "blobs/sha256/%s", de->d_name);
                tar_add_file(a, dir, rel);
        }
        closedir(d);
        if (extra)
                tar_add(a, extra, NULL, extra_size);
        tar_end(a);
}

static void fill_small(TestLayer *l, int which) {
        layer_add(l, "etc/", 'd', 0755, 0, NULL, 0, 0);
        layer_add(l, "etc/hostname", 'f', 0644, 0, "small\n", 0, 0);
}

static void assert_no_staging(const Dirs *d) {
        _cleanup_free_ char *tmp = path_in(d->cache, "tmp");
        assert_int_equal(dir_entries(tmp), 0);
}

/* A member over the limit is refused at its header; members no manifest
 * names are never written, whatever their size. */
static void test_archive_limits(void **state) {
        _cleanup_free_ char *dir = crafted_layout("small", fill_small, 1);
        _cleanup_free_ char *huge = path_in(workdir, "huge.tar.gz"), *junk = path_in(workdir, "junk.tar.gz");
        archive_layout(dir, huge, "zeros.bin", 8 << 20);
        archive_layout(dir, junk, "junk/zeros.bin", 12 << 20);
        Dirs d;
        dirs_new(&d, "limits");
        OciImportResult res;
        uint64_t w = self_wchar();
        assert_int_equal(import_max(&d, huge, 4 << 20, &res), -EFBIG);
        const char *msg = error_last_message();
        assert_non_null(strstr(msg, "zeros.bin"));
        assert_non_null(strstr(msg, "more than 4 MiB; image_import_max"));
        assert_true(self_wchar() - w < (1 << 20));
        assert_int_equal(dir_entries(d.out), 0);
        assert_no_staging(&d);
        w = self_wchar();
        if (import_max(&d, junk, 16 << 20, &res) < 0)
                fail_msg("import failed: %s", error_last_message());
        uint64_t wrote = self_wchar() - w;
        if (wrote >= (8 << 20))
                fail_msg("the import wrote %llu bytes", (unsigned long long) wrote);
        _cleanup_free_ char *img = path_in(d.out, "rootfs.ext4");
        assert_cat(img, "/etc/hostname", "small\n");
        assert_no_staging(&d);
        oci_import_result_done(&res);
        dirs_done(&d);
}

/* docker save writes a repeated layer as a symlink to its first copy: it
 * resolves inside the archive, never outside it. */
static void docker_symlink_archive(const char *tar, const char *link_target) {
        _cleanup_free_ char *scratch = path_in(workdir, "dsym-layout"), *blob = NULL, *cfg = NULL, *man = NULL;
        char *layer = NULL;
        size_t len;
        TestLayer l;
        if (access(scratch, F_OK) < 0)
                layout_init(scratch);
        layer_begin(&l, workdir, "dsym.tar", false);
        fill_small(&l, 0);
        layer_end(&l, scratch);
        assert_true(asprintf(&blob, "%s/blobs/sha256/%s", scratch, l.digest + 7) > 0);
        assert_int_equal(read_file_at(AT_FDCWD, blob, 1 << 20, &layer, &len), 0);
        assert_true(asprintf(&cfg,
                             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
                             "\"diff_ids\":[\"%s\",\"%s\"]}}",
                             l.diff_id, l.diff_id) > 0);
        assert_true(asprintf(&man, "[{\"Config\":\"c.json\",\"Layers\":[\"a/layer.tar\",\"b/layer.tar\"]}]") > 0);
        struct archive *a = tar_begin(tar);
        tar_add(a, "a/layer.tar", layer, len);
        tar_add_symlink(a, "b/layer.tar", link_target);
        tar_add(a, "c.json", cfg, strlen(cfg));
        tar_add(a, "manifest.json", man, strlen(man));
        tar_end(a);
        free(layer);
}

static void test_archive_symlinks(void **state) {
        _cleanup_free_ char *good = path_in(workdir, "dsym.tar.gz"), *bad = path_in(workdir, "dsym-bad.tar.gz");
        docker_symlink_archive(good, "../a/layer.tar");
        docker_symlink_archive(bad, "../../a/layer.tar");
        Dirs d;
        dirs_new(&d, "dsym");
        OciImportResult res;
        if (import_max(&d, good, 0, &res) < 0)
                fail_msg("import failed: %s", error_last_message());
        _cleanup_free_ char *img = path_in(d.out, "rootfs.ext4");
        assert_cat(img, "/etc/hostname", "small\n");
        oci_import_result_done(&res);
        assert_int_equal(unlink(img), 0);
        assert_int_equal(import_max(&d, bad, 0, &res), -EXDEV);
        assert_non_null(strstr(error_last_message(), "b/layer.tar links outside the archive"));
        assert_int_equal(dir_entries(d.out), 0);
        assert_no_staging(&d);
        dirs_done(&d);
}

static uint64_t fd_allocated(int fd) {
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        return (uint64_t) st.st_blocks * 512;
}

/* Zeros become holes in the spool; its two limits stop a write before it
 * passes them. */
static void test_spool_limits(void **state) {
        int fd = open(workdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        _cleanup_oci_tree_ OciTree *t = NULL;
        assert_int_equal(oci_tree_new(fd, &t), 0);
        size_t len = 1 << 20;
        _cleanup_free_ char *buf = calloc(1, len), *back = malloc(len);
        assert_true(buf && back);
        memset(buf + 5000, 'x', 10);
        uint64_t off;
        assert_int_equal(oci_tree_spool_reserve(t, len + 123, &off), 0);
        assert_int_equal(oci_tree_spool_write(t, off + 123, buf, len), 0); /* not block aligned */
        assert_int_equal(fsync(fd), 0);
        assert_true(fd_allocated(fd) <= 8192);
        assert_int_equal(pread(fd, back, len, (off_t) (off + 123)), (ssize_t) len);
        assert_memory_equal(back, buf, len);

        memset(buf, 'y', len);
        oci_tree_set_spool_limits(t, 1ULL << 30, 256 << 10);
        assert_int_equal(oci_tree_spool_reserve(t, len, &off), 0);
        error_clear();
        assert_int_equal(oci_tree_spool_write(t, off, buf, len), -ENOSPC);
        assert_non_null(strstr(error_last_message(), "not enough free space to assemble the image"));
        assert_true(fd_allocated(fd) <= (256 << 10) + 8192);

        oci_tree_set_spool_limits(t, 4 << 20, UINT64_MAX);
        error_clear();
        assert_int_equal(oci_tree_spool_reserve(t, 3 << 20, &off), -EFBIG);
        assert_non_null(strstr(error_last_message(), "more than 4 MiB; image_import_max"));
}

static bool have(const char *prog) {
        _cleanup_free_ char *p = find_executable(prog);
        return p != NULL;
}

static void skopeo_copy(const char *dst, bool all) {
        _cleanup_free_ char *src = NULL, *out = NULL;
        assert_true(asprintf(&src, "oci:%s:latest", layout) > 0);
        int r = all ? run(&out, "skopeo", "--insecure-policy", "copy", "--all", "--dest-tls-verify=false", src, dst,
                          NULL)
                    : run(&out, "skopeo", "--insecure-policy", "copy", "--override-arch", "amd64", src, dst, NULL);
        if (r != 0)
                fail_msg("skopeo copy to %s exited %d:\n%s", dst, r, out);
}

static void test_docker_archive(void **state) {
        if (!have("skopeo"))
                skip();
        _cleanup_free_ char *tar = path_in(workdir, "docker.tar"), *dst = NULL;
        assert_true(asprintf(&dst, "docker-archive:%s:test/img:v1", tar) > 0);
        skopeo_copy(dst, false);
        Dirs d;
        dirs_new(&d, "docker");
        OciImportResult res;
        int r = import(&d, tar, OCI_SOURCE_AUTO, NULL, &res);
        if (r < 0)
                fail_msg("import failed: %s", error_last_message());
        _cleanup_free_ char *img = path_in(d.out, "rootfs.ext4");
        check_base_image(img);
        assert_false(res.agent_installed);
        assert_int_equal(dir_entries(d.cache), 1); /* tmp/, emptied */
        _cleanup_free_ char *tmp = path_in(d.cache, "tmp");
        assert_int_equal(dir_entries(tmp), 0);
        oci_import_result_done(&res);
        dirs_done(&d);
}

static void test_oci_archive(void **state) {
        if (!have("skopeo"))
                skip();
        _cleanup_free_ char *tar = path_in(workdir, "oci.tar"), *dst = NULL;
        assert_true(asprintf(&dst, "oci-archive:%s:latest", tar) > 0);
        skopeo_copy(dst, false);
        Dirs d;
        dirs_new(&d, "ociarchive");
        OciImportResult res;
        int r = import(&d, tar, OCI_SOURCE_OCI_LAYOUT, NULL, &res);
        if (r < 0)
                fail_msg("import failed: %s", error_last_message());
        _cleanup_free_ char *img = path_in(d.out, "rootfs.ext4");
        check_base_image(img);
        oci_import_result_done(&res);
        dirs_done(&d);
}

static int free_port(void) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof(a);
        assert_int_equal(bind(s, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(getsockname(s, (struct sockaddr *) &a, &l), 0);
        close(s);
        return ntohs(a.sin_port);
}

static bool port_answers(int port) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET,
                                 .sin_port = htons((uint16_t) port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        bool ok = connect(s, (struct sockaddr *) &a, sizeof(a)) == 0;
        close(s);
        return ok;
}

/* Debian's docker-registry on 127.0.0.1, storage in the work dir. */
static void registry_start(int port, const char *storage, Process *ret) {
        _cleanup_free_ char *cfg = path_in(workdir, "registry.yml"), *text = NULL;
        assert_true(asprintf(&text,
                             "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                             "http:\n  addr: 127.0.0.1:%d\n",
                             storage, port) > 0);
        assert_int_equal(write_text(cfg, text, 0644), 0);
        _cleanup_free_ char *exe = find_executable("docker-registry");
        char *argv[] = { exe, (char *) "serve", cfg, NULL };
        SpawnOptions so;
        spawn_options_init(&so);
        assert_int_equal(spawn_process(argv, &so, ret), 0);
        for (int i = 0; i < 200 && !port_answers(port); i++)
                usleep(50 * 1000); /* the registry gives no readiness signal */
        assert_true(port_answers(port));
}

static bool keep_none(const char *digest, void *userdata) {
        return false;
}

static bool keep_all(const char *digest, void *userdata) {
        return true;
}

static void count_visit(const char *digest, uint64_t size, void *userdata) {
        (*(unsigned *) userdata)++;
}

/* Corrupt the registry's copy of a layer: the download must be refused. */
static void corrupt_registry_blob(const char *storage, const char *digest) {
        char p[900];
        snprintf(p, sizeof(p), "%s/docker/registry/v2/blobs/sha256/%.2s/%s/data", storage, digest + 7, digest + 7);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        char c;
        assert_int_equal(pread(fd, &c, 1, 100), 1);
        c ^= 1;
        assert_int_equal(pwrite(fd, &c, 1, 100), 1);
        close(fd);
}

static void registry_prune(Dirs *d, unsigned n_blobs) {
        OciPruneStats st;
        unsigned seen = 0;
        assert_int_equal(oci_cache_prune(d->cache_fd, false, keep_all, count_visit, &seen, &st), 0);
        assert_true(st.n_blobs == 0 && seen == 0);
        assert_int_equal(oci_cache_prune(d->cache_fd, true, keep_none, count_visit, &seen, &st), 0);
        assert_int_equal(seen, n_blobs);
        _cleanup_free_ char *blobs = path_in(d->cache, "blobs/sha256");
        assert_int_equal(dir_entries(blobs), n_blobs);
        assert_int_equal(oci_cache_prune(d->cache_fd, false, keep_none, NULL, NULL, &st), 0);
        assert_true(st.n_blobs == n_blobs && st.bytes > 0);
        assert_int_equal(dir_entries(blobs), 0);
}

static int progress_calls;
static int count_progress(OciProgressPhase phase, uint64_t done, uint64_t total, void *userdata) {
        if (phase == OCI_PHASE_DOWNLOAD && total > 0 && done <= total)
                progress_calls++;
        return 0;
}

static void test_registry(void **state) {
        if (!have("skopeo") || !have("docker-registry"))
                skip();
        int port = free_port();
        _cleanup_free_ char *storage = path_in(workdir, "registry"), *dst = NULL, *ref = NULL;
        Process reg = PROCESS_NULL;
        registry_start(port, storage, &reg);
        assert_true(asprintf(&dst, "docker://127.0.0.1:%d/test/img:v1", port) > 0);
        skopeo_copy(dst, true); /* pushes the index with both platforms */
        assert_true(asprintf(&ref, "127.0.0.1:%d/test/img:v1", port) > 0);
        Dirs d;
        dirs_new(&d, "registry");
        OciImportOptions o = { .source = ref,
                               .cache_dirfd = d.cache_fd,
                               .out_dirfd = d.out_fd,
                               .out_name = "rootfs.ext4",
                               .progress = count_progress };
        OciImportResult res;
        error_clear();
        int r = oci_import(&o, &res);
        if (r < 0) {
                process_kill_and_reap(&reg);
                fail_msg("import failed: %s", error_last_message());
        }
        _cleanup_free_ char *img = path_in(d.out, "rootfs.ext4");
        check_base_image(img);
        assert_true(progress_calls > 0);
        assert_int_equal(strv_length(res.blobs), 3); /* config + 2 layers */
        registry_prune(&d, 3);
        /* A blob served with different bytes than its digest: refused. */
        corrupt_registry_blob(storage, res.blobs[1]);
        oci_import_result_done(&res);
        assert_int_equal(unlink(img), 0);
        error_clear();
        r = oci_import(&o, &res);
        process_kill_and_reap(&reg);
        assert_int_equal(r, -EBADMSG);
        assert_non_null(strstr(error_last_message(), "digest mismatch"));
        assert_int_equal(dir_entries(d.out), 0);
        _cleanup_free_ char *blobs = path_in(d.cache, "blobs/sha256");
        assert_int_equal(dir_entries(blobs), 0); /* nothing of a failed pull is kept, not even the good config */
        dirs_done(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_path_normalize),   cmocka_unit_test(test_ref_parse),
                cmocka_unit_test(test_challenge),        cmocka_unit_test(test_import_layout),
                cmocka_unit_test(test_refusals),         cmocka_unit_test(test_digest_mismatch),
                cmocka_unit_test(test_docker_archive),   cmocka_unit_test(test_oci_archive),
                cmocka_unit_test(test_registry),         cmocka_unit_test(test_archive_limits),
                cmocka_unit_test(test_archive_symlinks), cmocka_unit_test(test_spool_limits),
        };
        if (!have("debugfs") && access("/usr/sbin/debugfs", X_OK) != 0) {
                printf("debugfs (e2fsprogs) is not installed\n");
                return 77;
        }
        return cmocka_run_group_tests(tests, setup_fixture, teardown_fixture);
}
