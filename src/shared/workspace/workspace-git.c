/* SPDX-License-Identifier: MIT */
/* The host's git for workspaces (workspace-git.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "spawn.h"
#include "string-util.h"
#include "workspace-git.h"

#define ENV_MAX 16

static int read_memfd(int fd, size_t max, char **ret, size_t *ret_len) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        size_t len = MIN((size_t) st.st_size, max);
        _cleanup_free_ char *buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t n = pread(fd, buf, len, 0);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = (size_t) n;
        return 0;
}

static int base_env(char *const *extra, char **env, char *home) {
        size_t n = 0;
        env[n++] = "PATH=/usr/local/bin:/usr/bin:/bin";
        env[n++] = "LC_ALL=C";
        env[n++] = "GIT_TERMINAL_PROMPT=0";
        if (home)
                env[n++] = home;
        for (size_t i = 0; extra && extra[i]; i++) {
                if (n + 1 >= ENV_MAX)
                        return -E2BIG;
                env[n++] = extra[i];
        }
        env[n] = NULL;
        return 0;
}

static int run_git(WsGitCall *c, char *const *args, int out_fd, int err_fd) {
        char *argv[64];
        size_t n = 0;
        argv[n++] = "git";
        for (size_t i = 0; args[i]; i++) {
                if (n + 1 >= ELEMENTSOF(argv))
                        return -E2BIG;
                argv[n++] = args[i];
        }
        argv[n] = NULL;
        const char *h = getenv("HOME");
        _cleanup_free_ char *home = NULL;
        if (h && *h == '/' && strlen(h) < PATH_MAX && asprintf(&home, "HOME=%s", h) < 0)
                return -ENOMEM;
        char *env[ENV_MAX];
        int r = base_env(c->env, env, home);
        if (r < 0)
                return r;
        SpawnOptions o;
        spawn_options_init(&o);
        o.stdout_fd = out_fd;
        o.stderr_fd = err_fd;
        o.env = env;
        o.cwd = c->cwd;
        o.umask = 022;
        Process p = PROCESS_NULL;
        r = spawn_process(argv, &o, &p);
        if (r < 0)
                return r;
        int status = 0;
        r = process_wait(&p, USEC_INFINITY, &status);
        process_release(&p);
        if (r < 0)
                return r;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}

int ws_git(WsGitCall *c, char *const *args) {
        _cleanup_close_ int err = memfd_create("git-stderr", MFD_CLOEXEC);
        _cleanup_close_ int out = c->stdout_fd >= 0 ? -EBADF : memfd_create("git-stdout", MFD_CLOEXEC);
        if (err < 0 || (c->stdout_fd < 0 && out < 0))
                return -errno;
        c->err[0] = 0;
        int r = run_git(c, args, c->stdout_fd >= 0 ? c->stdout_fd : out, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *e = NULL;
        if (read_memfd(err, sizeof(c->err) - 1, &e, NULL) >= 0) {
                size_t l = strlen(e);
                while (l > 0 && (e[l - 1] == '\n' || e[l - 1] == ' '))
                        e[--l] = 0;
                snprintf(c->err, sizeof(c->err), "%s", e);
        }
        if (out >= 0) {
                free(c->out);
                c->out = NULL;
                int q = read_memfd(out, WS_GIT_OUTPUT_MAX, &c->out, &c->out_len);
                if (q < 0)
                        return q;
        }
        return r;
}

void ws_git_call_done(WsGitCall *c) {
        free(c->out);
        c->out = NULL;
}

/* Output's first line, without its newline. */
static char *first_line(const char *s) {
        return strndup(s, strcspn(s, "\n"));
}

/* git's message without "fatal: ", on one line. */
static const char *git_reason(WsGitCall *c) {
        char *s = c->err;
        if (startswith(s, "fatal: "))
                s += strlen("fatal: ");
        s[strcspn(s, "\n")] = 0;
        return *s ? s : "git failed";
}

void ws_repo_done(WsRepo *r) {
        free(r->top);
        free(r->git_dir);
        free(r->objects);
        free(r->name);
        *r = (WsRepo){};
}

static char *absolute_in(const char *dir, const char *p) {
        char *s = NULL;
        if (p[0] == '/')
                return realpath(p, NULL);
        if (asprintf(&s, "%s/%s", dir, p) < 0)
                return NULL;
        char *abs = realpath(s, NULL);
        free(s);
        return abs;
}

/* Split rev-parse's three lines: top, git dir, common dir. */
static int repo_fill(const char *abs, char *out, WsRepo *ret) {
        char *lines[3] = {};
        char *save = NULL;
        lines[0] = strtok_r(out, "\n", &save);
        lines[1] = lines[0] ? strtok_r(NULL, "\n", &save) : NULL;
        lines[2] = lines[1] ? strtok_r(NULL, "\n", &save) : NULL;
        if (!lines[2])
                return -EBADMSG;
        _cleanup_free_ char *common = absolute_in(abs, lines[2]);
        ret->top = strdup(lines[0]);
        ret->git_dir = strdup(lines[1]);
        if (common && asprintf(&ret->objects, "%s/objects", common) < 0)
                ret->objects = NULL;
        const char *slash = ret->top ? strrchr(ret->top, '/') : NULL;
        ret->name = slash && slash[1] ? strdup(slash + 1) : NULL;
        return ret->top && ret->git_dir && ret->objects && ret->name ? 0 : -ENOMEM;
}

