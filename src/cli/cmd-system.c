/* SPDX-License-Identifier: MIT */
/* banger system install|status|uninstall: put banger on a host as a systemd
 * service for one owner, show what is there, take it away again. The layout
 * and the fd-relative file primitives are in system-install.c; status is in
 * cmd-system-status.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd-system.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "macro.h"
#include "store.h"
#include "string-util.h"
#include "system-install.h"
#include "verbs.h"

/* What an install or uninstall did, item by item, for the report. */
typedef struct Report {
        json_t *items;
        unsigned n_changed;
} Report;

static void report(Report *rep, const SysRoot *root, const char *rel, const char *name, SysChange c) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s%s%s", root->display, rel, name ? "/" : "", name ?: "");
        json_array_append_new(rep->items, json_pack("{s:s, s:s}", "path", path, "change", sys_change_to_string(c)));
        if (c != SYS_UNCHANGED && c != SYS_ABSENT)
                rep->n_changed++;
}

static void report_print(const Report *rep) {
        size_t i;
        json_t *it;
        json_array_foreach (rep->items, i, it)
                printf("%-10s %s\n", json_string_value(json_object_get(it, "change")),
                       json_string_value(json_object_get(it, "path")));
}

static int fail(const char *verb, int r, const char *what) {
        const char *m = error_last_message();
        if (m)
                fprintf(stderr, "banger system %s: %s\n", verb, m);
        else
                fprintf(stderr, "banger system %s: %s: %s\n", verb, what, strerror(-r));
        return EXIT_FAIL;
}

static int require_root(const char *verb) {
        if (geteuid() == 0)
                return 0;
        fprintf(stderr,
                "banger system %s: must be run as root (it writes /usr/local, /etc and /var): try 'sudo banger "
                "system %s ...'\n",
                verb, verb);
        return -EPERM;
}

/* ---- the owner ---------------------------------------------------------- */

typedef struct Owner {
        char *name;
        uid_t uid;
        gid_t gid;
} Owner;

static void owner_done(Owner *o) {
        free(o->name);
        o->name = NULL;
}

static int owner_resolve(const char *name, Owner *ret) {
        char buf[4096];
        struct passwd pw, *res = NULL;
        int r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
        if (r != 0)
                return error_setf(-r, "cannot look up user '%s': %s", name, strerror(r));
        if (!res)
                return error_setf(-ESRCH, "no such user '%s'", name);
        /* The point of the split is that the daemon, which parses guest and
         * client input all day, runs without privileges; bangerd@root would
         * undo that. */
        if (pw.pw_uid == 0)
                return error_setf(-EPERM, "the owner cannot be root (uid 0): bangerd is meant to run as an "
                                          "unprivileged user; name the user who will run VMs");
        if (!sys_owner_name_is_valid(pw.pw_name))
                return error_setf(-EINVAL,
                                  "user name '%s' cannot be a systemd instance name "
                                  "([A-Za-z0-9_][A-Za-z0-9_.-]*, at most 32 characters)",
                                  pw.pw_name);
        *ret = (Owner){ .name = strdup(pw.pw_name), .uid = pw.pw_uid, .gid = pw.pw_gid };
        return ret->name ? 0 : -ENOMEM;
}

/* The owner recorded in <root>/etc/banger/owner: 1 and the ids when there
 * is one, 0 when there is none. */
