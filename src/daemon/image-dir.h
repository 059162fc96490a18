/* SPDX-License-Identifier: MIT */
#pragma once

/* <state>/images/<name>/: where a managed image keeps its files
 * (rootfs.ext4, and for OCI imports blobs.json, the cached blobs it came
 * from). Reached through the daemon's state directory fd only. Any thread. */

#include <jansson.h>

#include "daemon.h"
#include "store.h"
#include "undo.h"

/* Create images/<name> (0700; -EEXIST when it exists) and return an fd to
 * it; its removal is pushed onto undo. */
int image_dir_create(Daemon *d, const char *name, UndoStack *undo);

/* Record the blobs an import used (NULL-terminated digests) in blobs.json. */
void image_dir_write_blobs(int dirfd, char *const *blobs);

/* Remove a managed image's files and its directory (what is not in the
 * state directory is left alone, with a warning). */
void image_dir_remove(Daemon *d, const ImageRecord *img);

/* Every blob some image still names in its blobs.json: keep[digest] = true. */
void image_dirs_collect_blobs(Daemon *d, json_t *keep);

/* At start: remove directories no image row names, which an interrupted
 * import or build left (a row is only added once the files are complete). */
void image_dirs_sweep(Daemon *d, Store *s);
