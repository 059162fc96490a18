/* SPDX-License-Identifier: MIT */
/* The schema, as the ordered list of steps that build it. Rules:
 * - Never edit a released step; add a new one at the end.
 * - Each step runs inside one BEGIN IMMEDIATE transaction together with its
 *   PRAGMA user_version bump, so a crash leaves the previous version intact.
 * - Tables are STRICT; enumerations are CHECKed; timestamps are INTEGER
 *   microseconds since the epoch (realtime).
 * - Changing a CHECK or a foreign key needs a table rebuild (create new,
 *   copy, drop, rename: https://sqlite.org/lang_altertable.html#otheralter).
 *   Mark such a step .foreign_keys_off: enforcement is switched off around
 *   its transaction (it cannot be switched inside one, and DROP TABLE would
 *   otherwise fire ON DELETE actions), and PRAGMA foreign_key_check must
 *   come back empty before it commits. */
#include "store-internal.h"

/* The SQL keeps one line of C per line of it. */
/* clang-format off */
/* A lowercase hex id and a name, as CHECK text (looser than name_is_valid():
 * a name that was valid once stays readable). */
#define ID_CHECK(col) "CHECK (length(" col ") BETWEEN 12 AND 32 AND " col " NOT GLOB '*[^0-9a-f]*')"
#define NAME_CHECK(col)                                                                         \
        "CHECK (length(" col ") BETWEEN 1 AND 63 AND " col " NOT GLOB '*[^a-z0-9-]*' AND " col \
        " NOT GLOB '-*')"
#define ABSPATH_CHECK(col) "CHECK (" col " IS NULL OR " col " GLOB '/*')"
#define SHA256_CHECK(col) \
        "CHECK (" col " IS NULL OR (length(" col ") = 64 AND " col " NOT GLOB '*[^0-9a-f]*'))"
/* The vms columns after state, as migration 1 made them (migration 3
 * rebuilds the table around a new state CHECK). */
#define VMS_COLUMNS_AFTER_STATE \
        "  vmm TEXT NOT NULL CHECK (vmm IN ('firecracker', 'qemu')),\n" \
        "  vcpus INTEGER NOT NULL CHECK (vcpus BETWEEN 1 AND 1024),\n" \
        "  mem_mib INTEGER NOT NULL CHECK (mem_mib > 0),\n" \
        "  disk_bytes INTEGER NOT NULL DEFAULT 0 CHECK (disk_bytes >= 0),\n" \
        "  nat INTEGER NOT NULL DEFAULT 0 CHECK (nat IN (0, 1)),\n" \
        /* UNIQUE: two VMs never share an address, MAC, TAP or vsock CID. */ \
        "  ip TEXT UNIQUE,\n" \
        "  mac TEXT UNIQUE,\n" \
        "  tap TEXT UNIQUE,\n" \
        "  vsock_cid INTEGER UNIQUE CHECK (vsock_cid IS NULL OR vsock_cid BETWEEN 3 AND 4294967294),\n" \
        "  pid INTEGER CHECK (pid IS NULL OR pid > 0),\n" \
        "  api_socket TEXT,\n" \
        "  agent_socket TEXT,\n" \
        "  run_dir TEXT " ABSPATH_CHECK("run_dir") ",\n" \
        "  boot_id TEXT,\n" \
        "  spec_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec_json)),\n" \
        "  runtime_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(runtime_json)),\n" \
        "  last_error TEXT,\n" \
        "  created_at INTEGER NOT NULL,\n" \
        "  updated_at INTEGER NOT NULL\n"
/* The vms columns before state: a rebuild changes only the state CHECK. */
#define VMS_COLUMNS_BEFORE_STATE \
        "  id TEXT PRIMARY KEY NOT NULL " ID_CHECK("id") ",\n" \
        "  name TEXT NOT NULL UNIQUE " NAME_CHECK("name") ",\n" \
        "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,\n" \
        "  kernel_id TEXT REFERENCES kernels(id) ON DELETE RESTRICT,\n"
/* The rest of a vms rebuild after its state column: vms_new, copied from
 * vms, takes its place and gets its indexes back. */