static int owner_recorded(const SysRoot *root, uid_t *uid, gid_t *gid) {
        static const SysDirSpec open_only = {};
        _cleanup_close_ int conf = -EBADF;
        int r = sys_dir_open(root->fd, root->display, SYS_CONFDIR, &open_only, NULL, &conf);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        _cleanup_free_ char *text = NULL;
        r = read_file_at(conf, SYS_OWNER_FILE, 4096, &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return error_setf(r,
                                  "cannot read %s/" SYS_CONFDIR "/" SYS_OWNER_FILE ": %s (remove it if it is "
                                  "not banger's)",
                                  root->display, r == -ELOOP ? "it is a symlink" : strerror(-r));
        if (sys_owner_parse(text, uid, gid) < 0)
                return error_setf(-EBADMSG, "%s/" SYS_CONFDIR "/" SYS_OWNER_FILE " is not UID:GID", root->display);
        return 1;
}

/* ---- install ------------------------------------------------------------ */

typedef struct InstallArgs {
        const char *owner;
        const char *root;
        bool no_enable;
} InstallArgs;

static void install_help(void) {
        printf("Usage: banger system install --owner USER [--root DIR] [--no-enable] [--json]\n"
               "\n"
               "Install banger on this host for USER (as root):\n"
               "  /usr/local/bin/banger, /usr/local/bin/bangerd            0755 root\n"
               "  /usr/local/libexec/banger/{bangerd-root,banger-agent}   0755 root\n"
               "  /usr/local/share/man/man1/banger.1, .../doc/banger/README.md\n"
               "  /etc/systemd/system/{bangerd-root.service,bangerd@.service,bangerd@.socket}\n"
               "                                                           0644 root\n"
               "  /etc/banger (0755 root; config.toml is left alone) and /etc/banger/owner\n"
               "                                                           (UID:GID, 0644 root)\n"
               "  /var/lib/banger, /var/cache/banger                       0700 USER\n"
               "The binaries come from next to this banger or from its build tree. Files are\n"
               "replaced atomically and only when they differ: running it again changes\n"
               "nothing and says so. Then, when systemd runs, it runs 'systemctl daemon-reload'\n"
               "and 'systemctl enable --now bangerd-root.service bangerd@USER.service';\n"
               "otherwise it prints those commands.\n"
               "\n"
               "Options:\n"
               "  --owner USER   the user bangerd runs as and bangerd-root serves (not root)\n"
               "  --root DIR     install below DIR instead of / (a staging tree or chroot);\n"
               "                 no symlink inside DIR is followed; implies --no-enable\n"
               "  --no-enable    do not run systemctl\n"
               "  --json         print what was done as JSON\n");
}

static int install_parse(Cli *cli, int argc, char **argv, InstallArgs *a) {
        enum { O_OWNER = CLI_OPT_FIRST_PRIVATE, O_ROOT, O_NO_ENABLE };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "owner", required_argument, NULL, O_OWNER },
                                              { "root", required_argument, NULL, O_ROOT },
                                              { "no-enable", no_argument, NULL, O_NO_ENABLE },
                                              {} };
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        install_help();
                        return -1;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case O_OWNER:
                        a->owner = optarg;
                        break;
                case O_ROOT:
                        a->root = optarg;
                        break;
                case O_NO_ENABLE:
                        a->no_enable = true;
                        break;
                default:
                        return cli_option_error("system install", argv);
                }
        }
        if (optind < argc)
                return cli_usage_error("system install", "unexpected argument '%s'", argv[optind]);
        if (!a->owner)
                return cli_usage_error("system install", "--owner USER is required");
        return 0;
}

/* The binaries, read before anything is written so a missing one fails the
 * install up front. */
typedef struct Payload {
        char *data[8];
        size_t len[8];
} Payload;

static void payload_done(Payload *p) {
        for (size_t i = 0; i < ELEMENTSOF(p->data); i++)
                free(p->data[i]);
}

static int payload_load(Payload *p) {
        for (size_t i = 0; sys_binaries[i].name; i++) {
                _cleanup_free_ char *src = sys_find_binary(&sys_binaries[i]);
                if (!src)
                        return error_setf(-ENOENT, "cannot find %s next to this banger or in its build tree",
                                          sys_binaries[i].name);
                _cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                int r = fd < 0 ? -errno : read_file_fd(fd, (size_t) 512 << 20, &p->data[i], &p->len[i]);
                if (r < 0)
                        return error_setf(r, "cannot read %s: %s", src, strerror(-r));
        }
        return 0;
}

/* The directories, in the order they are made; own ones get exact modes. */
typedef struct DirPlan {
        const char *rel;
        bool own;
        mode_t mode;
        bool owner_owned;
} DirPlan;
static const DirPlan dir_plan[] = {
        { SYS_BINDIR, false, 0, false },    { SYS_LIBEXECDIR, true, 0755, false }, { SYS_MAN1DIR, false, 0, false },
        { SYS_DOCDIR, true, 0755, false },  { SYS_UNITDIR, false, 0, false },      { SYS_CONFDIR, true, 0755, false },
        { SYS_STATEDIR, true, 0700, true }, { SYS_CACHEDIR, true, 0700, true },
};

typedef struct Dirs {
        int fd[ELEMENTSOF(dir_plan)];
} Dirs;

static void dirs_done(Dirs *d) {
        for (size_t i = 0; i < ELEMENTSOF(d->fd); i++)
                d->fd[i] = safe_close(d->fd[i]);
}

