/* SPDX-License-Identifier: MIT */
#pragma once

/* Workspaces (docs/workspaces.md), the CLI's part: the verbs, the setup
 * script, prepared workspaces and export. The copy, the sync and the record
 * the host keeps are src/shared/workspace's (workspace-push.h,
 * workspace-state.h). */

#include <stdbool.h>

#include "cli.h"
#include "workspace-report.h"
#include "workspace-state.h"

typedef struct AgentClient AgentClient;

typedef struct WsExportOptions {
        const char *base_commit; /* NULL: the tree last sent */
        const char *output;      /* a file, or NULL: stdout */
        bool apply;              /* to rec->host instead */
} WsExportOptions;
/* The guest's changes as a binary git patch. */
int workspace_export(AgentClient *a, const char *cmd, const WsRecord *rec, const char *state, const WsExportOptions *o);

/* For vm create and vm run (cmd-workspace.c): check DIR (a work tree's
 * top, with a commit: HEAD or branch) before the VM is made; copy it once the VM runs (*ret_guest: where, may be NULL);
 * forget the record of a VM that vm run --rm deletes. Print why on failure. */
int workspace_check(const char *cmd, const char *dir, const char *branch);
int vm_workspace_push(Cli *cli, RpcClient *c, const char *cmd, const char *vm_id, const char *dir, const char *branch,
                      char **ret_guest);
void vm_workspace_forget(Cli *cli, const char *vm_id);

/* A workspace's setup (workspace-setup.c): an executable .banger/setup and
 * the mise files (.mise.toml, .tool-versions) in the work tree's top. */
typedef struct WsSetup {
        bool script;       /* .banger/setup, executable */
        bool mise;         /* a mise file: `mise install` first */
        char *inputs_hash; /* sha256 (hex) of the setup's inputs, when asked */
} WsSetup;
void ws_setup_done(WsSetup *s);
#define WS_SETUP_GUEST_LOG "/var/log/banger-setup.log"
/* What setup top has (nothing: both false); with want_hash the hash of its
 * inputs: the mise files, the setup, and the paths its "# banger-inputs:"
 * lines name (files, or directories for the files in them); a setup that
 * is not executable is said only without want_hash. */
int ws_setup_find(const char *cmd, const char *top, bool want_hash, WsSetup *ret);
/* Run the setup as root in guest, its output to our stderr and to the log
 * <state dir>/workspace-logs/<vm id>.log (then copied to WS_SETUP_GUEST_LOG).
 * *ret_status: the setup's exit code (128+N for signal N). */
int workspace_setup_run(Cli *cli, AgentClient *a, const char *cmd, const char *vm_id, const char *guest,
                        const WsSetup *s, int *ret_status, char **ret_log);
int ws_setup_log_path(Cli *cli, const char *vm_id, char **ret);
/* For vm create and vm run: find and run DIR's setup in the VM's copy at
 * guest. Returns 0 when there was none or it succeeded; the setup's exit
 * code (> 0) after saying it failed and where its log is; -errno. */
int vm_workspace_setup(Cli *cli, RpcClient *c, const char *cmd, const char *vm_id, const char *dir, const char *guest);

/* Prepared workspaces (workspace-prepared.c). The work tree's top and the
 * hash of its setup's inputs (NULL: it has no setup), which vm.create is
 * given to restore a workspace snapshot the same inputs prepared. */
typedef struct WsPrepared {
        char *top;
        char *key;
} WsPrepared;
void ws_prepared_done(WsPrepared *p);
int ws_prepared_key(const char *cmd, const char *dir, WsPrepared *ret);
/* After a setup that succeeded: keep the VM as the work tree's workspace
 * snapshot (a failure is said, and is no failure of the run). */
void vm_workspace_keep(Cli *cli, RpcClient *c, const char *cmd, const char *vm_id, const WsPrepared *p);

typedef struct VmRunGuard VmRunGuard;
typedef struct WsStartOptions {
        const char *dir, *branch;
        bool no_setup;
        const WsPrepared *prepared; /* NULL or no key: no snapshot is kept */
        json_t *restored;           /* vm.create's workspace_snapshot: the VM resumed from it */
        VmRunGuard *guard;          /* vm run: stop between steps once interrupted */
} WsStartOptions;
/* For vm create and vm run, once the VM runs: its workspace copied (or,
 * restored, synced) and its setup run (not when restored), then kept as a
 * workspace snapshot when o->prepared has a key. 0; -errno when the copy
 * failed (said); the setup's exit code (> 0) when it failed (said). */
int vm_workspace_start(Cli *cli, RpcClient *c, const char *cmd, const char *vm_id, const WsStartOptions *o,
                       char **ret_guest);

/* The CLI verbs: banger vm workspace export|sync|log. */
int vm_workspace_cmd(Cli *cli, int argc, char **argv);
