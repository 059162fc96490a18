/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's state: one SQLite file (WAL, foreign keys on, busy timeout)
 * holding VMs, images, kernels and the host resources each VM holds.
 *
 * A Store is one SQLite connection. Use it from one thread at a time; give
 * each worker thread its own Store on the same file, or let a StorePool
 * hand them out (SQLite then serialises writers through the busy timeout,
 * and the allocators below use BEGIN IMMEDIATE so concurrent callers never
 * double-assign).
 *
 * Every function returns 0 (or a documented positive value) or -errno; the
 * SQLite message or a clearer sentence is recorded with error_setf(). ret_
 * parameters are written only on success. Common errors:
 *   -ENOENT   no such record
 *   -EEXIST   a unique value (name, id, ip, tap ...) is already in use
 *   -EBUSY    delete refused: the record is still referenced (ON DELETE RESTRICT)
 *   -EINVAL   a field fails validation or a CHECK constraint
 *   -EAGAIN   the database stayed locked for the whole busy timeout
 *   -EBADMSG  the file is not a database or is corrupt
 *   -EPROTONOSUPPORT  the database was written by a newer banger
 *   -ESTALE   read-only open of a database with migrations pending */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "time-util.h"
#include "vmm-kind.h"

typedef struct Store Store;

typedef enum StoreOpenFlags {
        /* SQLITE_OPEN_READONLY; never migrates; refuses a database that is
         * not exactly at the latest version (its schema would not match).
         * On a WAL database SQLite may leave empty -wal/-shm files behind;
         * store_check_migrations() does not. */
        STORE_OPEN_READONLY = 1 << 0,
        /* Open read-write but leave the schema version alone (tests, tools
         * that migrate step by step with store_migrate()). */
        STORE_OPEN_NO_MIGRATE = 1 << 1,
} StoreOpenFlags;

/* Values double as `bangerd --check-migrations` exit codes. */
typedef enum StoreMigrationStatus {
        STORE_MIGRATIONS_CURRENT = 0,
        STORE_MIGRATIONS_PENDING = 1,
        STORE_MIGRATIONS_NEWER = 2,
} StoreMigrationStatus;

#define STORE_BUSY_TIMEOUT_MS 10000

/* The schema version this build writes (the number of migrations). */
unsigned store_latest_version(void);

/* Open (creating it 0600 if missing, never following a symlink) and, unless
 * flags say otherwise, apply pending migrations, each in its own
 * transaction. A database newer than this build is refused with
 * -EPROTONOSUPPORT before anything is written to it. */
int store_open(const char *path, StoreOpenFlags flags, Store **ret);
/* Closes the connection, or gives a pooled one back to its pool. */
Store *store_close(Store *s);
static inline void store_closep(Store **s) {
        if (*s)
                *s = store_close(*s);
}
#define _cleanup_store_close_ _cleanup_(store_closep)

/* ---- Connection pool (store-pool.c) -------------------------------------- */

/* Open connections to one database, reused across threads (one thread at a
 * time per connection): a caller takes one with store_pool_get() and gives
 * it back with store_close(). A connection comes back to the pool only if
 * it is fit: no SQLite error other than a constraint, no transaction left
 * open, no statement left unfinalized; else it is closed. At most max_idle
 * wait in the pool; more are closed. */
typedef struct StorePool StorePool;
/* Run once on each new connection (e.g. store_observe()); a failure fails
 * the store_pool_get() that opened it. */
typedef int (*StorePoolSetup)(Store *s, void *userdata);

/* flags as store_open()'s; read-only pools are refused (-EINVAL). */
int store_pool_new(const char *path, StoreOpenFlags flags, StorePoolSetup setup, void *userdata, unsigned max_idle,
                   StorePool **ret);
/* An idle connection, or a new one (store_open() and setup). Any thread. */
int store_pool_get(StorePool *p, Store **ret);
/* What store_close() does with a pooled connection (s may be NULL: a get
 * that failed to open one). */
void store_pool_put(StorePool *p, Store *s);
/* Connections the pool has opened so far. */
unsigned store_pool_opened(StorePool *p);
/* Closes the idle connections; ones still handed out are closed when given
 * back, and the last one given back frees the pool. */
StorePool *store_pool_free(StorePool *p);

/* The schema version of the open database. */
int store_schema_version(Store *s, unsigned *ret);

/* Apply migrations up to target (<= latest). Used by store_open(); public so
 * tests can build a database at any older version. */
int store_migrate(Store *s, unsigned target);

