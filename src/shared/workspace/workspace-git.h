/* SPDX-License-Identifier: MIT */
#pragma once

/* The host's git, for workspaces: always through the spawn module with an
 * argv (never a shell), in a clean environment (PATH, HOME, LC_ALL=C and
 * what the caller adds), so a GIT_DIR or GIT_INDEX_FILE of the user's shell
 * never leaks in. */

#include <stdbool.h>
#include <stddef.h>

#include "ws-report.h"

#define WS_GIT_OUTPUT_MAX (256u << 20)

typedef struct WsGitCall {
        const char *cwd;  /* required */
        char *const *env; /* extra NAME=value entries, or NULL */
        int stdout_fd;    /* >= 0: stdout goes there instead of *ret_out */
        char *out;        /* stdout (NUL-terminated), when captured */
        size_t out_len;
        char err[1024]; /* the first lines of stderr, for messages */
} WsGitCall;

/* Run git with args (NULL-terminated, without "git"). Returns git's exit
 * code (>= 0), or -errno when it could not run or was killed. */
int ws_git(WsGitCall *c, char *const *args);
void ws_git_call_done(WsGitCall *c);

/* A work tree as git sees it. */
typedef struct WsRepo {
        char *top;     /* absolute top directory of the work tree */
        char *git_dir; /* absolute */
        char *objects; /* absolute object directory (the common dir's) */
        char *name;    /* the top's last component */
} WsRepo;
void ws_repo_done(WsRepo *r);

/* The git work tree whose top is path; says why not through rep. */
int ws_repo_open(const WsReport *rep, const char *path, WsRepo *ret);

/* Resolve rev (e.g. "HEAD", "main^{tree}") to a full object id. */
int ws_repo_rev(const WsReport *rep, const WsRepo *r, const char *rev, char **ret);

/* `git config --get key` in the repository (its own, global or system
 * value); *ret NULL when unset. */
int ws_repo_config(const WsRepo *r, const char *key, char **ret);

/* The environment for working on r's objects with a private index and a
 * private object directory (objects that r has are read from it, new ones go
 * to objects_dir), over the work tree work_tree. Free with strv_free. */
char **ws_repo_private_env(const WsRepo *r, const char *work_tree, const char *index, const char *objects_dir,
                           const char *more_objects);

/* The short name of the branch HEAD is on, NULL when detached. */
int ws_repo_branch(const WsRepo *r, char **ret);

/* ws_git() that says "git VERB: reason" through rep when git fails;
 * returns 0 or -EIO (-errno when git could not run). */
int ws_git_ok(const WsReport *rep, WsGitCall *c, char *const *args);
