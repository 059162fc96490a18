/* SPDX-License-Identifier: MIT */
/* The submodules of a work tree in its workspace copy (workspace-push.h).
 * git 2.39 (Debian 12) refuses `ls-files -o --recurse-submodules`
 * ("unsupported mode"), so each initialised submodule is listed in its own
 * work tree, its paths prefixed with where it is. The guest gets, as each
 * one's .git, a shallow clone of the commit it has checked out on the host
 * (a directory, where a checkout has a gitfile into the superproject's
 * .git/modules), so git status in the guest finds it at that commit and
 * clean, as the host does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "string-util.h"
#include "workspace-git.h"
#include "workspace-push.h"

#define SUBS_MAX 256
#define DEPTH_MAX 8

void ws_subs_free(WsPushPlan *p) {
        for (size_t i = 0; i < p->n_subs; i++) {
                free(p->subs[i].path);
                free(p->subs[i].clone_git);
        }
        free(p->subs);
        p->subs = NULL;
        p->n_subs = 0;
}

/* The paths of the gitlinks in dir's index (ls-files -s: "160000 <id>
 * <stage>\t<path>"), NUL-separated in *ret. */
static int gitlinks(const WsReport *rep, const char *dir, char **ret, size_t *ret_len) {
        WsGitCall c = { .cwd = dir, .stdout_fd = -1 };
        int r = ws_git_ok(rep, &c, (char *[]){ "ls-files", "-s", "-z", NULL });
        size_t n = 0;
        for (const char *s = c.out; r >= 0 && s < c.out + c.out_len; s += strlen(s) + 1) {
                const char *tab = strchr(s, '\t');
                if (!startswith(s, "160000 ") || !tab)
                        continue;
                size_t l = strlen(tab + 1) + 1;
                memmove(c.out + n, tab + 1, l); /* never ahead of s: the output only shrinks */
                n += l;
        }
        if (r >= 0) {
                *ret = TAKE_PTR(c.out);
                *ret_len = n;
        }
        ws_git_call_done(&c);
        return r;
}

/* submodule.<name>.active in the clone for each submodule the host's
 * repository has initialised (a submodule.<name>.url in its own config),
 * so git submodule in the guest sees them as the host does; the URL, often
 * a path of the host, stays there. */
static int mark_active(const WsReport *rep, const char *host_dir, const char *clone_dir) {
        WsGitCall c = { .cwd = host_dir, .stdout_fd = -1 };
        int r = ws_git(&c, (char *[]){ "config", "--local", "-z", "--get-regexp", "^submodule\\..*\\.url$", NULL });
        if (r != 0) { /* 1: none */
                ws_git_call_done(&c);
                return r < 0 ? r : 0;
        }
        WsGitCall set = { .cwd = clone_dir, .stdout_fd = -1 };
        for (char *s = c.out; r >= 0 && s < c.out + c.out_len; s += strlen(s) + 1) {
                s[strcspn(s, "\n")] = 0; /* "key\nvalue": the key */
                if (!endswith(s, ".url"))
                        continue;
                _cleanup_free_ char *key = NULL;
                if (asprintf(&key, "%.*s.active", (int) (strlen(s) - strlen(".url")), s) < 0)
                        r = -ENOMEM;
                else
                        r = ws_git_ok(rep, &set, (char *[]){ "config", key, "true", NULL });
                s += strlen(s) + 1; /* past the value */
                if (s > c.out + c.out_len)
                        break;
        }
        ws_git_call_done(&set);
        ws_git_call_done(&c);
        return r;
}

static int add_subs(const WsReport *rep, const char *host_top, const char *prefix, const char *clone_dir,
                    const char *tmp, unsigned depth, WsPushPlan *p);

/* One submodule, checked out at abs on the host: a clone of its HEAD in
 * tmp, its files, and its own submodules. */
static int add_one(const WsReport *rep, const char *abs, const char *rel, const char *tmp, unsigned depth,
                   WsPushPlan *p) {
        if (depth >= DEPTH_MAX || p->n_subs >= SUBS_MAX) {
                ws_fail(rep, "%s: more than %u submodules, or nested more than %u deep", rel, SUBS_MAX, DEPTH_MAX);
                return -E2BIG;
        }
        _cleanup_(ws_repo_done) WsRepo sub = {};
        _cleanup_free_ char *sha = NULL, *branch = NULL, *dir = NULL, *git = NULL, *path = NULL;
        int r = ws_repo_open(rep, abs, &sub);
        if (r >= 0)
                r = ws_repo_rev(rep, &sub, "HEAD^{commit}", &sha);
        if (r >= 0)
                r = ws_repo_branch(&sub, &branch);
        if (r < 0)
                return r;
        if (asprintf(&dir, "%s/sub-%zu", tmp, p->n_subs) < 0 || asprintf(&git, "%s/.git", dir) < 0 ||
            !(path = strdup(rel)))
                return -ENOMEM;
        if (mkdir(dir, 0700) < 0)
                return -errno;
        WsSub *subs = reallocarray(p->subs, p->n_subs + 1, sizeof(WsSub));
        if (!subs)
                return -ENOMEM;
        p->subs = subs;
        r = ws_make_clone(rep, &sub, sha, branch, false, dir);
        if (r >= 0)
                r = ws_list_files(rep, abs, true, rel, p);
        if (r < 0)
                return r;
        p->subs[p->n_subs++] = (WsSub){ .path = TAKE_PTR(path), .clone_git = TAKE_PTR(git) };
        return add_subs(rep, abs, rel, dir, tmp, depth + 1, p);
}

/* The submodules of the work tree host_top (at prefix in the copy, NULL
 * for the top), whose clone is in clone_dir. */
static int add_subs(const WsReport *rep, const char *host_top, const char *prefix, const char *clone_dir,
                    const char *tmp, unsigned depth, WsPushPlan *p) {
        _cleanup_free_ char *links = NULL;
        size_t len = 0;
        int r = gitlinks(rep, host_top, &links, &len);
        if (r < 0 || len == 0)
                return r;
        if ((r = mark_active(rep, host_top, clone_dir)) < 0)
                return r;
        for (const char *s = links; s < links + len; s += strlen(s) + 1) {
                _cleanup_free_ char *abs = NULL, *dotgit = NULL, *rel = NULL;
                if (asprintf(&abs, "%s/%s", host_top, s) < 0 || asprintf(&dotgit, "%s/.git", abs) < 0 ||
                    (prefix ? asprintf(&rel, "%s/%s", prefix, s) : asprintf(&rel, "%s", s)) < 0)
                        return -ENOMEM;
                struct stat st;
                if (lstat(dotgit, &st) < 0)
                        continue; /* not initialised: git leaves it empty */
                if ((r = add_one(rep, abs, rel, tmp, depth, p)) < 0)
                        return r;
        }
        return 0;
}

int ws_submodules_add(const WsReport *rep, const char *top, const char *tmp, WsPushPlan *p) {
        return add_subs(rep, top, NULL, tmp, tmp, 0, p);
}
