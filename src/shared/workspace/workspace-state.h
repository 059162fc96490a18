/* SPDX-License-Identifier: MIT */
#pragma once

/* What the host keeps of a VM's workspace (docs/workspaces.md): a git work
 * tree copied into a VM at /root/<name> through the agent's files-put
 * stream, its changes brought back as a patch, and copied again when it
 * changed.
 *
 * What banger knows of a VM's workspace stays on the host, never in the
 * guest (a guest could rewrite it to point an --apply at another checkout):
 * <state dir>/workspaces/<vm id>/ holds record.json, a private git index of
 * what was sent (so a sync finds what changed by git's own stat cache) and
 * an object directory for the blobs of that tree that the repository does
 * not have yet (untracked or modified files). */

#include <stdbool.h>

typedef struct WsRecord {
        char *vm_id;
        char *host;   /* the work tree's top on the host */
        char *guest;  /* its path in the guest: /root/<name> */
        char *base;   /* the commit it started from */
        char *branch; /* --branch REF, or NULL for the working tree */
        char *tree;   /* the tree last sent: what export diffs against */
} WsRecord;
void ws_record_done(WsRecord *r);

/* <state_root>/workspaces/<vm id> (state_root: banger's state directory),
 * created 0700 when create is true. */
int ws_state_dir(const char *state_root, const char *vm_id, bool create, char **ret);
int ws_record_load(const char *dir, WsRecord *ret);
int ws_record_save(const char *dir, const WsRecord *r);

/* A private temporary directory (under $TMPDIR or /tmp) and its removal. */
int ws_temp_dir(char **ret);
void ws_temp_dir_remove(char **dir);