/* Inspect without changing anything (read-only connection; a missing file
 * is "pending" with current 0 and is not created). Returns a
 * StoreMigrationStatus (>= 0) or -errno. */
int store_check_migrations(const char *path, unsigned *ret_current, unsigned *ret_latest);

/* Ids: lowercase hex, 12..32 characters. Generated ids are 16 characters
 * from getrandom(). */
#define STORE_ID_MIN 12
#define STORE_ID_MAX 32
#define STORE_ID_GENERATED_LEN 16
bool store_id_is_valid(const char *id);
int store_id_generate(char ret[static STORE_ID_GENERATED_LEN + 1]);

/* ---- VMs ---------------------------------------------------------------- */

typedef enum VmState {
        VM_STATE_CREATED,
        VM_STATE_STARTING,
        VM_STATE_RUNNING,
        VM_STATE_STOPPING,
        VM_STATE_STOPPED,
        VM_STATE_ERROR,
        VM_STATE_PAUSED,    /* the VMM's own pause: the process lives, the vCPUs do not run */
        VM_STATE_SUSPENDED, /* saved to disk (memory and devices), no VMM process: vm start resumes it */
        _VM_STATE_MAX,
        _VM_STATE_INVALID = -EINVAL,
} VmState;

/* What the daemon does with a VM nobody used for its idle timeout. */
typedef enum VmIdleAction {
        VM_IDLE_DEFAULT, /* the config's idle_action (stored as NULL) */
        VM_IDLE_STOP,
        VM_IDLE_SUSPEND,
        _VM_IDLE_MAX,
        _VM_IDLE_INVALID = -EINVAL,
} VmIdleAction;
/* "stop", "suspend"; NULL for VM_IDLE_DEFAULT. */
const char *vm_idle_action_to_string(VmIdleAction a);
VmIdleAction vm_idle_action_from_string(const char *s);
/* A VM's idle_timeout_sec that turns the config's idle_timeout off for it. */
#define VM_IDLE_TIMEOUT_OFF (-1)
#define VM_IDLE_TIMEOUT_MAX (366LL * 24 * 3600)

const char *vm_state_to_string(VmState s);
/* Starting, running, paused or stopping: a VMM process may exist. */
bool vm_state_is_live(VmState s);
VmState vm_state_from_string(const char *s);

/* All strings are owned by the record (vm_record_done frees them); for
 * insert/update they are only read, so callers may point them at anything.
 * NULL strings and zero numbers marked "0: none" are stored as SQL NULL. */
typedef struct VmRecord {
        char *id;
        char *name;
        char *image_id;
        char *kernel_id; /* optional: overrides the image's kernel */
        VmState state;
        VmmKind vmm;
        unsigned vcpus;
        uint64_t mem_mib;
        uint64_t disk_bytes;
        bool nat;
        char *ip; /* set by store_ip_allocate() */
        char *mac;
        char *tap;
        unsigned vsock_cid; /* 0: none */
        pid_t pid;          /* 0: none */
        char *api_socket;
        char *agent_socket;
        char *run_dir;
        char *boot_id;
        char *spec_json;    /* what the user asked for; NULL stored as "{}" */
        char *runtime_json; /* driver-specific runtime facts; NULL stored as "{}" */
        char *last_error;
        usec_t created_at; /* realtime; 0 on insert: now */
        usec_t updated_at; /* set by the store on every write */
        /* 0: the config's idle_timeout; VM_IDLE_TIMEOUT_OFF: never; else seconds. */
        int64_t idle_timeout_sec;
        VmIdleAction idle_action;
        usec_t last_used_at; /* realtime, 0: never; read only here, written by store_vm_touch() */
} VmRecord;

void vm_record_done(VmRecord *r);
void vm_record_array_free(VmRecord *a, size_t n);

/* Insert; fills r->created_at (if 0) and r->updated_at on success. */
int store_vm_insert(Store *s, VmRecord *r);
int store_vm_get_by_id(Store *s, const char *id, VmRecord *ret);
int store_vm_get_by_name(Store *s, const char *name, VmRecord *ret);
/* Every VM whose id starts with prefix (0, 1 or more: callers report
 * "ambiguous" themselves). An empty or non-hex prefix matches nothing. */
int store_vm_find_by_prefix(Store *s, const char *prefix, VmRecord **ret, size_t *ret_n);
/* All VMs, oldest first. */
int store_vm_list(Store *s, VmRecord **ret, size_t *ret_n);