static int dirs_fd(const Dirs *d, const char *rel) {
        for (size_t i = 0; i < ELEMENTSOF(dir_plan); i++)
                if (streq(dir_plan[i].rel, rel))
                        return d->fd[i];
        return -EBADF;
}

static int dirs_ensure(const SysRoot *root, const Owner *o, Dirs *d, Report *rep) {
        for (size_t i = 0; i < ELEMENTSOF(dir_plan); i++) {
                const DirPlan *p = &dir_plan[i];
                SysDirSpec spec = { .create = true,
                                    .own = p->own,
                                    .mode = p->mode,
                                    .uid = p->owner_owned ? o->uid : 0,
                                    .gid = p->owner_owned ? o->gid : 0 };
                SysChange c;
                int r = sys_dir_open(root->fd, root->display, p->rel, &spec, &c, &d->fd[i]);
                if (r < 0)
                        return r;
                if (p->own)
                        report(rep, root, p->rel, NULL, c);
        }
        return 0;
}

static int install_files(const SysRoot *root, const Owner *o, const Payload *pl, const Dirs *d, Report *rep) {
        SysChange c;
        int r;
        for (size_t i = 0; sys_binaries[i].name; i++) {
                const SysBinary *b = &sys_binaries[i];
                if ((r = sys_file_install(dirs_fd(d, b->dir), b->name, pl->data[i], pl->len[i], 0755, &c)) < 0)
                        return error_setf(r, "cannot install %s/%s/%s: %s", root->display, b->dir, b->name,
                                          strerror(-r));
                report(rep, root, b->dir, b->name, c);
        }
        for (const SysTextFile *t = sys_text_files; t->name; t++) {
                _cleanup_free_ char *rendered = NULL;
                if (t->render && (r = sys_render(t->text, &rendered)) < 0)
                        return r;
                const char *text = rendered ?: t->text;
                if ((r = sys_file_install(dirs_fd(d, t->dir), t->name, text, strlen(text), 0644, &c)) < 0)
                        return error_setf(r, "cannot install %s/%s/%s: %s", root->display, t->dir, t->name,
                                          strerror(-r));
                report(rep, root, t->dir, t->name, c);
        }
        char line[64];
        int n = sys_owner_format(o->uid, o->gid, line, sizeof(line));
        if (n < 0)
                return n;
        if ((r = sys_file_install(dirs_fd(d, SYS_CONFDIR), SYS_OWNER_FILE, line, (size_t) n, 0644, &c)) < 0)
                return error_setf(r, "cannot write %s/" SYS_CONFDIR "/" SYS_OWNER_FILE ": %s", root->display,
                                  strerror(-r));
        report(rep, root, SYS_CONFDIR, SYS_OWNER_FILE, c);
        return 0;
}

static int systemctl_step(const char *const *args) {
        _cleanup_free_ char *out = NULL;
        int r = sys_systemctl(args, &out);
        if (r == 0)
                return 0;
        fprintf(stderr, "banger system: 'systemctl");
        for (const char *const *a = args; *a; a++)
                fprintf(stderr, " %s", *a);
        fprintf(stderr, "' failed (%s)%s%s", r < 0 ? strerror(-r) : "exit status not 0", out && *out ? ":\n" : "\n",
                out ?: "");
        return r < 0 ? r : -EIO;
}

static int install_enable(const SysRoot *root, const Owner *o, const InstallArgs *a, json_t *result) {
        _cleanup_free_ char *instance = NULL;
        if (asprintf(&instance, "bangerd@%s.service", o->name) < 0)
                return -ENOMEM;
        bool run = !a->root && !a->no_enable && sys_systemd_running(root);
        json_object_set_new(result, "enabled", json_boolean(run));
        if (!run) {
                json_t *next = json_array();
                json_array_append_new(next, json_string("systemctl daemon-reload"));
                json_array_append_new(next, json_sprintf("systemctl enable --now " SYS_HELPER_UNIT " %s", instance));
                json_object_set_new(result, "next", next);
                return 0;
        }
        static const char *const reload[] = { "daemon-reload", NULL };
        const char *const enable[] = { "enable", "--now", SYS_HELPER_UNIT, instance, NULL };
        int r = systemctl_step(reload);
        if (r >= 0)
                r = systemctl_step(enable);
        return r;
}

