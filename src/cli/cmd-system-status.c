/* SPDX-License-Identifier: MIT */
/* banger system status: what a system install put where, as doctor-style
 * PASS/WARN/FAIL rows. Read-only, and works for any user: directories are
 * inspected with fstatat() on their parents, never opened. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-rows.h"
#include "cmd-system.h"
#include "config.h"
#include "error.h"
#include "fs-util.h"
#include "macro.h"
#include "spawn.h"
#include "string-util.h"
#include "system-install.h"
#include "verbs.h"

typedef struct StatusCtx {
        SysRoot root;
        bool systemd;
        CheckRows rows;
        char *owner_name; /* NULL: no owner recorded */
        uid_t owner_uid;
        gid_t owner_gid;
} StatusCtx;

/* lstat-like, beneath the root: 0 and *st, or -errno (with an error message
 * for a symlink in the way). */
static int stat_beneath(StatusCtx *s, const char *dir, const char *name, struct stat *st) {
        static const SysDirSpec open_only = {};
        _cleanup_close_ int fd = -EBADF;
        int r = sys_dir_open(s->root.fd, s->root.display, dir, &open_only, NULL, &fd);
        if (r < 0)
                return r;
        return fstatat(fd, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static const char *describe_missing(int r) {
        return r == -ENOENT ? "not installed" : error_last_message() ?: strerror(-r);
}

static void first_line(char *s) {
        if (s)
                s[strcspn(s, "\n")] = '\0';
}

/* Same bytes as the one this banger would install? 1 yes, 0 no, < 0 unknown. */
static int binary_matches_source(StatusCtx *s, const SysBinary *b) {
        static const SysDirSpec open_only = {};
        _cleanup_free_ char *src = sys_find_binary(b), *data = NULL;
        if (!src)
                return -ENOENT;
        _cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY), dfd = -EBADF;
        size_t len = 0;
        int r = fd < 0 ? -errno : read_file_fd(fd, (size_t) 512 << 20, &data, &len);
        if (r >= 0)
                r = sys_dir_open(s->root.fd, s->root.display, b->dir, &open_only, NULL, &dfd);
        return r < 0 ? r : sys_file_matches(dfd, b->name, data, len, 0755);
}

static void check_binary(StatusCtx *s, const SysBinary *b) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s/%s", s->root.display, b->dir, b->name);
        struct stat st;
        error_clear();
        int r = stat_beneath(s, b->dir, b->name, &st);
        if (r < 0 || !S_ISREG(st.st_mode)) {
                check_row(&s->rows, CHECK_FAIL, b->name, "%s: %s", path,
                          r < 0 ? describe_missing(r) : "not a regular file");
                return;
        }
        if (st.st_uid != 0 || st.st_gid != 0 || (st.st_mode & 07777) != 0755) {
                check_row(&s->rows, CHECK_FAIL, b->name, "%s: mode %04o owner %u:%u, expected 0755 root:root", path,
                          (unsigned) (st.st_mode & 07777), (unsigned) st.st_uid, (unsigned) st.st_gid);
                return;
        }
        _cleanup_free_ char *out = NULL;
        char *argv[] = { path, (char *) "--version", NULL };
        r = spawn_run_capture(argv, 10 * USEC_PER_SEC, 4096, true, &out);
        first_line(out);
        int same = binary_matches_source(s, b);
        check_row(&s->rows, r == 0 && same != 0 ? CHECK_PASS : CHECK_WARN, b->name, "%s: %s%s", path,
                  r == 0 && out ? out : "does not run with --version",
                  same == 0 ? "\ndiffers from this banger's build: 'banger system install' updates it" : "");
}

static void check_unit_state(StatusCtx *s, const char *unit, char *buf, size_t len) {
        const char *verbs[] = { "is-enabled", "is-active" };
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                _cleanup_free_ char *out = NULL;
                const char *args[] = { verbs[i], unit, NULL };
                /* Non-zero exit is an answer here ("disabled", "inactive"). */
                (void) sys_systemctl(args, &out);
                first_line(out);
                n += (size_t) snprintf(buf + n, n < len ? len - n : 0, "%s%s: %s", i ? ", " : "", verbs[i] + 3,
                                       out && *out ? out : "unknown");
        }
}

