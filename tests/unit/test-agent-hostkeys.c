/* SPDX-License-Identifier: MIT */
/* A clone's new host identities (agent-hostkeys.c) in a directory tree
 * standing for the guest's root, with the host's real ssh-keygen and
 * dropbearkey linked in where the guest would have them: the key types
 * that were there are replaced by new, valid keys, no other type appears,
 * nothing temporary is left, and machine-id gets new random digits with its
 * mode kept. Without the tools, the keys are left and the failure named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-hostkeys.h"
#include "fs-util.h"
#include "macro.h"
#include "spawn.h"
#include "string-util.h"
#include "time-util.h"

#define OLD_ID "0123456789abcdef0123456789abcdef\n"

typedef struct Root {
        char path[32];
        int fd;
} Root;

static void put(const Root *r, const char *path, const char *text, mode_t mode) {
        char dir[64];
        const char *base = strrchr(path, '/') + 1;
        snprintf(dir, sizeof(dir), "%.*s", (int) (base - 1 - path), path);
        _cleanup_close_ int dfd = open_dir_nofollow(r->fd, dir);
        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, base, text, strlen(text), mode), 0);
}

static char *get(const Root *r, const char *name) {
        char *text = NULL;
        int k = read_file_at(r->fd, name, 65536, &text, NULL);
        return k < 0 ? NULL : text;
}

static bool have(const char *tool) {
        return access(tool, X_OK) == 0;
}

static int setup(void **state) {
        Root *r = calloc(1, sizeof(*r));
        strcpy(r->path, "/tmp/bhk-XXXXXX");
        assert_non_null(mkdtemp(r->path));
        r->fd = open_dir_nofollow(AT_FDCWD, r->path);
        assert_true(r->fd >= 0);
        assert_int_equal(mkdirat(r->fd, "etc", 0755), 0);
        assert_int_equal(mkdirat(r->fd, "etc/ssh", 0755), 0);
        assert_int_equal(mkdirat(r->fd, "etc/dropbear", 0700), 0);
        assert_int_equal(mkdirat(r->fd, "usr", 0755), 0);
        assert_int_equal(mkdirat(r->fd, "usr/bin", 0755), 0);
        put(r, "etc/machine-id", OLD_ID, 0444);
        put(r, "etc/ssh/ssh_host_ed25519_key", "old private\n", 0600);
        put(r, "etc/ssh/ssh_host_ed25519_key.pub", "old public\n", 0644);
        put(r, "etc/dropbear/dropbear_ecdsa_host_key", "old dropbear\n", 0600);
        *state = r;
        return 0;
}

static int teardown(void **state) {
        Root *r = *state;
        char *rm[] = { "rm", "-rf", r->path, NULL };
        assert_int_equal(spawn_run_capture(rm, 30 * USEC_PER_SEC, 0, false, NULL), 0);
        close(r->fd);
        free(r);
        return 0;
}

static int leftovers(const Root *r, const char *dir) {
        _cleanup_close_ int dfd = openat(r->fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fdopendir(TAKE_FD(dfd));
        assert_non_null(d);
        int n = 0;
        for (struct dirent *de; (de = readdir(d));)
                n += strstr(de->d_name, "banger-new") != NULL || strncmp(de->d_name, ".#", 2) == 0;
        closedir(d);
        return n;
}

static void test_new_keys_and_machine_id(void **state) {
        Root *r = *state;
        if (!have("/usr/bin/ssh-keygen") || !have("/usr/bin/dropbearkey"))
                skip(); /* both are test dependencies (scripts/deps.sh) */
        assert_int_equal(symlinkat("/usr/bin/ssh-keygen", r->fd, "usr/bin/ssh-keygen"), 0);
        assert_int_equal(symlinkat("/usr/bin/dropbearkey", r->fd, "usr/bin/dropbearkey"), 0);
        assert_int_equal(agent_new_host_keys(r->path), 0);

        _cleanup_free_ char *key = get(r, "etc/ssh/ssh_host_ed25519_key"),
                            *pub = get(r, "etc/ssh/ssh_host_ed25519_key.pub"),
                            *drop = get(r, "etc/dropbear/dropbear_ecdsa_host_key"), *id = get(r, "etc/machine-id");
        assert_non_null(key);
        assert_non_null(startswith(key, "-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert_non_null(pub);
        assert_non_null(startswith(pub, "ssh-ed25519 "));
        assert_non_null(drop);
        assert_string_not_equal(drop, "old dropbear\n");
        struct stat dst;
        assert_int_equal(fstatat(r->fd, "etc/dropbear/dropbear_ecdsa_host_key", &dst, 0), 0);
        assert_true(dst.st_size > 64); /* a binary key blob, not the old text */
        /* Only the types that were there. */
        assert_null(get(r, "etc/ssh/ssh_host_rsa_key"));
        assert_null(get(r, "etc/dropbear/dropbear_rsa_host_key"));
        assert_int_equal(leftovers(r, "etc/ssh") + leftovers(r, "etc/dropbear") + leftovers(r, "etc"), 0);

        assert_non_null(id);
        assert_int_equal(strlen(id), 33);
        assert_string_not_equal(id, OLD_ID);
        assert_int_equal(strspn(id, "0123456789abcdef"), 32);
        struct stat st;
        assert_int_equal(fstatat(r->fd, "etc/machine-id", &st, 0), 0);
        assert_int_equal(st.st_mode & 0777, 0444);
        struct stat kst;
        assert_int_equal(fstatat(r->fd, "etc/ssh/ssh_host_ed25519_key", &kst, 0), 0);
        assert_int_equal(kst.st_mode & 0077, 0); /* a private key stays private */
}

static void test_without_tools_keys_are_kept(void **state) {
        Root *r = *state;
        assert_true(agent_new_host_keys(r->path) < 0);
        _cleanup_free_ char *key = get(r, "etc/ssh/ssh_host_ed25519_key"), *id = get(r, "etc/machine-id");
        assert_string_equal(key, "old private\n");
        assert_int_equal(strlen(id), 33);
        assert_string_not_equal(id, OLD_ID); /* the machine id needs no tool */
        assert_int_equal(leftovers(r, "etc/ssh") + leftovers(r, "etc/dropbear"), 0);
}

static void test_nothing_there_nothing_made(void **state) {
        Root *r = *state;
        assert_int_equal(unlinkat(r->fd, "etc/machine-id", 0), 0);
        assert_int_equal(unlinkat(r->fd, "etc/ssh/ssh_host_ed25519_key", 0), 0);
        assert_int_equal(unlinkat(r->fd, "etc/ssh/ssh_host_ed25519_key.pub", 0), 0);
        assert_int_equal(unlinkat(r->fd, "etc/dropbear/dropbear_ecdsa_host_key", 0), 0);
        assert_int_equal(agent_new_host_keys(r->path), 0);
        assert_null(get(r, "etc/machine-id"));
        assert_int_equal(leftovers(r, "etc/ssh") + leftovers(r, "etc/dropbear"), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_new_keys_and_machine_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_without_tools_keys_are_kept, setup, teardown),
                cmocka_unit_test_setup_teardown(test_nothing_there_nothing_made, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
