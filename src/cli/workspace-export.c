/* SPDX-License-Identifier: MIT */
/* The guest's changes to its workspace as a git patch (workspace.h). The
 * guest's tree comes back through the agent's files-get stream into a
 * private temporary directory; the host's git (never the guest's .git, whose
 * config a guest could arm with hooks or an fsmonitor command) indexes it
 * with a private index and object directory and diffs it against the tree
 * the workspace started from. So a guest needs no git, and commits made in
 * the guest count as changes like any others. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "cp-stream.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"
#include "workspace-git.h"
#include "workspace.h"

#define CONFLICTS_SHOWN 20

/* Index the guest's tree (in tmp/tree) over base and diff it: the patch. */
static int diff_guest(const char *cmd, const WsRepo *repo, const char *state, const char *tmp, const char *base,
                      WsGitCall *c) {
        _cleanup_free_ char *tree = NULL, *index = NULL, *objects = NULL, *sent = NULL;
        if (asprintf(&tree, "%s/tree", tmp) < 0 || asprintf(&index, "%s/index", tmp) < 0 ||
            asprintf(&objects, "%s/objects", tmp) < 0 || asprintf(&sent, "%s/objects", state) < 0)
                return -ENOMEM;
        if (mkdir(objects, 0700) < 0)
                return -errno;
        _cleanup_strv_free_ char **env = ws_repo_private_env(repo, tree, index, objects, sent);
        if (!env)
                return -ENOMEM;
        *c = (WsGitCall){ .cwd = tree, .env = env, .stdout_fd = -1 };
        int r = ws_git_ok(CLI_REPORT(cmd), c, (char *[]){ "read-tree", (char *) base, NULL });
        if (r >= 0)
                r = ws_git_ok(CLI_REPORT(cmd), c, (char *[]){ "add", "-A", "--", ".", NULL });
        if (r >= 0)
                r = ws_git_ok(CLI_REPORT(cmd), c,
                              (char *[]){ "diff", "--cached", "--binary", "--full-index", "--no-ext-diff",
                                          "--no-textconv", "--no-color", "--no-relative", (char *) base, NULL });
        c->env = NULL;
        return r;
}

/* The paths git apply names in its complaints ("error: patch failed:
 * a.c:3", "error: a.c: patch does not apply", "error: b: already exists
 * in working directory"), each once. */
static void print_conflicts(const char *err) {
        _cleanup_free_ char *copy = strdup(err);
        char *save = NULL, *seen[CONFLICTS_SHOWN];
        size_t n = 0;
        for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; l && n < CONFLICTS_SHOWN;
             l = strtok_r(NULL, "\n", &save)) {
                const char *p = startswith(l, "error: ");
                if (!p)
                        continue;
                char *path = (char *) (startswith(p, "patch failed: ") ?: p);
                char *end = path == p ? strstr(path, ": ") : strrchr(path, ':');
                if (!end)
                        continue;
                *end = 0;
                bool dup = false;
                for (size_t i = 0; i < n; i++)
                        dup = dup || streq(seen[i], path);
                if (!dup) {
                        seen[n++] = path;
                        fprintf(stderr, "  %s\n", path);
                }
        }
}

static int apply_patch(const char *cmd, const WsRecord *rec, const char *patch) {
        WsGitCall c = { .cwd = rec->host, .stdout_fd = -1 };
        int r = ws_git(&c, (char *[]){ "apply", "--check", (char *) patch, NULL });
        if (r > 0) {
                fprintf(stderr,
                        "banger: %s: refused: the guest's changes do not apply cleanly to %s, nothing was changed; "
                        "conflicts in:\n",
                        cmd, rec->host);
                print_conflicts(c.err);
                fprintf(stderr, "(-o FILE saves the patch to merge by hand)\n");
                r = -EEXIST;
        } else if (r == 0)
                r = ws_git_ok(CLI_REPORT(cmd), &c, (char *[]){ "apply", (char *) patch, NULL });
        else
                fprintf(stderr, "banger: %s: cannot run git: %s\n", cmd, strerror(-r));
        ws_git_call_done(&c);
        return r;
}

/* -o FILE, written atomically: a temporary file beside it, renamed. */
static int write_output(const char *cmd, const char *path, const char *data, size_t len) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        char *slash = strrchr(copy, '/');
        const char *name = slash ? slash + 1 : copy;
        if (slash)
                *slash = 0;
        _cleanup_close_ int dfd = open(slash ? (*copy ? copy : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = dfd < 0 ? -errno : write_file_atomic_at(dfd, name, data, len, 0644);
        if (r < 0)
                fprintf(stderr, "banger: %s: %s: %s\n", cmd, path, strerror(-r));
        return r;
}

static int deliver(const char *cmd, const WsRecord *rec, const char *tmp, const WsExportOptions *o,
                   const WsGitCall *c) {
        if (o->output)
                return write_output(cmd, o->output, c->out, c->out_len);
        if (!o->apply)
                return loop_write(STDOUT_FILENO, c->out, c->out_len);
        if (c->out_len == 0) {
                fprintf(stderr, "workspace: no changes in the guest\n");
                return 0;
        }
        _cleanup_free_ char *patch = NULL;
        _cleanup_close_ int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || asprintf(&patch, "%s/changes.patch", tmp) < 0)
                return -ENOMEM;
        int r = write_file_atomic_at(dfd, "changes.patch", c->out, c->out_len, 0600);
        if (r >= 0)
                r = apply_patch(cmd, rec, patch);
        if (r >= 0)
                fprintf(stderr, "workspace: applied the guest's changes to %s\n", rec->host);
        return r;
}

int workspace_export(AgentClient *a, const char *cmd, const WsRecord *rec, const char *state,
                     const WsExportOptions *o) {
        _cleanup_(ws_repo_done) WsRepo repo = {};
        _cleanup_(ws_temp_dir_remove) char *tmp = NULL;
        _cleanup_free_ char *base = NULL, *tree = NULL, *rev = NULL;
        int r = ws_repo_open(CLI_REPORT(cmd), rec->host, &repo);
        if (r < 0)
                return r;
        if (o->base_commit && (asprintf(&rev, "%s^{tree}", o->base_commit) < 0 ||
                               (r = ws_repo_rev(CLI_REPORT(cmd), &repo, rev, &base)) < 0))
                return r < 0 ? r : -ENOMEM;
        if ((r = ws_temp_dir(&tmp)) < 0 || asprintf(&tree, "%s/tree", tmp) < 0) {
                fprintf(stderr, "banger: %s: cannot make a temporary directory: %s\n", cmd, strerror(-r));
                return r < 0 ? r : -ENOMEM;
        }
        r = cp_stream_get(a, CLI_REPORT(cmd), rec->guest, AGENT_FILES_FLAG_CONTENTS, tree);
        if (r < 0)
                return r;
        WsGitCall c = {};
        r = diff_guest(cmd, &repo, state, tmp, base ? base : rec->tree, &c);
        if (r >= 0)
                r = deliver(cmd, rec, tmp, o, &c);
        ws_git_call_done(&c);
        return r;
}
