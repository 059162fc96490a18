/* SPDX-License-Identifier: MIT */
#pragma once

/* The method tables the daemon serves, one per file (methods-*.c), each
 * {NULL}-terminated. daemon.c hands them to the server. */

#include "progress.h"
#include "rpc-method.h"

extern const RpcMethod daemon_methods[];       /* daemon.*: methods-daemon.c */
extern const RpcMethod vm_methods[];           /* vm.create, start ... prune: methods-vm.c */
extern const RpcMethod vm_query_methods[];     /* vm.show, logs, ports ... set: methods-vm-query.c */
extern const RpcMethod vm_port_methods[];      /* vm.port.add, remove, list: methods-vm-port.c */
extern const RpcMethod snapshot_methods[];     /* vm.snapshot, vm.restore, snapshot.*: methods-snapshot.c */
extern const RpcMethod kernel_methods[];       /* kernel.*: methods-kernel.c */
extern const RpcMethod image_methods[];        /* image.register ... promote: methods-image.c */
extern const RpcMethod image_import_methods[]; /* image.import, build, cache_prune: methods-image-import.c */
extern const RpcMethod catalog_methods[];      /* image.bundle, kernel.bundle: methods-catalog.c */
extern const RpcMethod catalog_pull_methods[]; /* catalog.list, image.pull, kernel.pull: methods-catalog-pull.c */
extern const RpcMethod event_methods[];        /* events.subscribe: events.c */
extern const RpcMethod operation_methods[];    /* operations.list, cancel: methods-operations.c */

/* vm.create and vm.set: refuse (-32602, naming the param) a size over what
 * this host has; 0 when it fits. */
typedef struct RpcCall RpcCall;
#define VM_MEMORY_WORDS "at least 64 MiB and at most 1 TiB"
int vm_check_size_params(RpcCall *call, unsigned long long vcpu, unsigned long long memory_mib);

/* Prepared workspaces (methods-snapshot.c): the setup_key param of vm.create
 * and vm.snapshot (the hash of a work tree's setup inputs), and the
 * workspace snapshot vm.create restores for a key (k without image_id; the
 * image by name or id); -ENOENT when there is none. */
#define SETUP_KEY_WORDS "a sha256 in lowercase hex"
typedef struct SnapshotRecord SnapshotRecord;
typedef struct SnapshotWorkspaceKey SnapshotWorkspaceKey;
int rpc_parse_setup_key(json_t *v, void *field);
int workspace_snapshot_find(Store *s, const char *image, SnapshotWorkspaceKey *k, SnapshotRecord *ret);

/* Shared by the image method files (methods-image.c). */
typedef struct Store Store;
typedef struct ImageRecord ImageRecord;
/* The image object of docs/protocol.md. */
json_t *image_to_json(Store *s, const ImageRecord *img);
/* By name, else by id; -ENOENT "no image named ..." */
int image_lookup(Store *s, const char *ref, ImageRecord *ret);

/* Pull image name from the [[catalog]]s (methods-catalog-pull.c), in a
 * worker: -ENOENT (no message) when no catalog is configured, -ENOENT with
 * one when none offers it; progress gets the pull's stages. */
int catalog_pull_image(Daemon *d, Store *s, const char *name, const Progress *progress);