static void install_print(const Report *rep, const Owner *o, json_t *result) {
        report_print(rep);
        if (rep->n_changed == 0)
                printf("Nothing changed: banger is already installed for %s (uid %u); every file is unchanged.\n",
                       o->name, (unsigned) o->uid);
        else
                printf("Installed banger for %s (uid %u): %u change%s.\n", o->name, (unsigned) o->uid, rep->n_changed,
                       rep->n_changed == 1 ? "" : "s");
        json_t *next = json_object_get(result, "next");
        if (json_is_true(json_object_get(result, "enabled")))
                printf("Enabled and started " SYS_HELPER_UNIT " and bangerd@%s.service.\n", o->name);
        else if (next) {
                printf("\nsystemd was not asked to do anything (--root, --no-enable, or systemd is not running\n"
                       "here). To start banger on the target system, run as root:\n");
                size_t i;
                json_t *cmd;
                json_array_foreach (next, i, cmd)
                        printf("  %s\n", json_string_value(cmd));
        }
        printf("Use it as %s: banger --system vm list\n", o->name);
}

static int install_check_owner(const SysRoot *root, const Owner *o) {
        uid_t uid;
        gid_t gid;
        int r = owner_recorded(root, &uid, &gid);
        if (r <= 0)
                return r;
        if (uid == o->uid)
                return 0;
        _cleanup_free_ char *name = NULL;
        (void) sys_user_name(uid, &name);
        return error_setf(-EEXIST,
                          "banger is already installed for uid %u%s%s%s, not %s: its VMs and data in %s/" SYS_STATEDIR
                          " belong to that user. Run 'banger system uninstall --purge' first",
                          (unsigned) uid, name ? " (" : "", name ?: "", name ? ")" : "", o->name, root->display);
}

static int system_install_cmd(Cli *cli, int argc, char **argv) {
        InstallArgs a = {};
        int r = install_parse(cli, argc, argv, &a);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        if (require_root("install") < 0)
                return EXIT_FAIL;
        error_clear();
        _cleanup_(owner_done) Owner o = {};
        if ((r = owner_resolve(a.owner, &o)) < 0)
                return fail("install", r, a.owner);
        /* Every file below is born with its final mode; the caller's umask
         * must not narrow it. */
        umask(0022);
        _cleanup_(sys_root_done) SysRoot root = { .fd = -EBADF };
        if ((r = sys_root_open(a.root, &root)) < 0 || (r = install_check_owner(&root, &o)) < 0)
                return fail("install", r, a.root ?: "/");
        _cleanup_(payload_done) Payload pl = {};
        if ((r = payload_load(&pl)) < 0)
                return fail("install", r, "binaries");
        Report rep = { .items = json_array() };
        json_t *result = json_pack("{s:s, s:{s:s, s:I, s:I}, s:o}", "root", a.root ?: "/", "owner", "name", o.name,
                                   "uid", (json_int_t) o.uid, "gid", (json_int_t) o.gid, "items", rep.items);
        _cleanup_(dirs_done) Dirs d = {};
        for (size_t i = 0; i < ELEMENTSOF(d.fd); i++)
                d.fd[i] = -EBADF;
        if ((r = dirs_ensure(&root, &o, &d, &rep)) < 0 || (r = install_files(&root, &o, &pl, &d, &rep)) < 0 ||
            (r = install_enable(&root, &o, &a, result)) < 0) {
                if (!cli->json)
                        report_print(&rep);
                json_decref(result);
                return fail("install", r, "install");
        }
        json_object_set_new(result, "changed", json_integer(rep.n_changed));
        if (cli->json)
                cli_print_json(result);
        else
                install_print(&rep, &o, result);
        json_decref(result);
        return EXIT_OK;
}

/* ---- uninstall ---------------------------------------------------------- */

typedef struct UninstallArgs {
        const char *root;
        bool purge;
        bool force;
} UninstallArgs;

static void uninstall_help(void) {
        printf("Usage: banger system uninstall [--purge [--force]] [--root DIR] [--json]\n"
               "\n"
               "Undo 'banger system install' (as root): stop and disable the units when systemd\n"
               "runs, remove the units and their enablement links, the binaries, the man page\n"
               "and the README. /etc/banger, /var/lib/banger and /var/cache/banger stay.\n"
               "\n"
               "Options:\n"
               "  --purge     also remove /etc/banger, /var/lib/banger (VMs, images, kernels,\n"
               "              the database) and /var/cache/banger; refused while the database\n"
               "              records running VMs, or when something is mounted below them\n"
               "  --force     purge even with VMs recorded as running\n"
               "  --root DIR  work below DIR instead of / (no symlink inside DIR is followed)\n"
               "  --json      print what was done as JSON\n");
}

