/* SPDX-License-Identifier: MIT */
#pragma once

/* The pieces of a workspace copy that sync shares with the first copy. */

#include <stdbool.h>
#include <stddef.h>

#include "cp-stream.h"
#include "workspace-git.h"

typedef struct WsPushPlan {
        const char *cmd;
        int top_fd;            /* the files are read beneath it */
        const char *clone_git; /* a .git to send as ./.git, or NULL */
        char *list;            /* NUL-separated paths relative to top_fd */
        size_t list_len;
        size_t sent;
} WsPushPlan;

/* CpProduceFn: "." (the top), the .git, then the listed paths. */
int ws_produce(CpWriter *w, void *userdata);

/* Refresh the private index in state over the work tree (first read from
 * the tree-ish from, unless NULL) and write its tree: *ret its id. */
int ws_sent_tree(const char *cmd, const WsRepo *repo, const char *state, const char *from, char **ret);