/* What vm list's table shows of each VM, as the JSON text of an array of
 * objects (id, name, state, image: its name, ip, vcpu, memory_mib,
 * disk_bytes, created_at: RFC 3339 or null), oldest first as
 * store_vm_list() orders them; written by SQLite in one query. */
int store_vm_list_brief_json(Store *s, char **ret);

/* For the CLI where the daemon may be down (system uninstall --purge): the
 * VMs the database at path records as starting, running or stopping, read
 * through a read-only connection that never migrates. A missing database
 * has none. The only way the CLI reads the database itself. */
int store_list_live_vms_readonly(const char *path, VmRecord **ret, size_t *ret_n);
/* Replace every column of the row with r->id (not created_at); bumps
 * updated_at (written back into r). */
int store_vm_update(Store *s, VmRecord *r);
/* The VM was used at t (realtime): last_used_at only moves forward. Not a
 * change of the record (updated_at stays). */
int store_vm_touch(Store *s, const char *id, usec_t t);
/* last_error NULL clears it. */
int store_vm_set_state(Store *s, const char *id, VmState state, const char *last_error);
/* Host handles still recorded for the VM survive as orphans (vm_id NULL)
 * so the startup sweep can clean them. -EBUSY while snapshots of it exist
 * (the message names them). */
int store_vm_delete(Store *s, const char *id);

/* ---- Change observation -------------------------------------------------- */

/* A row that appeared, changed state or went away. kind: "vm", "image",
 * "kernel" or "snapshot"; event: "created", "state" or "deleted". Strings
 * live for the call only; old_state, new_state and reason may be NULL. */
typedef struct StoreEvent {
        const char *kind;
        const char *event;
        const char *id;
        const char *name;
        const char *old_state;
        const char *new_state;
        const char *reason; /* a VM's last_error with its new state */
} StoreEvent;

typedef void (*StoreObserver)(void *userdata, const StoreEvent *e);

/* Call fn for every such change written through this connection, in the
 * writing thread, while the statement runs (before its transaction commits).
 * Once per connection. */
int store_observe(Store *s, StoreObserver fn, void *userdata);

/* ---- Images and kernels -------------------------------------------------- */

typedef struct KernelRecord {
        char *id;
        char *name;
        char *version;
        char *kernel_path; /* required: what QEMU boots (bzImage or ELF) */
        char *initrd_path;
        char *modules_path;
        char *elf_path; /* uncompressed vmlinux for Firecracker */
        char *sha256;
        uint64_t size;
        usec_t created_at;
} KernelRecord;

typedef struct ImageRecord {
        char *id;
        char *name;
        char *kernel_id; /* optional */
        char *rootfs_path;
        char *work_seed_path;
        bool managed; /* banger owns the files and deletes them with the image */
        uint64_t size;
        char *sha256;
        char *source; /* where it came from: OCI reference, path, URL */
        usec_t created_at;
} ImageRecord;

void kernel_record_done(KernelRecord *r);
void kernel_record_array_free(KernelRecord *a, size_t n);
void image_record_done(ImageRecord *r);
void image_record_array_free(ImageRecord *a, size_t n);

int store_kernel_insert(Store *s, KernelRecord *r);
int store_kernel_get_by_id(Store *s, const char *id, KernelRecord *ret);
int store_kernel_get_by_name(Store *s, const char *name, KernelRecord *ret);
int store_kernel_find_by_prefix(Store *s, const char *prefix, KernelRecord **ret, size_t *ret_n);
int store_kernel_list(Store *s, KernelRecord **ret, size_t *ret_n);
int store_kernel_update(Store *s, const KernelRecord *r);
/* -EBUSY while an image or VM refers to it. */
int store_kernel_delete(Store *s, const char *id);

int store_image_insert(Store *s, ImageRecord *r);
/* A pulled image and, when k is not NULL, the kernel it came with: both
 * rows or neither, in one transaction. */
int store_image_insert_with_kernel(Store *s, KernelRecord *k, ImageRecord *img);
int store_image_get_by_id(Store *s, const char *id, ImageRecord *ret);
int store_image_get_by_name(Store *s, const char *name, ImageRecord *ret);
int store_image_find_by_prefix(Store *s, const char *prefix, ImageRecord **ret, size_t *ret_n);
int store_image_list(Store *s, ImageRecord **ret, size_t *ret_n);
int store_image_update(Store *s, const ImageRecord *r);
/* -EBUSY while a VM or snapshot uses it (the message names them). */
int store_image_delete(Store *s, const char *id);

/* ---- Snapshots ----------------------------------------------------------- */

