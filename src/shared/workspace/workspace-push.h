/* SPDX-License-Identifier: MIT */
#pragma once

/* Copying a work tree into a VM and syncing it there, and the pieces of a
 * workspace copy that sync shares with the first copy. */

#include <stdbool.h>
#include <stddef.h>

#include "cp-stream.h"
#include "workspace-git.h"
#include "workspace-state.h"
#include "ws-report.h"

/* Copy the work tree at path (or the commit branch names) into the VM vm_id
 * at /root/<name>; says progress and failures through rep, writes the
 * record under state_root (ws_state_dir). *ret_guest: the guest path. */
int workspace_push(AgentClient *a, const WsReport *rep, const char *state_root, const char *vm_id, const char *path,
                   const char *branch, char **ret_guest);

/* Sync the VM's workspace with the host's work tree: only what changed is
 * copied, what was deleted is removed (through `rm` in the guest). */
int workspace_sync(AgentClient *a, const WsReport *rep, const WsRecord *rec, const char *state, char **ret_tree);

/* An initialised submodule of the work tree: its files are in the plan's
 * list (below path), and clone_git is sent as path/.git. */
typedef struct WsSub {
        char *path;      /* relative to the work tree's top */
        char *clone_git; /* a shallow clone's .git on the host */
} WsSub;

typedef struct WsPushPlan {
        const WsReport *rep;
        int top_fd;            /* the files are read beneath it */
        const char *clone_git; /* a .git to send as ./.git, or NULL */
        char *list;            /* NUL-separated paths relative to top_fd */
        size_t list_len;
        size_t sent;
        WsSub *subs; /* sent after the listed paths */
        size_t n_subs;
} WsPushPlan;

/* CpProduceFn: "." (the top), the .git, then the listed paths. */
int ws_produce(CpWriter *w, void *userdata);

/* The files to send from the work tree dir: what git shows there (with
 * untracked: tracked files and untracked ones it does not ignore), each
 * path prefixed with prefix (NULL: none), appended to p's list. */
int ws_list_files(const WsReport *rep, const char *dir, bool untracked, const char *prefix, WsPushPlan *p);

/* A shallow clone of sha from the work tree repo in dir, with the host's git
 * identity: its .git is what the guest gets; with checkout its files are
 * the ones sent. branch NULL: a detached HEAD. */
int ws_make_clone(const WsReport *rep, const WsRepo *repo, const char *sha, const char *branch, bool checkout,
                  const char *dir);

/* Add the initialised submodules of the work tree top (and theirs, below
 * them) to p: their files to its list and a clone of each one's HEAD,
 * made in directories under tmp, to its subs; top's own clone is tmp's
 * (ws_make_clone in tmp). Their gitlinks say where they are; one that is
 * not checked out on the host stays empty, as git leaves it. */
int ws_submodules_add(const WsReport *rep, const char *top, const char *tmp, WsPushPlan *p);
void ws_subs_free(WsPushPlan *p);

/* Refresh the private index in state over the work tree (first read from
 * the tree-ish from, unless NULL) and write its tree: *ret its id. */
int ws_sent_tree(const WsReport *rep, const WsRepo *repo, const char *state, const char *from, char **ret);
