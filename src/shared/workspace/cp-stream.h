/* SPDX-License-Identifier: MIT */
#pragma once

/* Files between the host and a guest as a tar stream (pax) on one agent
 * stream: the host side is libarchive in a thread of ours, joined to the
 * stream by a pipe, so nothing is held whole in memory; the guest side is
 * the agent (docs/agent-protocol.md, "files"). vm cp and the workspaces
 * both copy through here. Both sides apply the rules of agent-paths.h. */

#include <stdint.h>

#include "ws-report.h"

typedef struct AgentClient AgentClient;
typedef struct CpWriter CpWriter;

/* Writes the stream's entries with cp_writer_*(); returns 0, or -errno
 * after cp_writer_fail() said why. Runs in the writer thread. */
typedef int (*CpProduceFn)(CpWriter *w, void *userdata);

/* The tree at src (a symlink is stored, never followed) as top and top/... */
int cp_writer_tree(CpWriter *w, const char *src, const char *top);
/* One file, symlink or directory at rel beneath dir_fd, for a stream of a
 * directory's contents (top "."; rel "." is the top itself): named "./rel",
 * its parents need not be in the stream. Nothing is followed: 1 when it was
 * skipped (a symlink on the way to it, or one pointing out of the tree;
 * cp_writer_why() says which), 0 when written or gone, -errno. */
int cp_writer_entry(CpWriter *w, int dir_fd, const char *rel);
const char *cp_writer_why(const CpWriter *w);
int cp_writer_fail(CpWriter *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stream what fn writes to guest_path (the agent's files-put). Failures are
 * said through rep (ws_fail), the bytes moved through its progress;
 * returns 0 or -errno. */
int cp_stream_put(AgentClient *a, const WsReport *rep, const char *guest_path, CpProduceFn fn, void *userdata);
/* The host path src (SRC, SRC/ or SRC/. for its contents) to guest_path. */
int cp_stream_put_path(AgentClient *a, const WsReport *rep, const char *src, const char *guest_path);
/* guest_path (flags: AGENT_FILES_FLAG_*) to the host path dest, with the
 * cp -r rules. Entries are created relative to dest's directory, which is
 * our working directory meanwhile (restored afterwards). */
int cp_stream_get(AgentClient *a, const WsReport *rep, const char *guest_path, uint32_t flags, const char *dest);