int ws_repo_open(const WsReport *rep, const char *path, WsRepo *ret) {
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
                ws_fail(rep, "%s is not a directory: give the top directory of a git work tree", path);
                return -ENOTDIR;
        }
        _cleanup_free_ char *abs = realpath(path, NULL);
        if (!abs)
                return -errno;
        WsGitCall c = { .cwd = abs, .stdout_fd = -1 };
        int r = ws_git(&c,
                       (char *[]){ "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir", NULL });
        WsRepo repo = {};
        if (r == 0 && repo_fill(abs, c.out, &repo) < 0)
                r = -ENOMEM;
        ws_git_call_done(&c);
        if (r < 0) {
                ws_fail(rep, "cannot run git in %s: %s", path, strerror(-r));
                return r;
        }
        if (r > 0) {
                ws_fail(rep, "%s is not a git work tree (%s): give the top directory of one", path, git_reason(&c));
                return -EINVAL;
        }
        if (!streq(repo.top, abs)) {
                ws_fail(rep, "%s is inside the git work tree %s: give its top directory", path, repo.top);
                ws_repo_done(&repo);
                return -EINVAL;
        }
        *ret = repo;
        return 0;
}

int ws_repo_rev(const WsReport *rep, const WsRepo *r, const char *rev, char **ret) {
        WsGitCall c = { .cwd = r->top, .stdout_fd = -1 };
        int q = ws_git(&c, (char *[]){ "rev-parse", "--verify", "--quiet", "--end-of-options", (char *) rev, NULL });
        if (q == 0)
                *ret = first_line(c.out);
        ws_git_call_done(&c);
        if (q != 0) {
                if (q > 0 && startswith(rev, "HEAD^"))
                        ws_fail(rep, "%s has no commit yet: commit first, a workspace starts from one", r->top);
                else {
                        /* The name as the user gave it, without the ^{commit} we added. */
                        const char *peel = strstr(rev, "^{");
                        int n = peel && endswith(rev, "}") ? (int) (peel - rev) : (int) strlen(rev);
                        ws_fail(rep, "%.*s names no commit in %s", n, rev, r->top);
                }
                return q < 0 ? q : -ENOENT;
        }
        return *ret ? 0 : -ENOMEM;
}

int ws_repo_config(const WsRepo *r, const char *key, char **ret) {
        WsGitCall c = { .cwd = r->top, .stdout_fd = -1 };
        int q = ws_git(&c, (char *[]){ "config", "--get", (char *) key, NULL });
        *ret = q == 0 ? first_line(c.out) : NULL;
        ws_git_call_done(&c);
        if (q < 0)
                return q;
        return q == 0 && !*ret ? -ENOMEM : 0;
}

int ws_repo_branch(const WsRepo *r, char **ret) {
        WsGitCall c = { .cwd = r->top, .stdout_fd = -1 };
        int q = ws_git(&c, (char *[]){ "symbolic-ref", "--quiet", "--short", "HEAD", NULL });
        *ret = q == 0 ? first_line(c.out) : NULL;
        ws_git_call_done(&c);
        return q < 0 ? q : 0;
}

static char *env_pair(const char *name, const char *a, const char *b, const char *c) {
        char *s = NULL;
        return asprintf(&s, "%s=%s%s%s", name, a, b ? b : "", c ? c : "") < 0 ? NULL : s;
}

char **ws_repo_private_env(const WsRepo *r, const char *work_tree, const char *index, const char *objects_dir,
                           const char *more_objects) {
        char **env = calloc(6, sizeof(char *));
        if (!env)
                return NULL;
        env[0] = env_pair("GIT_DIR", r->git_dir, NULL, NULL);
        env[1] = env_pair("GIT_WORK_TREE", work_tree, NULL, NULL);
        env[2] = env_pair("GIT_INDEX_FILE", index, NULL, NULL);
        env[3] = env_pair("GIT_OBJECT_DIRECTORY", objects_dir, NULL, NULL);
        env[4] = env_pair("GIT_ALTERNATE_OBJECT_DIRECTORIES", r->objects, more_objects ? ":" : NULL, more_objects);
        for (size_t i = 0; i < 5; i++)
                if (!env[i]) {
                        for (size_t j = 0; j < 5; j++)
                                free(env[j]);
                        free(env);
                        return NULL;
                }
        return env;
}

int ws_git_ok(const WsReport *rep, WsGitCall *c, char *const *args) {
        int r = ws_git(c, args);
        if (r == 0)
                return 0;
        if (r < 0)
                ws_fail(rep, "cannot run git: %s", strerror(-r));
        else
                ws_fail(rep, "git %s: %s", args[0], git_reason(c));
        return r < 0 ? r : -EIO;
}
