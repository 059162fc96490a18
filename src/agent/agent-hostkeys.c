/* SPDX-License-Identifier: MIT */
/* New host identities for a clone that asked for them (NEW_HOST_KEYS=1 in
 * its identity request, `vm create --from-snapshot --new-host-keys`): every
 * clone of one snapshot otherwise presents the snapshot's SSH host keys and
 * /etc/machine-id. Only what exists is replaced, with the same key types,
 * each key made under a temporary name by the guest's own tool (OpenSSH's
 * ssh-keygen, dropbear's dropbearkey) and renamed over the old one. */
#include "agent-hostkeys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "string-util.h"

static const char *const key_types[] = { "rsa", "ecdsa", "ed25519" };

typedef struct KeyTool {
        const char *dir;             /* under the root */
        const char *prefix, *suffix; /* the key file's name: prefix TYPE suffix */
        const char *const *tool;     /* candidate paths of the key maker */
        bool has_pub;                /* OpenSSH keeps a .pub beside the key */
} KeyTool;

static const char *const ssh_keygen[] = { "/usr/bin/ssh-keygen", "/bin/ssh-keygen", NULL };
static const char *const dropbearkey[] = { "/usr/bin/dropbearkey", "/bin/dropbearkey", "/usr/sbin/dropbearkey", NULL };

static const KeyTool key_tools[] = {
        { "etc/ssh", "ssh_host_", "_key", ssh_keygen, true },
        { "etc/dropbear", "dropbear_", "_host_key", dropbearkey, false },
};

/* Run argv (no shell) with stdin on /dev/null and stdout on our stderr; its
 * exit status, or -errno. The identity stream's deadline bounds it. */
static int run_tool(char *const argv[]) {
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (null < 0 || dup2(null, 0) < 0 || dup2(2, 1) < 0)
                        _exit(127);
                execv(argv[0], argv);
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *find_tool(const char *root, const char *const *candidates, char *buf, size_t size) {
        for (size_t i = 0; candidates[i]; i++) {
                snprintf(buf, size, "%s%s", streq(root, "/") ? "" : root, candidates[i]);
                if (access(buf, X_OK) == 0)
                        return buf;
        }
        return NULL;
}

/* One key: made as NAME.banger-new (and .pub) by the tool, then renamed over. */
static int renew_key(const char *root, const KeyTool *t, int dfd, const char *type, const char *name) {
        char tool[256], path[512], tmp[80];
        if (!find_tool(root, t->tool, tool, sizeof(tool)))
                return log_error_errno(-ENOENT, "identity: %s/%s: no %s in the guest to make a new one", t->dir, name,
                                       strrchr(t->tool[0], '/') + 1);
        snprintf(tmp, sizeof(tmp), "%s.banger-new", name);
        (void) unlinkat(dfd, tmp, 0);
        snprintf(path, sizeof(path), "%s/%s/%s", streq(root, "/") ? "" : root, t->dir, tmp);
        char pub[sizeof(path) + 4];
        snprintf(pub, sizeof(pub), "%s.pub", path);
        (void) unlink(pub);
        char *ssh[] = { tool, "-q", "-t", (char *) type, "-N", "", "-C", "", "-f", path, NULL };
        char *drop[] = { tool, "-t", (char *) type, "-f", path, NULL };
        int r = run_tool(t->has_pub ? ssh : drop);
        if (r != 0) {
                (void) unlinkat(dfd, tmp, 0);
                (void) unlink(pub);
                return log_error_errno(r < 0 ? r : -EIO, "identity: %s %s key: %s failed (%d)", t->dir, type, tool, r);
        }
        char pub_tmp[sizeof(tmp) + 4], pub_name[96];
        snprintf(pub_tmp, sizeof(pub_tmp), "%s.pub", tmp);
        snprintf(pub_name, sizeof(pub_name), "%s.pub", name);
        if (t->has_pub && renameat(dfd, pub_tmp, dfd, pub_name) < 0)
                r = -errno;
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0)
                return log_error_errno(r, "identity: %s/%s: replacing it: %m", t->dir, name);
        return 0;
}

static int renew_keys_of(const char *root, const KeyTool *t, unsigned *n_done) {
        _cleanup_free_ char *dir = path_join(root, t->dir);
        _cleanup_close_ int dfd = dir ? open_dir_nofollow(AT_FDCWD, dir) : -ENOMEM;
        if (dfd == -ENOENT)
                return 0;
        if (dfd < 0)
                return log_error_errno(dfd, "identity: /%s: %m", t->dir);
        int ret = 0;
        for (size_t i = 0; i < ELEMENTSOF(key_types); i++) {
                char name[64];
                struct stat st;
                snprintf(name, sizeof(name), "%s%s%s", t->prefix, key_types[i], t->suffix);
                if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                int r = renew_key(root, t, dfd, key_types[i], name);
                if (r < 0)
                        ret = r;
                else
                        (*n_done)++;
        }
        if (fsync(dfd) < 0 && ret >= 0)
                ret = -errno;
        return ret;
}

/* A new random machine id, where the guest has one (systemd's format: 32
 * lowercase hex digits and a newline; its mode kept). */
static int renew_machine_id(const char *root, bool *done) {
        _cleanup_free_ char *etc = path_join(root, "etc");
        _cleanup_close_ int dfd = etc ? open_dir_nofollow(AT_FDCWD, etc) : -ENOMEM;
        if (dfd < 0)
                return dfd == -ENOENT ? 0 : dfd;
        struct stat st;
        if (fstatat(dfd, "machine-id", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
                return 0;
        uint8_t b[16];
        if (getrandom(b, sizeof(b), 0) != (ssize_t) sizeof(b))
                return -EIO;
        char text[34];
        for (size_t i = 0; i < sizeof(b); i++)
                snprintf(text + 2 * i, 3, "%02x", b[i]);
        text[32] = '\n';
        text[33] = '\0';
        int r = write_file_atomic_at(dfd, "machine-id", text, 33, st.st_mode & 0777);
        if (r < 0)
                return log_error_errno(r, "identity: /etc/machine-id: %m");
        *done = true;
        return 0;
}

int agent_new_host_keys(const char *root) {
        unsigned n = 0;
        bool machine_id = false;
        int ret = renew_machine_id(root, &machine_id);
        for (size_t i = 0; i < ELEMENTSOF(key_tools); i++) {
                int r = renew_keys_of(root, &key_tools[i], &n);
                if (r < 0)
                        ret = r;
        }
        log_info("identity: %u new host key%s%s", n, n == 1 ? "" : "s", machine_id ? ", a new /etc/machine-id" : "");
        return ret;
}
