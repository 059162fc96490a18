/* SPDX-License-Identifier: MIT */
/* Copying a work tree into a VM (workspace-push.h): the files git would show
 * (tracked, and untracked ones it does not ignore) or, with --branch, the
 * files of a commit, plus a shallow clone's .git so that git status, log
 * and diff work in the guest; all in one tar stream through the agent. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "cp-stream.h"
#include "macro.h"
#include "string-util.h"
#include "workspace-git.h"
#include "workspace-push.h"

/* ---- the stream ---- */

int ws_produce(CpWriter *w, void *userdata) {
        WsPushPlan *p = userdata;
        int r = cp_writer_entry(w, p->top_fd, ".");
        if (r < 0)
                return r;
        if (p->clone_git && (r = cp_writer_tree(w, p->clone_git, "./.git")) < 0)
                return r;
        for (const char *s = p->list; p->list && s < p->list + p->list_len; s += strlen(s) + 1) {
                if (!*s || streq(s, ".git") || startswith(s, ".git/"))
                        continue;
                r = cp_writer_entry(w, p->top_fd, s);
                if (r < 0)
                        return r;
                if (r > 0)
                        ws_fail(p->rep, "skipped %s", cp_writer_why(w));
                p->sent += r == 0;
        }
        for (size_t i = 0; i < p->n_subs; i++) {
                _cleanup_free_ char *top = NULL;
                if (asprintf(&top, "./%s/.git", p->subs[i].path) < 0)
                        return -ENOMEM;
                if ((r = cp_writer_tree(w, p->subs[i].clone_git, top)) < 0)
                        return r;
        }
        return 0;
}

/* ---- on the host ---- */

/* The tree of what is sent from a work tree, through a private index (its
 * stat cache makes the next sync cheap) and object directory. */