typedef enum SnapshotKind {
        SNAPSHOT_USER,      /* made by `vm snapshot` */
        SNAPSHOT_TEMPLATE,  /* made by banger for warm starts */
        SNAPSHOT_WORKSPACE, /* a VM a repository's setup prepared (vm run DIR) */
        _SNAPSHOT_KIND_MAX,
        _SNAPSHOT_KIND_INVALID = -EINVAL,
} SnapshotKind;

typedef enum SnapshotState {
        SNAPSHOT_SAVING, /* files being written; swept at daemon start */
        SNAPSHOT_READY,
        _SNAPSHOT_STATE_MAX,
        _SNAPSHOT_STATE_INVALID = -EINVAL,
} SnapshotState;

const char *snapshot_kind_to_string(SnapshotKind k);
SnapshotKind snapshot_kind_from_string(const char *s);
const char *snapshot_state_to_string(SnapshotState s);

/* A VM's saved state and disk copies, in dir. vm_id is the VM it was taken
 * of (NULL for templates, whose VM is gone); vm_name keeps its name. */
typedef struct SnapshotRecord {
        char *id;
        char *name;
        SnapshotKind kind;
        SnapshotState state;
        char *vm_id;
        char *vm_name;
        char *image_id;
        char *kernel_id; /* optional: the VM's kernel override */
        VmmKind vmm;
        char *vmm_version; /* the binary's --version line; a restore needs the same */
        unsigned vcpus;
        uint64_t mem_mib;
        uint64_t disk_bytes; /* the VM's work disk size */
        char *dir;           /* absolute: the state files and disk copies */
        uint64_t state_bytes;
        uint64_t memory_bytes;
        uint64_t disk_used_bytes; /* blocks the disk copies take */
        char *disks_json;         /* [{"id", "file", "root"}] in device order; NULL stored as "[]" */
        char *spec_json;          /* what a restore needs of the source VM; NULL stored as "{}" */
        char *fingerprint;        /* templates: what they were made from */
        usec_t created_at;        /* 0 on insert: now */
        char *repository;         /* workspace snapshots: the host work tree */
        usec_t last_used_at;      /* when it last started a VM; 0: never */
} SnapshotRecord;

void snapshot_record_done(SnapshotRecord *r);
void snapshot_record_array_free(SnapshotRecord *a, size_t n);

/* -EEXIST with "snapshot name ... in use"; -ENOENT when its image, kernel or
 * VM does not exist. */
int store_snapshot_insert(Store *s, SnapshotRecord *r);
/* Every column but id and created_at. */
int store_snapshot_update(Store *s, const SnapshotRecord *r);
int store_snapshot_get_by_id(Store *s, const char *id, SnapshotRecord *ret);
int store_snapshot_get_by_name(Store *s, const char *name, SnapshotRecord *ret);
int store_snapshot_find_by_prefix(Store *s, const char *prefix, SnapshotRecord **ret, size_t *ret_n);
/* All snapshots (saving ones too), oldest first. */
int store_snapshot_list(Store *s, SnapshotRecord **ret, size_t *ret_n);
/* Those taken of a VM, or made from an image, oldest first. */
int store_snapshot_list_by_vm(Store *s, const char *vm_id, SnapshotRecord **ret, size_t *ret_n);
int store_snapshot_list_by_image(Store *s, const char *image_id, SnapshotRecord **ret, size_t *ret_n);
/* The template for this shape, -ENOENT when there is none. */
int store_snapshot_get_template(Store *s, const char *image_id, unsigned vcpus, uint64_t mem_mib, VmmKind vmm,
                                SnapshotRecord *ret);
int store_snapshot_delete(Store *s, const char *id);
/* Record that the snapshot started a VM now (last_used_at). */
int store_snapshot_touch(Store *s, const char *id, usec_t when);

/* What a workspace snapshot is found by: the work tree it was prepared for,
 * the hash of its setup's inputs (fingerprint), the image and the shape. */
typedef struct SnapshotWorkspaceKey {
        const char *repository;
        const char *fingerprint;
        const char *image_id;
        unsigned vcpus;
        uint64_t mem_mib, disk_bytes;
        VmmKind vmm;
} SnapshotWorkspaceKey;
/* The newest ready workspace snapshot with that key; -ENOENT when none. */
int store_snapshot_get_workspace(Store *s, const SnapshotWorkspaceKey *k, SnapshotRecord *ret);

/* For doctor, with the daemon possibly down: the ready templates and user
 * snapshots the database at path records and the bytes they take (state,
 * memory and disk copies), read through a read-only connection that never
 * migrates. A missing database has none. */