#define VMS_REBUILD_AFTER_STATE \
        VMS_COLUMNS_AFTER_STATE \
        ") STRICT;\n" \
        "INSERT INTO vms_new SELECT * FROM vms;\n" \
        "DROP TABLE vms;\n" \
        "ALTER TABLE vms_new RENAME TO vms;\n" \
        "CREATE INDEX vms_image_id ON vms(image_id);\n" \
        "CREATE INDEX vms_kernel_id ON vms(kernel_id);\n" \
        "CREATE INDEX vms_state ON vms(state);\n"
/* The snapshots columns from state to fingerprint, as migration 3 made
 * them (migration 5 rebuilds the table around a new kind CHECK). */
#define SNAPSHOTS_COLUMNS_AFTER_KIND \
        "  state TEXT NOT NULL CHECK (state IN ('saving', 'ready')),\n" \
        "  vm_id TEXT REFERENCES vms(id) ON DELETE RESTRICT,\n" \
        "  vm_name TEXT,\n" \
        "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,\n" \
        "  kernel_id TEXT REFERENCES kernels(id) ON DELETE RESTRICT,\n" \
        "  vmm TEXT NOT NULL CHECK (vmm IN ('firecracker', 'qemu')),\n" \
        "  vmm_version TEXT NOT NULL CHECK (length(vmm_version) BETWEEN 1 AND 200),\n" \
        "  vcpus INTEGER NOT NULL CHECK (vcpus BETWEEN 1 AND 1024),\n" \
        "  mem_mib INTEGER NOT NULL CHECK (mem_mib > 0),\n" \
        "  disk_bytes INTEGER NOT NULL DEFAULT 0 CHECK (disk_bytes >= 0),\n" \
        "  dir TEXT NOT NULL " ABSPATH_CHECK("dir") ",\n" \
        "  state_bytes INTEGER NOT NULL DEFAULT 0 CHECK (state_bytes >= 0),\n" \
        "  memory_bytes INTEGER NOT NULL DEFAULT 0 CHECK (memory_bytes >= 0),\n" \
        "  disk_used_bytes INTEGER NOT NULL DEFAULT 0 CHECK (disk_used_bytes >= 0),\n" \
        "  disks_json TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(disks_json)),\n" \
        "  spec_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec_json)),\n" \
        "  fingerprint TEXT,\n"
#define SNAPSHOTS_INDEXES \
        "CREATE INDEX snapshots_vm_id ON snapshots(vm_id);\n" \
        "CREATE INDEX snapshots_image_id ON snapshots(image_id);\n" \
        "CREATE INDEX snapshots_kernel_id ON snapshots(kernel_id);\n" \
        "CREATE UNIQUE INDEX snapshots_template ON snapshots(image_id, vcpus, mem_mib, vmm) " \
        "WHERE kind = 'template';\n"

static const char migration_1_initial[] =
        "CREATE TABLE kernels (\n"
        "  id TEXT PRIMARY KEY NOT NULL " ID_CHECK("id") ",\n"
        "  name TEXT NOT NULL UNIQUE " NAME_CHECK("name") ",\n"
        "  version TEXT,\n"
        "  kernel_path TEXT NOT NULL " ABSPATH_CHECK("kernel_path") ",\n"
        "  initrd_path TEXT " ABSPATH_CHECK("initrd_path") ",\n"
        "  modules_path TEXT " ABSPATH_CHECK("modules_path") ",\n"
        "  elf_path TEXT " ABSPATH_CHECK("elf_path") ",\n"
        "  sha256 TEXT " SHA256_CHECK("sha256") ",\n"
        "  size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),\n"
        "  created_at INTEGER NOT NULL\n"
        ") STRICT;\n"
        "CREATE TABLE images (\n"
        "  id TEXT PRIMARY KEY NOT NULL " ID_CHECK("id") ",\n"
        "  name TEXT NOT NULL UNIQUE " NAME_CHECK("name") ",\n"
        "  kernel_id TEXT REFERENCES kernels(id) ON DELETE RESTRICT,\n"
        "  rootfs_path TEXT NOT NULL " ABSPATH_CHECK("rootfs_path") ",\n"
        "  work_seed_path TEXT " ABSPATH_CHECK("work_seed_path") ",\n"
        "  managed INTEGER NOT NULL DEFAULT 1 CHECK (managed IN (0, 1)),\n"
        "  size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),\n"
        "  sha256 TEXT " SHA256_CHECK("sha256") ",\n"
        "  source TEXT,\n"
        "  created_at INTEGER NOT NULL\n"
        ") STRICT;\n"
        /* Child-side indexes keep the RESTRICT checks on delete from scanning. */
        "CREATE INDEX images_kernel_id ON images(kernel_id);\n"
        "CREATE TABLE vms (\n"
        VMS_COLUMNS_BEFORE_STATE
        "  state TEXT NOT NULL CHECK (state IN "
        "('created', 'starting', 'running', 'stopping', 'stopped', 'error')),\n"
        VMS_COLUMNS_AFTER_STATE
        ") STRICT;\n"
        "CREATE INDEX vms_image_id ON vms(image_id);\n"
        "CREATE INDEX vms_kernel_id ON vms(kernel_id);\n";