static int uninstall_parse(Cli *cli, int argc, char **argv, UninstallArgs *a) {
        enum { O_ROOT = CLI_OPT_FIRST_PRIVATE, O_PURGE, O_FORCE };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "root", required_argument, NULL, O_ROOT },
                                              { "purge", no_argument, NULL, O_PURGE },
                                              { "force", no_argument, NULL, O_FORCE },
                                              {} };
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        uninstall_help();
                        return -1;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case O_ROOT:
                        a->root = optarg;
                        break;
                case O_PURGE:
                        a->purge = true;
                        break;
                case O_FORCE:
                        a->force = true;
                        break;
                default:
                        return cli_option_error("system uninstall", argv);
                }
        }
        if (optind < argc)
                return cli_usage_error("system uninstall", "unexpected argument '%s'", argv[optind]);
        if (a->force && !a->purge)
                return cli_usage_error("system uninstall", "--force only makes sense with --purge");
        return 0;
}

static bool is_our_unit_name(const char *n) {
        return streq(n, SYS_HELPER_UNIT) ||
               (startswith(n, "bangerd@") && (endswith(n, ".service") || endswith(n, ".socket")));
}

/* Call fn for each enablement link of ours: <unitdir>/<x>.wants|.requires/
 * <our unit>, symlinks only (what systemctl enable makes). */