typedef struct SnapshotUsage {
        unsigned templates, snapshots;
        uint64_t template_bytes, snapshot_bytes;
} SnapshotUsage;
int store_snapshot_usage_readonly(const char *path, SnapshotUsage *ret);

typedef struct StoreCounts {
        unsigned vms;
        unsigned vms_by_state[_VM_STATE_MAX];
        unsigned images;
        unsigned kernels;
        unsigned snapshots;
        unsigned handles;
} StoreCounts;

int store_counts(Store *s, StoreCounts *ret);

/* ---- Guest IP allocation ------------------------------------------------- */

/* The VM's address inside cidr ("172.16.0.0/24": network address, prefix
 * /1../30, as ipv4_subnet_parse() reads it). If the VM already holds an address inside
 * cidr it is returned unchanged (stable across restarts); otherwise the
 * lowest free host address is recorded, skipping the network and broadcast
 * addresses and reserved_ip (the bridge; may be NULL). Runs in a
 * BEGIN IMMEDIATE transaction, and vms.ip is UNIQUE as a second guard.
 * -ENOSPC when every address is taken, -ENOENT for an unknown VM, -EINVAL
 * for a bad cidr or a reserved_ip outside it. */
int store_ip_allocate(Store *s, const char *vm_id, const char *cidr, const char *reserved_ip, char **ret_ip);
/* Forget the VM's address so it can be reused. 0 also when it had none. */
int store_ip_release(Store *s, const char *vm_id);

/* ---- Host resource handles ----------------------------------------------- */

/* Callers record a handle BEFORE creating the resource and remove it AFTER
 * destroying it, so after a crash every resource that may exist is listed. */
typedef enum StoreHandleKind {
        STORE_HANDLE_TAP,  /* name: TAP device */
        STORE_HANDLE_LOOP, /* name: /dev/loopN; detail: backing file */
        STORE_HANDLE_DM,   /* name: device-mapper target */
        STORE_HANDLE_FILE, /* name: absolute path */
        STORE_HANDLE_NFT,  /* name: rule/set element identity; detail: what to delete */
        _STORE_HANDLE_KIND_MAX,
        _STORE_HANDLE_KIND_INVALID = -EINVAL,
} StoreHandleKind;

const char *store_handle_kind_to_string(StoreHandleKind k);
StoreHandleKind store_handle_kind_from_string(const char *s);

typedef struct StoreHandle {
        int64_t id;
        char *vm_id; /* NULL: not tied to a VM, or its VM was deleted */
        StoreHandleKind kind;
        char *name;
        char *detail; /* optional free-form cleanup data */
        usec_t created_at;
} StoreHandle;

void store_handle_array_free(StoreHandle *a, size_t n);

/* Returns 1 if recorded, 0 if the same VM already held it (retries are
 * harmless); -EEXIST if another VM (or no VM) holds it. vm_id may be NULL. */
int store_handle_add(Store *s, const char *vm_id, StoreHandleKind kind, const char *name, const char *detail);
/* -ENOENT if it was not recorded. */
int store_handle_remove(Store *s, StoreHandleKind kind, const char *name);
/* kind _STORE_HANDLE_KIND_INVALID lists every kind. Ordered by id. */
int store_handle_list(Store *s, StoreHandleKind kind, StoreHandle **ret, size_t *ret_n);
int store_handle_list_vm(Store *s, const char *vm_id, StoreHandle **ret, size_t *ret_n);

/* ---- Port forwards (store-forward.c) --------------------------------------- */

typedef struct StoreForward {
        int64_t id;
        char *vm_id;
        char *proto;   /* "tcp" */
        char *host_ip; /* canonical text */
        unsigned host_port, guest_port;
        usec_t created_at;
} StoreForward;

void store_forward_done(StoreForward *f);
void store_forward_array_free(StoreForward *a, size_t n);
/* Sets f->id. -EEXIST with a message naming the VM that has the host
 * address and port already. */
int store_forward_add(Store *s, StoreForward *f);
/* 0 when no VM forwards the host address and port, else -EEXIST naming it. */
int store_forward_check_free(Store *s, const char *proto, const char *host_ip, unsigned host_port);
/* -ENOENT when the VM has no such forward. */
int store_forward_remove(Store *s, const char *vm_id, const char *proto, const char *host_ip, unsigned host_port);
/* Ordered by host address and port. */
int store_forward_list_vm(Store *s, const char *vm_id, StoreForward **ret, size_t *ret_n);
