/* SPDX-License-Identifier: MIT */
/* Prepared workspaces (workspace.h, docs/workspaces.md): the first vm run
 * of a work tree whose setup ran keeps the prepared VM as a workspace
 * snapshot; vm.create restores it for a later run with the same work tree,
 * setup inputs, image and shape, and here the workspace is then only
 * synced, the setup skipped.
 *
 * The snapshot holds the guest's copy; what the host knew of it (the
 * record, the private index of what was sent) is kept beside, in
 * <state dir>/workspace-snapshots/<snapshot id>/, and becomes the new VM's
 * workspace state, so the sync finds what changed since the snapshot. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent-client.h"
#include "cmd-vm-guard.h"
#include "cmd-vm.h"
#include "file-tree.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"
#include "workspace-git.h"
#include "workspace-push.h"
#include "workspace.h"

#define KEPT_DIR "workspace-snapshots"
#define KEPT_LOG "setup.log"

void ws_prepared_done(WsPrepared *p) {
        free(p->top);
        free(p->key);
        *p = (WsPrepared){};
}

int ws_prepared_key(const char *cmd, const char *dir, WsPrepared *ret) {
        _cleanup_(ws_repo_done) WsRepo repo = {};
        _cleanup_(ws_setup_done) WsSetup s = {};
        int r = ws_repo_open(CLI_REPORT(cmd), dir, &repo);
        if (r < 0)
                return r;
        r = ws_setup_find(cmd, repo.top, true, &s);
        if (r < 0) {
                fprintf(stderr, "banger: %s: cannot read the setup of %s: %s\n", cmd, dir, strerror(-r));
                return r;
        }
        *ret = (WsPrepared){ .top = TAKE_PTR(repo.top), .key = TAKE_PTR(s.inputs_hash) };
        return 0;
}

static int kept_dir(Cli *cli, const char *snapshot_id, char **ret) {
        if (snapshot_id && !name_is_valid(snapshot_id))
                return -EINVAL;
        int r = asprintf(ret, "%s/" KEPT_DIR "%s%s", cli->paths.state_dir, snapshot_id ? "/" : "",
                         snapshot_id ? snapshot_id : "");
        return r < 0 ? -ENOMEM : 0;
}

/* Copy the directory src to dst (which must not exist) through a temporary
 * name beside it, so dst is whole or absent. */
static int copy_state(const char *src, const char *dst) {
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp", dst) < 0)
                return -ENOMEM;
        (void) rm_rf_at(AT_FDCWD, tmp);
        _cleanup_close_ int sfd = open_dir_nofollow(AT_FDCWD, src);
        if (sfd < 0)
                return sfd;
        if (mkdir(tmp, 0700) < 0)
                return -errno;
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, tmp);
        int r = dfd < 0 ? dfd : copy_tree_at(sfd, dfd, NULL, NULL);
        if (r >= 0 && rename(tmp, dst) < 0)
                r = -errno;
        if (r < 0)
                (void) rm_rf_at(AT_FDCWD, tmp);
        return r;
}

/* The setup's log goes with the kept state, so that vm workspace log of a
 * VM resumed from the snapshot prints the setup that prepared it. */
static void keep_log(Cli *cli, const char *vm_id, const char *kept) {
        _cleanup_free_ char *log = NULL;
        if (ws_setup_log_path(cli, vm_id, &log) < 0)
                return;
        _cleanup_close_ int fd = open(log, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, kept);
        if (fd >= 0 && dfd >= 0)
                (void) copy_file_at(fd, dfd, KEPT_LOG, 0600, NULL, NULL, NULL, NULL);
}

static void resume_log(Cli *cli, const char *vm_id, const char *state) {
        _cleanup_free_ char *from = path_join(state, KEPT_LOG), *to = NULL, *dir = NULL;
        if (!from || ws_setup_log_path(cli, vm_id, &to) < 0 || access(from, F_OK) < 0)
                return;
        dir = path_join(cli->paths.state_dir, "workspace-logs");
        if (dir && mkdir_p(dir, 0700) >= 0 && rename(from, to) >= 0)
                return;
        (void) unlink(from);
}

/* The kept states of snapshots that are gone (deleted, pruned, replaced);
 * not those of the last minutes, which another run may be keeping for a
 * snapshot made after our list. */
static bool kept_recently(int dfd, const char *name) {
        struct stat st;
        return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_mtime + 600 > time(NULL);
}

static void sweep_kept(Cli *cli, RpcClient *c) {
        _cleanup_free_ char *dir = NULL;
        json_t *res = NULL;
        if (kept_dir(cli, NULL, &dir) < 0 || cli_call(cli, c, "snapshot.list", NULL, &res) < 0)
                return;
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        _cleanup_(closedir_safep) DIR *d = NULL;
        if (dfd >= 0 && opendir_at(dfd, ".", &d) >= 0)
                for (struct dirent *de; (de = readdir(d));) {
                        bool known = false;
                        size_t i;
                        json_t *n;
                        json_array_foreach (json_object_get(res, "snapshots"), i, n)
                                known = known || streq(json_str(n, "id", ""), de->d_name);
                        if (!known && !streq(de->d_name, ".") && !streq(de->d_name, "..") &&
                            !kept_recently(dfd, de->d_name))
                                (void) rm_rf_at(dfd, de->d_name);
                }
        json_decref(res);
}