typedef int (*LinkFn)(int wants_fd, const char *wants, const char *name, void *userdata);
static int foreach_enablement_link(int unitdir, LinkFn fn, void *userdata) {
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(unitdir, ".", &d);
        if (r < 0)
                return r;
        for (struct dirent *de; (de = readdir(d));) {
                if (!endswith(de->d_name, ".wants") && !endswith(de->d_name, ".requires"))
                        continue;
                _cleanup_closedir_ DIR *sd = NULL;
                if (opendir_at(dirfd(d), de->d_name, &sd) < 0)
                        continue;
                for (struct dirent *e; (e = readdir(sd));) {
                        struct stat st;
                        if (!is_our_unit_name(e->d_name) ||
                            fstatat(dirfd(sd), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
                                continue;
                        int q = fn(dirfd(sd), de->d_name, e->d_name, userdata);
                        if (q < 0 && r == 0)
                                r = q;
                }
        }
        return r;
}

static int collect_instance(int wants_fd, const char *wants, const char *name, void *userdata) {
        if (!streq(name, SYS_HELPER_UNIT))
                json_array_append_new(userdata, json_string(name));
        return 0;
}

typedef struct RemoveLinkCtx {
        const SysRoot *root;
        Report *rep;
} RemoveLinkCtx;

static int remove_link(int wants_fd, const char *wants, const char *name, void *userdata) {
        RemoveLinkCtx *ctx = userdata;
        char rel[600];
        snprintf(rel, sizeof(rel), SYS_UNITDIR "/%s", wants);
        SysChange c = SYS_ABSENT;
        int r = sys_file_remove(wants_fd, name, &c);
        report(ctx->rep, ctx->root, rel, name, c);
        return r;
}

static int uninstall_systemd(const SysRoot *root, int unitdir, const char *owner_name) {
        if (!sys_systemd_running(root))
                return 0;
        json_t *inst = json_array();
        (void) foreach_enablement_link(unitdir, collect_instance, inst);
        const char *args[12] = { "disable", "--now", SYS_HELPER_UNIT };
        size_t n = 3;
        char owner_unit[2][64];
        if (owner_name) {
                snprintf(owner_unit[0], sizeof(owner_unit[0]), "bangerd@%s.service", owner_name);
                snprintf(owner_unit[1], sizeof(owner_unit[1]), "bangerd@%s.socket", owner_name);
                args[n++] = owner_unit[0];
                args[n++] = owner_unit[1];
        }
        size_t i;
        json_t *v;
        json_array_foreach (inst, i, v)
                if (n < ELEMENTSOF(args) - 1)
                        args[n++] = json_string_value(v);
        args[n] = NULL;
        /* Failing to stop a unit that is not loaded must not keep the files. */
        (void) systemctl_step(args);
        json_decref(inst);
        return 0;
}

static int purge_check_vms(const SysRoot *root, bool force) {
        char db[4096];
        snprintf(db, sizeof(db), "%s/" SYS_STATEDIR "/banger.db", root->display);
        VmRecord *vms = NULL;
        size_t n = 0;
        int r = store_list_live_vms_readonly(db, &vms, &n);
        if (r < 0 && !force)
                return error_setf(r, "cannot read %s to check for running VMs (%s); use --force to purge anyway", db,
                                  error_last_message() ?: strerror(-r));
        for (size_t i = 0; i < n; i++)
                fprintf(stderr, "banger system uninstall: VM %s (%s) is recorded as %s\n", vms[i].name, vms[i].id,
                        vm_state_to_string(vms[i].state));
        vm_record_array_free(vms, n);
        if (n > 0 && !force)
                return error_setf(-EBUSY,
                                  "%zu VM%s still recorded as running: stop them first ('banger --system "
                                  "vm stop ...'), or use --force",
                                  n, n == 1 ? " is" : "s are");
        return 0;
}

static int purge_check_mounts(const SysRoot *root) {
        _cleanup_free_ char *real = realpath(root->is_host ? "/" : root->display, NULL);
        if (!real)
                return -errno;
        static const char *const data[] = { SYS_CONFDIR, SYS_STATEDIR, SYS_CACHEDIR };
        for (size_t i = 0; i < ELEMENTSOF(data); i++) {
                _cleanup_free_ char *p = NULL, *m = NULL;
                if (asprintf(&p, "%s/%s", streq(real, "/") ? "" : real, data[i]) < 0)
                        return -ENOMEM;
                int r = sys_find_mount_below(p, &m);
                if (r < 0)
                        return r;
                if (r > 0)
                        return error_setf(-EBUSY, "%s is a mount point below %s: unmount it before purging", m, p);
        }
        return 0;
}

static int remove_files(const SysRoot *root, Report *rep) {
        static const SysDirSpec open_only = {};
        int first = 0;
        const struct {
                const char *dir, *name;
        } files[] = {
                { SYS_BINDIR, "banger" },
                { SYS_BINDIR, "bangerd" },
                { SYS_LIBEXECDIR, "bangerd-root" },
                { SYS_LIBEXECDIR, "banger-agent" },
                { SYS_MAN1DIR, "banger.1" },
                { SYS_DOCDIR, "README.md" },
                { SYS_UNITDIR, "bangerd-root.service" },
                { SYS_UNITDIR, "bangerd@.service" },
                { SYS_UNITDIR, "bangerd@.socket" },
        };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_close_ int dfd = -EBADF;
                SysChange c = SYS_ABSENT;
                int r = sys_dir_open(root->fd, root->display, files[i].dir, &open_only, NULL, &dfd);
                if (r >= 0)
                        r = sys_file_remove(dfd, files[i].name, &c);
                if (r < 0 && r != -ENOENT && first == 0)
                        first = error_setf(r, "cannot remove %s/%s/%s: %s", root->display, files[i].dir, files[i].name,
                                           strerror(-r));
                report(rep, root, files[i].dir, files[i].name, c);
        }
        return first;
}

/* rmdir a directory of ours when empty (someone may keep files there). */
static void remove_dir_if_empty(const SysRoot *root, const char *rel, Report *rep) {
        static const SysDirSpec open_only = {};
        _cleanup_free_ char *parent = strdup(rel);
        char *slash = parent ? strrchr(parent, '/') : NULL;
        if (!slash)
                return;
        *slash = '\0';
        _cleanup_close_ int pfd = -EBADF;
        if (sys_dir_open(root->fd, root->display, parent, &open_only, NULL, &pfd) < 0)
                return;
        if (unlinkat(pfd, slash + 1, AT_REMOVEDIR) == 0)
                report(rep, root, rel, NULL, SYS_REMOVED);
}

static int purge_data(const SysRoot *root, Report *rep) {
        static const SysDirSpec open_only = {};
        static const char *const data[] = { SYS_CONFDIR, SYS_STATEDIR, SYS_CACHEDIR };
        int first = 0;
        for (size_t i = 0; i < ELEMENTSOF(data); i++) {
                _cleanup_free_ char *parent = strdup(data[i]);
                if (!parent)
                        return -ENOMEM;
                char *leaf = strrchr(parent, '/');
                *leaf++ = '\0';
                _cleanup_close_ int pfd = -EBADF;
                struct stat st;
                int r = sys_dir_open(root->fd, root->display, parent, &open_only, NULL, &pfd);
                bool present = r >= 0 && fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0;
                if (present)
                        r = rm_rf_at(pfd, leaf);
                if (r < 0 && r != -ENOENT && first == 0)
                        first = error_setf(r, "cannot remove %s/%s: %s", root->display, data[i], strerror(-r));
                report(rep, root, data[i], NULL, present && r >= 0 ? SYS_REMOVED : SYS_ABSENT);
        }
        return first;
}

static int uninstall_run(const SysRoot *root, const UninstallArgs *a, Report *rep) {
        static const SysDirSpec open_only = {};
        uid_t uid = 0;
        gid_t gid = 0;
        _cleanup_free_ char *owner_name = NULL;
        int r = owner_recorded(root, &uid, &gid);
        if (r > 0)
                (void) sys_user_name(uid, &owner_name);
        if (a->purge && ((r = purge_check_vms(root, a->force)) < 0 || (r = purge_check_mounts(root)) < 0))
                return r;
        _cleanup_close_ int unitdir = -EBADF;
        r = sys_dir_open(root->fd, root->display, SYS_UNITDIR, &open_only, NULL, &unitdir);
        if (r < 0 && r != -ENOENT)
                return r;
        if (unitdir >= 0) {
                (void) uninstall_systemd(root, unitdir, owner_name);
                RemoveLinkCtx ctx = { root, rep };
                if ((r = foreach_enablement_link(unitdir, remove_link, &ctx)) < 0)
                        return error_setf(r, "cannot remove enablement links: %s", strerror(-r));
        }
        if ((r = remove_files(root, rep)) < 0)
                return r;
        remove_dir_if_empty(root, SYS_LIBEXECDIR, rep);
        remove_dir_if_empty(root, SYS_DOCDIR, rep);
        if (unitdir >= 0 && sys_systemd_running(root)) {
                static const char *const reload[] = { "daemon-reload", NULL };
                (void) systemctl_step(reload);
        }
        return a->purge ? purge_data(root, rep) : 0;
}

static int system_uninstall_cmd(Cli *cli, int argc, char **argv) {
        UninstallArgs a = {};
        int r = uninstall_parse(cli, argc, argv, &a);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        if (require_root("uninstall") < 0)
                return EXIT_FAIL;
        error_clear();
        _cleanup_(sys_root_done) SysRoot root = { .fd = -EBADF };
        if ((r = sys_root_open(a.root, &root)) < 0)
                return fail("uninstall", r, a.root ?: "/");
        Report rep = { .items = json_array() };
        r = uninstall_run(&root, &a, &rep);
        if (cli->json) {
                json_t *res = json_pack("{s:s, s:b, s:O, s:I}", "root", a.root ?: "/", "purge", a.purge, "items",
                                        rep.items, "changed", (json_int_t) rep.n_changed);
                cli_print_json(res);
                json_decref(res);
        } else
                report_print(&rep);
        json_decref(rep.items);
        if (r < 0)
                return fail("uninstall", r, "uninstall");
        if (!cli->json)
                printf("%s%s\n", rep.n_changed ? "Removed banger" : "Nothing to remove",
                       a.purge ? " with its configuration and data."
                               : "; configuration and data are kept (--purge removes them).");
        return EXIT_OK;
}

/* ---- the group ---------------------------------------------------------- */

static const CliVerb system_verbs[] = {
        { "install", NULL, system_install_cmd, "install binaries, units and directories for an owner (root)",
          "--owner= --root= --no-enable --json --help", "" },
        { "status", NULL, cmd_system_status, "show what is installed where, with versions and unit states",
          "--root= --json --help", "" },
        { "uninstall", NULL, system_uninstall_cmd, "remove units and binaries; --purge also config and data (root)",
          "--purge --force --root= --json --help", "" },
        {},
};

int cmd_system(Cli *cli, int argc, char **argv) {
        return cli_group_run(cli, "system",
                             "Install banger on this host as systemd services for one owner: bangerd runs as\n"
                             "that user, bangerd-root (the privileged helper) as root. See banger(1).",
                             system_verbs, argc, argv);
}