/* Host resources (TAP devices, loop devices, files, nft entries) recorded
 * before they are created, so a crash at any step leaves a list to clean.
 * ON DELETE SET NULL: deleting a VM row must never lose track of something
 * still on the host. kind is checked for shape only, so a new kind needs no
 * table rebuild. */
static const char migration_2_host_handles[] =
        "CREATE TABLE host_handles (\n"
        "  id INTEGER PRIMARY KEY,\n"
        "  vm_id TEXT REFERENCES vms(id) ON DELETE SET NULL,\n"
        "  kind TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 16 AND kind NOT GLOB '*[^a-z]*'),\n"
        "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 4096),\n"
        "  detail TEXT,\n"
        "  created_at INTEGER NOT NULL,\n"
        "  UNIQUE (kind, name)\n"
        ") STRICT;\n"
        "CREATE INDEX host_handles_vm_id ON host_handles(vm_id);\n"
        /* Startup reconciliation asks for VMs by state. */
        "CREATE INDEX vms_state ON vms(state);\n";

/* A VM can be paused (the VMM's own pause): the vms table is rebuilt for the
 * new state in its CHECK, column for column as migration 1 made it. Then
 * snapshots: a VM's saved CPU, device and memory state plus copies of its
 * disks, in a directory of their own. A row is written ('saving') before
 * any file, and the daemon's start-up sweep removes rows still 'saving'
 * with their directory. Templates (kind 'template') are the warm-start
 * snapshots banger makes itself, at most one per image, vCPUs, memory and
 * VMM; their fingerprint names what they were made from (image, kernel,
 * agent, banger and VMM versions), so a change drops them. An image, kernel
 * or VM a snapshot was made from cannot be deleted under it (RESTRICT). */
static const char migration_3_snapshots[] =
        "CREATE TABLE vms_new (\n"
        VMS_COLUMNS_BEFORE_STATE
        "  state TEXT NOT NULL CHECK (state IN "
        "('created', 'starting', 'running', 'stopping', 'stopped', 'error', 'paused')),\n"
        VMS_REBUILD_AFTER_STATE
        "CREATE TABLE snapshots (\n"
        "  id TEXT PRIMARY KEY NOT NULL " ID_CHECK("id") ",\n"
        "  name TEXT NOT NULL UNIQUE " NAME_CHECK("name") ",\n"
        "  kind TEXT NOT NULL CHECK (kind IN ('user', 'template')),\n"
        SNAPSHOTS_COLUMNS_AFTER_KIND
        "  created_at INTEGER NOT NULL\n"
        ") STRICT;\n"
        SNAPSHOTS_INDEXES;

/* Port forwards: HOST_IP:HOST_PORT on the host to GUEST_PORT in a VM,
 * carried through the guest agent. A host address and port belong to one
 * forward at most (UNIQUE), whichever VM holds it; a VM's forwards go with
 * it (CASCADE). udp is allowed by the CHECK so that adding it later needs
 * no table rebuild; the daemon refuses it today. */