static void check_text_file(StatusCtx *s, const SysTextFile *t) {
        static const SysDirSpec open_only = {};
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s/%s", s->root.display, t->dir, t->name);
        _cleanup_free_ char *rendered = NULL;
        if (t->render && sys_render(t->text, &rendered) < 0)
                return;
        const char *text = rendered ?: t->text;
        _cleanup_close_ int dfd = -EBADF;
        struct stat st;
        error_clear();
        int r = stat_beneath(s, t->dir, t->name, &st);
        if (r >= 0)
                r = sys_dir_open(s->root.fd, s->root.display, t->dir, &open_only, NULL, &dfd);
        if (r < 0) {
                check_row(&s->rows, CHECK_FAIL, t->name, "%s: %s", path, describe_missing(r));
                return;
        }
        int same = sys_file_matches(dfd, t->name, text, strlen(text), 0644);
        char state[256] = "";
        const char *unit = t->name;
        char instance[128];
        if (endswith(t->name, ".socket") || endswith(t->name, ".service")) {
                if (startswith(t->name, "bangerd@") && s->owner_name) {
                        snprintf(instance, sizeof(instance), "bangerd@%s%s", s->owner_name, t->name + 8);
                        unit = instance;
                }
                if (s->systemd && (unit != t->name || !startswith(t->name, "bangerd@")))
                        check_unit_state(s, unit, state, sizeof(state));
        }
        const char *what =
                same > 0 ? "as this build installs it" : "differs from this build's (mode, owner or content)";
        if (*state)
                check_row(&s->rows, same > 0 ? CHECK_PASS : CHECK_WARN, t->name, "%s: %s\n%s: %s", path, what, unit,
                          state);
        else
                check_row(&s->rows, same > 0 ? CHECK_PASS : CHECK_WARN, t->name, "%s: %s", path, what);
}