int ws_sent_tree(const WsReport *rep, const WsRepo *repo, const char *state, const char *from, char **ret) {
        _cleanup_free_ char *index = NULL, *objects = NULL;
        if (asprintf(&index, "%s/index", state) < 0 || asprintf(&objects, "%s/objects", state) < 0)
                return -ENOMEM;
        if (mkdir(objects, 0700) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_strv_free_ char **env = ws_repo_private_env(repo, repo->top, index, objects, NULL);
        if (!env)
                return -ENOMEM;
        WsGitCall c = { .cwd = repo->top, .env = env, .stdout_fd = -1 };
        int r = from ? ws_git_ok(rep, &c, (char *[]){ "read-tree", (char *) from, NULL }) : 0;
        if (r >= 0)
                r = ws_git_ok(rep, &c, (char *[]){ "add", "-A", "--", ".", NULL });
        if (r >= 0)
                r = ws_git_ok(rep, &c, (char *[]){ "write-tree", NULL });
        if (r >= 0 && !(*ret = strndup(c.out, strcspn(c.out, "\n"))))
                r = -ENOMEM;
        ws_git_call_done(&c);
        return r;
}

int ws_make_clone(const WsReport *rep, const WsRepo *repo, const char *sha, const char *branch, bool checkout,
                  const char *dir) {
        _cleanup_free_ char *url = NULL, *name = NULL, *email = NULL;
        if (asprintf(&url, "file://%s", repo->top) < 0)
                return -ENOMEM;
        WsGitCall c = { .cwd = dir, .stdout_fd = -1 };
        int r = ws_git_ok(rep, &c, (char *[]){ "init", "-q", "-b", (char *) (branch ?: "workspace"), ".", NULL });
        if (r >= 0)
                r = ws_git_ok(rep, &c,
                              (char *[]){ "fetch", "-q", "--depth", "1", "--no-tags", url, (char *) sha, NULL });
        if (r >= 0)
                r = ws_git_ok(rep, &c,
                              branch ? (char *[]){ "update-ref", "HEAD", (char *) sha, NULL }
                                     : (char *[]){ "update-ref", "--no-deref", "HEAD", (char *) sha, NULL });
        if (r >= 0)
                r = ws_git_ok(rep, &c,
                              checkout ? (char *[]){ "reset", "-q", "--hard", NULL }
                                       : (char *[]){ "read-tree", "HEAD", NULL });
        if (r >= 0 && (r = ws_repo_config(repo, "user.name", &name)) >= 0 && name)
                r = ws_git_ok(rep, &c, (char *[]){ "config", "user.name", name, NULL });
        if (r >= 0 && (r = ws_repo_config(repo, "user.email", &email)) >= 0 && email)
                r = ws_git_ok(rep, &c, (char *[]){ "config", "user.email", email, NULL });
        ws_git_call_done(&c);
        if (r >= 0) {
                _cleanup_free_ char *fh = NULL;
                if (asprintf(&fh, "%s/.git/FETCH_HEAD", dir) >= 0)
                        (void) unlink(fh); /* it names the host's path */
        }
        return r;
}

static int append_prefixed(WsPushPlan *p, const char *prefix, const char *out, size_t len) {
        size_t plen = prefix ? strlen(prefix) + 1 : 0, n = 0;
        for (const char *s = out; s < out + len; s += strlen(s) + 1)
                n++;
        char *list = realloc(p->list, p->list_len + len + n * plen + 1);
        if (!list)
                return -ENOMEM;
        p->list = list;
        for (const char *s = out; s < out + len; s += strlen(s) + 1) {
                if (prefix)
                        p->list_len += sprintf(list + p->list_len, "%s/", prefix);
                size_t l = strlen(s) + 1;
                memcpy(list + p->list_len, s, l);
                p->list_len += l;
        }
        return 0;
}

/* What git shows in the work tree dir (-co: tracked and untracked,
 * --exclude-standard: not the ignored ones). */
int ws_list_files(const WsReport *rep, const char *dir, bool untracked, const char *prefix, WsPushPlan *p) {
        WsGitCall c = { .cwd = dir, .stdout_fd = -1 };
        int r = ws_git_ok(rep, &c,
                          untracked ? (char *[]){ "ls-files", "-co", "--exclude-standard", "-z", NULL }
                                    : (char *[]){ "ls-files", "-z", NULL });
        if (r >= 0)
                r = append_prefixed(p, prefix, c.out, c.out_len);
        ws_git_call_done(&c);
        return r;
}

/* The clone's branch: the host's (or --branch's when it is a branch). */
static int clone_branch(const WsRepo *repo, const char *ref, char **ret) {
        if (!ref)
                return ws_repo_branch(repo, ret);
        _cleanup_free_ char *full = NULL;
        if (asprintf(&full, "refs/heads/%s", ref) < 0)
                return -ENOMEM;
        WsGitCall c = { .cwd = repo->top, .stdout_fd = -1 };
        int r = ws_git(&c, (char *[]){ "rev-parse", "--verify", "--quiet", full, NULL });
        ws_git_call_done(&c);
        *ret = r == 0 ? strdup(ref) : NULL;
        return r < 0 ? r : 0;
}

static void plan_done(WsPushPlan *p) {
        free(p->list);
        safe_close(p->top_fd);
        ws_subs_free(p);
}

/* Everything on the host before the copy: the record's commit and tree, the
 * clone in tmp, and the plan of what is sent. */
static int prepare(const WsReport *rep, const WsRepo *repo, const char *state, const char *ref, const char *tmp,
                   WsRecord *rec, WsPushPlan *p) {
        _cleanup_free_ char *rev = NULL, *branch = NULL, *tree_rev = NULL;
        if (asprintf(&rev, "%s^{commit}", ref ? ref : "HEAD") < 0)
                return -ENOMEM;
        int r = ws_repo_rev(rep, repo, rev, &rec->base);
        if (r < 0)
                return r;
        if (ref) {
                r = asprintf(&tree_rev, "%s^{tree}", rec->base) < 0 ? -ENOMEM
                                                                    : ws_repo_rev(rep, repo, tree_rev, &rec->tree);
        } else
                r = ws_sent_tree(rep, repo, state, rec->base, &rec->tree);
        if (r >= 0)
                r = clone_branch(repo, ref, &branch);
        if (r >= 0)
                r = ws_make_clone(rep, repo, rec->base, branch ? branch : "workspace", ref != NULL, tmp);
        if (r < 0)
                return r;
        const char *files_from = ref ? tmp : repo->top;
        p->top_fd = open(files_from, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (p->top_fd < 0)
                return -errno;
        r = ws_list_files(rep, files_from, !ref, NULL, p);
        /* --branch copies a commit's files: no submodule is checked out in it. */
        if (r >= 0 && !ref)
                r = ws_submodules_add(rep, repo->top, tmp, p);
        return r;
}

int workspace_push(AgentClient *a, const WsReport *rep, const char *state_root, const char *vm_id, const char *path,
                   const char *branch, char **ret_guest) {
        _cleanup_(ws_repo_done) WsRepo repo = {};
        _cleanup_(ws_record_done) WsRecord rec = {};
        _cleanup_free_ char *state = NULL, *clone_git = NULL;
        _cleanup_(ws_temp_dir_remove) char *tmp = NULL;
        int r = ws_repo_open(rep, path, &repo);
        if (r < 0)
                return r;
        if ((r = ws_state_dir(state_root, vm_id, true, &state)) < 0 || (r = ws_temp_dir(&tmp)) < 0) {
                ws_fail(rep, "cannot make the workspace's state: %s", strerror(-r));
                return r;
        }
        rec.vm_id = strdup(vm_id);
        rec.host = strdup(repo.top);
        rec.branch = branch ? strdup(branch) : NULL;
        if (!rec.vm_id || !rec.host || (branch && !rec.branch) || asprintf(&rec.guest, "/root/%s", repo.name) < 0 ||
            asprintf(&clone_git, "%s/.git", tmp) < 0)
                return -ENOMEM;
        WsPushPlan p = { .rep = rep, .top_fd = -EBADF, .clone_git = clone_git };
        r = prepare(rep, &repo, state, branch, tmp, &rec, &p);
        if (r >= 0)
                r = cp_stream_put(a, rep, rec.guest, ws_produce, &p);
        if (r >= 0 && (r = ws_record_save(state, &rec)) < 0)
                ws_fail(rep, "cannot save the workspace's record in %s: %s", state, strerror(-r));
        if (r >= 0)
                ws_note(rep, "workspace: %s (%s) -> %s, %zu files", repo.top, branch ? branch : "working tree",
                        rec.guest, p.sent);
        plan_done(&p);
        if (r >= 0 && ret_guest)
                *ret_guest = TAKE_PTR(rec.guest);
        return r;
}

/* ---- sync ---- */

#define RM_BATCH 256

/* Remove paths (NUL-separated, relative) in the guest's workspace. */
static int guest_remove(AgentClient *a, const WsReport *rep, const char *guest, const char *list, size_t len) {
        const char *s = list;
        while (s < list + len) {
                char *argv[RM_BATCH + 4] = { "rm", "-f", "--" };
                size_t n = 3;
                for (; s < list + len && n < RM_BATCH + 3; s += strlen(s) + 1)
                        argv[n++] = (char *) s;
                argv[n] = NULL;
                AgentExecOptions o = { .argv = argv,
                                       .cwd = guest,
                                       .stdin_fd = -1,
                                       .stdout_fd = -1,
                                       .stderr_fd = rep->stderr_fd,
                                       .signal_fd = -1,
                                       .tty_fd = -1 };
                AgentExecResult res = {};
                int r = agent_client_exec(a, &o, 60 * USEC_PER_SEC, &res);
                if (r < 0 || res.kind != AGENT_EXIT_CODE || res.code != 0) {
                        ws_fail(rep, "cannot remove deleted files in the guest (rm: %s)",
                                r < 0 ? strerror(-r) : "failed");
                        return r < 0 ? r : -EIO;
                }
        }
        return 0;
}

/* diff-tree's "-z --name-status" output split in what to remove and what
 * to copy, each NUL-separated. */
static int split_changes(const char *out, size_t len, WsPushPlan *copy, char **ret_del, size_t *ret_del_len) {
        _cleanup_free_ char *del = malloc(len + 1), *put = malloc(len + 1);
        size_t nd = 0, np = 0;
        if (!del || !put)
                return -ENOMEM;
        for (const char *s = out; s < out + len;) {
                const char *status = s;
                s += strlen(s) + 1;
                if (s >= out + len)
                        break;
                size_t l = strlen(s) + 1;
                if (status[0] == 'D') {
                        memcpy(del + nd, s, l);
                        nd += l;
                } else {
                        memcpy(put + np, s, l);
                        np += l;
                }
                s += l;
        }
        copy->list = TAKE_PTR(put);
        copy->list_len = np;
        *ret_del = TAKE_PTR(del);
        *ret_del_len = nd;
        return 0;
}

static int changes(const WsReport *rep, const WsRepo *repo, const char *state, const char *from, const char *to,
                   WsPushPlan *copy, char **ret_del, size_t *ret_del_len) {
        _cleanup_free_ char *index = NULL, *objects = NULL;
        if (asprintf(&index, "%s/index", state) < 0 || asprintf(&objects, "%s/objects", state) < 0)
                return -ENOMEM;
        _cleanup_strv_free_ char **env = ws_repo_private_env(repo, repo->top, index, objects, NULL);
        if (!env)
                return -ENOMEM;
        WsGitCall c = { .cwd = repo->top, .env = env, .stdout_fd = -1 };
        int r = ws_git_ok(rep, &c,
                          (char *[]){ "diff-tree", "-r", "-z", "--no-renames", "--name-status", (char *) from,
                                      (char *) to, NULL });
        if (r >= 0)
                r = split_changes(c.out, c.out_len, copy, ret_del, ret_del_len);
        ws_git_call_done(&c);
        return r;
}

int workspace_sync(AgentClient *a, const WsReport *rep, const WsRecord *rec, const char *state, char **ret_tree) {
        if (rec->branch) {
                ws_fail(rep,
                        "the workspace holds the commit %s (--branch), not a work tree: "
                        "nothing to sync",
                        rec->branch);
                return -EINVAL;
        }
        _cleanup_(ws_repo_done) WsRepo repo = {};
        _cleanup_free_ char *tree = NULL, *del = NULL;
        int r = ws_repo_open(rep, rec->host, &repo);
        if (r >= 0)
                r = ws_sent_tree(rep, &repo, state, NULL, &tree);
        if (r < 0)
                return r;
        WsPushPlan p = { .rep = rep, .top_fd = -EBADF };
        size_t del_len = 0;
        if (!streq(tree, rec->tree) && (r = changes(rep, &repo, state, rec->tree, tree, &p, &del, &del_len)) < 0)
                return r;
        if (del_len > 0)
                r = guest_remove(a, rep, rec->guest, del, del_len);
        if (r >= 0 && p.list_len > 0) {
                p.top_fd = open(repo.top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                r = p.top_fd < 0 ? -errno : cp_stream_put(a, rep, rec->guest, ws_produce, &p);
        }
        size_t removed = 0;
        for (const char *s = del; s && s < del + del_len; s += strlen(s) + 1)
                removed++;
        if (r >= 0)
                ws_note(rep, "workspace: %s -> %s, %zu files copied, %zu removed", repo.top, rec->guest, p.sent,
                        removed);
        plan_done(&p);
        if (r >= 0)
                *ret_tree = TAKE_PTR(tree);
        return r;
}