static const char migration_4_port_forwards[] =
        "CREATE TABLE port_forwards (\n"
        "  id INTEGER PRIMARY KEY,\n"
        "  vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,\n"
        "  proto TEXT NOT NULL CHECK (proto IN ('tcp', 'udp')),\n"
        "  host_ip TEXT NOT NULL CHECK (length(host_ip) BETWEEN 2 AND 45),\n"
        "  host_port INTEGER NOT NULL CHECK (host_port BETWEEN 1 AND 65535),\n"
        "  guest_port INTEGER NOT NULL CHECK (guest_port BETWEEN 1 AND 65535),\n"
        "  created_at INTEGER NOT NULL,\n"
        "  UNIQUE (proto, host_ip, host_port)\n"
        ") STRICT;\n"
        "CREATE INDEX port_forwards_vm_id ON port_forwards(vm_id);\n";

/* Workspace snapshots: a VM prepared by a work tree's setup, kept so that
 * later runs of that tree start from it (kind 'workspace'). The kind's CHECK
 * needs the table rebuilt, column for column as migration 3 made it, plus
 * the repository (the host work tree it was prepared for) and when a VM was
 * last made from the snapshot (0: never), which snapshot.prune ages
 * workspace snapshots by. */
static const char migration_5_workspace_snapshots[] =
        "CREATE TABLE snapshots_new (\n"
        "  id TEXT PRIMARY KEY NOT NULL " ID_CHECK("id") ",\n"
        "  name TEXT NOT NULL UNIQUE " NAME_CHECK("name") ",\n"
        "  kind TEXT NOT NULL CHECK (kind IN ('user', 'template', 'workspace')),\n"
        SNAPSHOTS_COLUMNS_AFTER_KIND
        "  created_at INTEGER NOT NULL,\n"
        "  repository TEXT CHECK (repository IS NULL OR length(repository) BETWEEN 1 AND 4096),\n"
        "  last_used_at INTEGER NOT NULL DEFAULT 0 CHECK (last_used_at >= 0)\n"
        ") STRICT;\n"
        "INSERT INTO snapshots_new SELECT *, NULL, 0 FROM snapshots;\n"
        "DROP TABLE snapshots;\n"
        "ALTER TABLE snapshots_new RENAME TO snapshots;\n"
        SNAPSHOTS_INDEXES;

/* A VM can be suspended (its memory and devices saved in its own directory,
 * no VMM process): the vms table is rebuilt for the new state in its CHECK,
 * as migration 3 did. Then the VM's own idle timeout (NULL: the config's, 0:
 * never) and action (NULL: the config's), and when it was last used. These
 * three come after VMS_COLUMNS_AFTER_STATE: a later rebuild must list them. */
static const char migration_6_suspend_idle[] =
        "CREATE TABLE vms_new (\n"
        VMS_COLUMNS_BEFORE_STATE
        "  state TEXT NOT NULL CHECK (state IN "
        "('created', 'starting', 'running', 'stopping', 'stopped', 'error', 'paused', 'suspended')),\n"
        VMS_REBUILD_AFTER_STATE
        "ALTER TABLE vms ADD COLUMN idle_timeout_sec INTEGER "
        "CHECK (idle_timeout_sec IS NULL OR idle_timeout_sec BETWEEN 0 AND 31622400);\n"
        "ALTER TABLE vms ADD COLUMN idle_action TEXT "
        "CHECK (idle_action IS NULL OR idle_action IN ('stop', 'suspend'));\n"
        "ALTER TABLE vms ADD COLUMN last_used_at INTEGER;\n";

/* clang-format on */

const StoreMigration store_migrations[] = {
        { .sql = migration_1_initial },
        { .sql = migration_2_host_handles },
        { .sql = migration_3_snapshots, .foreign_keys_off = true },
        { .sql = migration_4_port_forwards },
        { .sql = migration_5_workspace_snapshots, .foreign_keys_off = true },
        { .sql = migration_6_suspend_idle, .foreign_keys_off = true },
};
const size_t store_migrations_count = ELEMENTSOF(store_migrations);