static void check_owner(StatusCtx *s) {
        static const SysDirSpec open_only = {};
        _cleanup_close_ int conf = -EBADF;
        _cleanup_free_ char *text = NULL;
        error_clear();
        int r = sys_dir_open(s->root.fd, s->root.display, SYS_CONFDIR, &open_only, NULL, &conf);
        if (r >= 0)
                r = read_file_at(conf, SYS_OWNER_FILE, 4096, &text, NULL);
        if (r < 0) {
                check_row(&s->rows, CHECK_FAIL, "owner", "%s/" SYS_CONFDIR "/" SYS_OWNER_FILE ": %s", s->root.display,
                          describe_missing(r));
                return;
        }
        struct stat st;
        if (sys_owner_parse(text, &s->owner_uid, &s->owner_gid) < 0 ||
            fstatat(conf, SYS_OWNER_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                check_row(&s->rows, CHECK_FAIL, "owner", "%s/" SYS_CONFDIR "/" SYS_OWNER_FILE ": not UID or UID:GID",
                          s->root.display);
                return;
        }
        (void) sys_user_name(s->owner_uid, &s->owner_name);
        bool safe = st.st_uid == 0 && !(st.st_mode & 0022);
        check_row(&s->rows, safe && s->owner_name ? CHECK_PASS : CHECK_FAIL, "owner",
                  "%s/" SYS_CONFDIR "/" SYS_OWNER_FILE ": uid %u gid %d (%s)%s", s->root.display,
                  (unsigned) s->owner_uid, (int) s->owner_gid, s->owner_name ?: "no such user",
                  safe ? "" : "\nmust be owned by root and not group/other writable: bangerd-root refuses it");
}

static void check_config(StatusCtx *s) {
        static const SysDirSpec open_only = {};
        _cleanup_close_ int conf = -EBADF;
        BangerConfig c;
        error_clear();
        int r = sys_dir_open(s->root.fd, s->root.display, SYS_CONFDIR, &open_only, NULL, &conf);
        struct stat st;
        if (r < 0 || fstatat(conf, CONFIG_FILE_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                check_row(&s->rows, CHECK_PASS, "config",
                          "%s/" SYS_CONFDIR "/" CONFIG_FILE_NAME ": not present (defaults)", s->root.display);
                return;
        }
        r = config_load(conf, CONFIG_FILE_NAME, &c);
        if (r < 0)
                check_row(&s->rows, CHECK_FAIL, "config", "%s", error_last_message() ?: strerror(-r));
        else {
                check_row(&s->rows, CHECK_PASS, "config", "%s/" SYS_CONFDIR "/" CONFIG_FILE_NAME ": parses",
                          s->root.display);
                config_done(&c);
        }
}

static void check_dir(StatusCtx *s, const char *rel, mode_t mode, bool owner_owned) {
        _cleanup_free_ char *parent = strdup(rel);
        char *leaf = parent ? strrchr(parent, '/') : NULL;
        if (!leaf)
                return;
        *leaf++ = '\0';
        char check[128];
        snprintf(check, sizeof(check), "/%s", rel);
        struct stat st;
        error_clear();
        int r = stat_beneath(s, parent, leaf, &st);
        if (r < 0 || !S_ISDIR(st.st_mode)) {
                check_row(&s->rows, CHECK_FAIL, check, "%s/%s: %s", s->root.display, rel,
                          r < 0 ? describe_missing(r) : "not a directory");
                return;
        }
        uid_t uid = owner_owned ? s->owner_uid : 0;
        bool ok = (st.st_mode & 07777) == mode && st.st_uid == uid && (owner_owned || st.st_gid == 0);
        check_row(&s->rows, ok ? CHECK_PASS : CHECK_WARN, check, "%s/%s: mode %04o, owner %u:%u%s", s->root.display,
                  rel, (unsigned) (st.st_mode & 07777), (unsigned) st.st_uid, (unsigned) st.st_gid,
                  ok ? "" : "\nnot what 'banger system install' sets; running it again fixes it");
}

static void status_help(void) {
        printf("Usage: banger system status [--root DIR] [--json]\n"
               "\n"
               "Show what 'banger system install' put where, as PASS/WARN/FAIL rows: each\n"
               "binary with its version (WARN when it differs from this banger's build), the\n"
               "units (whether they match this build's, and when systemd runs whether they are\n"
               "enabled and active), the owner, the configuration, and the directories with\n"
               "their modes and owners. Exit code 1 when any row FAILs, e.g. not installed.\n"
               "\n"
               "Options:\n"
               "  --root DIR   inspect an install below DIR instead of /\n"
               "  --json       print the rows as JSON\n");
}

int cmd_system_status(Cli *cli, int argc, char **argv) {
        enum { O_ROOT = CLI_OPT_FIRST_PRIVATE };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "root", required_argument, NULL, O_ROOT },
                                              {} };
        const char *root = NULL;
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                if (o == 'h') {
                        status_help();
                        return EXIT_OK;
                }
                if (o == CLI_OPT_JSON)
                        cli->json = true;
                else if (o == O_ROOT)
                        root = optarg;
                else
                        return cli_option_error("system status", argv);
        }
        if (optind < argc)
                return cli_usage_error("system status", "unexpected argument '%s'", argv[optind]);
        StatusCtx s = {};
        check_rows_init(&s.rows);
        error_clear();
        int r = sys_root_open(root, &s.root);
        if (r < 0) {
                fprintf(stderr, "banger system status: %s\n", error_last_message() ?: strerror(-r));
                check_rows_done(&s.rows);
                return EXIT_FAIL;
        }
        s.systemd = sys_systemd_running(&s.root);
        check_owner(&s);
        for (const SysBinary *b = sys_binaries; b->name; b++)
                check_binary(&s, b);
        for (const SysTextFile *t = sys_text_files; t->name; t++)
                check_text_file(&s, t);
        check_config(&s);
        check_dir(&s, SYS_CONFDIR, 0755, false);
        check_dir(&s, SYS_STATEDIR, 0700, true);
        check_dir(&s, SYS_CACHEDIR, 0700, true);
        check_rows_print(&s.rows, cli->json,
                         s.systemd ? NULL : " (systemd is not running here: unit states not checked)");
        check_rows_done(&s.rows);
        free(s.owner_name);
        sys_root_done(&s.root);
        return s.rows.n_fail > 0 ? EXIT_FAIL : EXIT_OK;
}