void vm_workspace_keep(Cli *cli, RpcClient *c, const char *cmd, const char *vm_id, const WsPrepared *p) {
        _cleanup_free_ char *state = NULL, *dst = NULL, *parent = NULL;
        json_t *snap = NULL;
        usec_t t0 = now_monotonic();
        fprintf(stderr, "setup: keeping the prepared VM as a workspace snapshot\n");
        json_t *params = json_pack("{s:s, s:s, s:s}", "vm", vm_id, "workspace", p->top, "setup_key", p->key);
        if (vm_call(cli, c, "vm.snapshot", params, NULL, &snap, NULL) < 0) {
                fprintf(stderr, "banger: %s: the next run of %s will run its setup again\n", cmd, p->top);
                return;
        }
        if (json_is_false(json_object_get(snap, "kept"))) { /* another run of the tree keeps the same */
                fprintf(stderr, "setup: not kept: %s\n", json_str(snap, "reason", "another run keeps the same"));
                json_decref(snap);
                return;
        }
        const char *id = json_str(snap, "id", "");
        int r = ws_state_dir(cli->paths.state_dir, vm_id, false, &state);
        if (r >= 0)
                r = kept_dir(cli, NULL, &parent);
        if (r >= 0)
                r = mkdir_p(parent, 0700);
        if (r >= 0)
                r = kept_dir(cli, id, &dst);
        if (r >= 0)
                r = copy_state(state, dst);
        if (r >= 0)
                keep_log(cli, vm_id, dst);
        if (r < 0)
                fprintf(stderr, "banger: %s: cannot keep the workspace's state with snapshot %s: %s\n", cmd,
                        json_str(snap, "name", id), strerror(-r));
        else
                fprintf(stderr,
                        "setup: kept as snapshot %s in %.1f s: the next 'vm run' of this work tree with the same "
                        "setup inputs, image and size starts from it\n",
                        json_str(snap, "name", id), (double) (now_monotonic() - t0) / USEC_PER_SEC);
        json_decref(snap);
        sweep_kept(cli, c);
}

/* The VM vm_id was restored from the snapshot: its workspace state is the
 * snapshot's, made the VM's; then sync what changed on the host since. */
static int workspace_resume(Cli *cli, RpcClient *c, const char *cmd, const char *vm_id, const char *snapshot_id,
                            char **ret_guest) {
        _cleanup_free_ char *kept = NULL, *state = NULL, *tree = NULL;
        _cleanup_(ws_record_done) WsRecord rec = {};
        _cleanup_(agent_client_freep) AgentClient *a = NULL;
        int r = kept_dir(cli, snapshot_id, &kept);
        if (r >= 0)
                r = access(kept, F_OK) < 0 ? -errno : 0;
        if (r >= 0) /* made with its parent, then replaced by the copy */
                r = ws_state_dir(cli->paths.state_dir, vm_id, true, &state);
        if (r >= 0)
                r = rm_rf_at(AT_FDCWD, state);
        if (r >= 0)
                r = copy_state(kept, state);
        if (r >= 0)
                resume_log(cli, vm_id, state);
        if (r >= 0)
                r = ws_record_load(state, &rec);
        if (r >= 0) {
                free(rec.vm_id);
                rec.vm_id = strdup(vm_id);
                r = rec.vm_id ? ws_record_save(state, &rec) : -ENOMEM;
        }
        if (r < 0) {
                fprintf(stderr, "banger: %s: cannot take over the workspace state of the snapshot: %s\n", cmd,
                        strerror(-r));
                return r;
        }
        (void) signal(SIGPIPE, SIG_IGN);
        r = vm_agent_client(cli, c, vm_id, &a);
        if (r >= 0)
                r = workspace_sync(a, CLI_REPORT(cmd), &rec, state, &tree);
        if (r < 0)
                return r;
        free(rec.tree);
        rec.tree = TAKE_PTR(tree);
        r = ws_record_save(state, &rec);
        if (r < 0)
                return r;
        return (*ret_guest = strdup(rec.guest)) ? 0 : -ENOMEM;
}

int vm_workspace_start(Cli *cli, RpcClient *c, const char *cmd, const char *vm_id, const WsStartOptions *o,
                       char **ret_guest) {
        if (o->restored) {
                int r = workspace_resume(cli, c, cmd, vm_id, json_str(o->restored, "id", ""), ret_guest);
                if (r >= 0) {
                        fprintf(stderr,
                                "setup: skipped: the VM resumed from workspace snapshot %s, prepared by the same "
                                "setup inputs (--refresh-setup runs the setup again)\n",
                                json_str(o->restored, "name", "?"));
                        return 0;
                }
                /* The guest has the old copy: copy it all again, keep the setup. */
                fprintf(stderr, "banger: %s: copying the whole work tree again\n", cmd);
                return vm_workspace_push(cli, c, cmd, vm_id, o->dir, NULL, ret_guest) < 0 ? -EIO : 0;
        }
        if (vm_workspace_push(cli, c, cmd, vm_id, o->dir, o->branch, ret_guest) < 0)
                return -EIO;
        if (o->no_setup || vm_run_guard_interrupted(o->guard))
                return 0;
        int r = vm_workspace_setup(cli, c, cmd, vm_id, o->dir, *ret_guest);
        if (r != 0)
                return r < 0 ? EXIT_FAIL : r;
        if (o->prepared && o->prepared->key && !vm_run_guard_interrupted(o->guard))
                vm_workspace_keep(cli, c, cmd, vm_id, o->prepared);
        return 0;
}
