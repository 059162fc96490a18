/* SPDX-License-Identifier: MIT */
/* Snapshot records, the paused and suspended VM states and a VM's idle
 * settings, against real SQLite files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>

#include "error.h"
#include "store-test-util.h"

#define VM1 "cccccccccccc0001"
#define SNAP1 "dddddddddddd0001"
#define SNAP2 "dddddddddddd0002"
#define TPL1 "dddddddddddd0003"

static SnapshotRecord snapshot_of(const char *id, const char *name, const char *vm_id, SnapshotKind kind) {
        return (SnapshotRecord){ .id = (char *) id,
                                 .name = (char *) name,
                                 .kind = kind,
                                 .state = SNAPSHOT_SAVING,
                                 .vm_id = (char *) vm_id,
                                 .vm_name = vm_id ? "web" : NULL,
                                 .image_id = IMAGE1,
                                 .vmm = VMM_QEMU,
                                 .vmm_version = "QEMU emulator version 7.2.22",
                                 .vcpus = 2,
                                 .mem_mib = 1024,
                                 .disk_bytes = 8ULL << 30,
                                 .dir = "/var/lib/banger/snapshots/x",
                                 .disks_json = "[{\"id\":\"rootfs\",\"file\":\"root.img\",\"root\":true}]" };
}

static Store *open_populated(const char *name) {
        _cleanup_free_ char *p = db_path(name);
        Store *s = NULL;
        assert_int_equal(store_open(p, 0, &s), 0);
        make_kernel(s, KERNEL1, "k1");
        make_image(s, IMAGE1, "debian", KERNEL1);
        make_vm(s, VM1, "web", IMAGE1);
        return s;
}

static void test_snapshot_crud(void **state) {
        Store *s = open_populated("snap.db");
        SnapshotRecord n = snapshot_of(SNAP1, "before-upgrade", VM1, SNAPSHOT_USER);
        assert_int_equal(store_snapshot_insert(s, &n), 0);
        assert_true(n.created_at > 0);
        n.state = SNAPSHOT_READY;
        n.state_bytes = 90ULL << 20;
        n.disk_used_bytes = 13ULL << 20;
        assert_int_equal(store_snapshot_update(s, &n), 0);

        SnapshotRecord got = {};
        assert_int_equal(store_snapshot_get_by_name(s, "before-upgrade", &got), 0);
        assert_string_equal(got.id, SNAP1);
        assert_int_equal(got.state, SNAPSHOT_READY);
        assert_int_equal(got.kind, SNAPSHOT_USER);
        assert_int_equal(got.vmm, VMM_QEMU);
        assert_string_equal(got.vm_id, VM1);
        assert_string_equal(got.vm_name, "web");
        assert_string_equal(got.vmm_version, "QEMU emulator version 7.2.22");
        assert_int_equal(got.state_bytes, 90ULL << 20);
        assert_int_equal(got.disk_used_bytes, 13ULL << 20);
        assert_int_equal(got.disk_bytes, 8ULL << 30);
        assert_non_null(strstr(got.disks_json, "root.img"));
        assert_string_equal(got.spec_json, "{}");
        assert_null(got.fingerprint);
        snapshot_record_done(&got);

        /* Names are unique; a bad name or a missing image is refused clearly. */
        SnapshotRecord dup = snapshot_of(SNAP2, "before-upgrade", VM1, SNAPSHOT_USER);
        assert_int_equal(store_snapshot_insert(s, &dup), -EEXIST);
        assert_non_null(strstr(error_last_message(), "already in use"));
        dup.name = "Bad Name";
        assert_int_equal(store_snapshot_insert(s, &dup), -EINVAL);
        dup.name = "other";
        dup.image_id = IMAGE2;
        assert_int_equal(store_snapshot_insert(s, &dup), -ENOENT);

        SnapshotRecord *list = NULL;
        size_t count = 0;
        assert_int_equal(store_snapshot_find_by_prefix(s, "dddd", &list, &count), 0);
        assert_int_equal(count, 1);
        snapshot_record_array_free(list, count);
        assert_int_equal(store_snapshot_list_by_vm(s, VM1, &list, &count), 0);
        assert_int_equal(count, 1);
        snapshot_record_array_free(list, count);
        assert_int_equal(store_snapshot_delete(s, SNAP1), 0);
        assert_int_equal(store_snapshot_delete(s, SNAP1), -ENOENT);
        assert_int_equal(store_snapshot_list(s, &list, &count), 0);
        assert_int_equal(count, 0);
        free(list);
        store_close(s);
}

/* An image or VM a snapshot was made from cannot go, and the refusal names
 * the snapshot; once it is gone, they can. */
static void test_snapshot_dependents(void **state) {
        Store *s = open_populated("deps.db");
        SnapshotRecord n = snapshot_of(SNAP1, "nightly", VM1, SNAPSHOT_USER);
        assert_int_equal(store_snapshot_insert(s, &n), 0);
        error_clear();
        assert_int_equal(store_vm_delete(s, VM1), -EBUSY);
        assert_non_null(strstr(error_last_message(), "nightly"));
        error_clear();
        assert_int_equal(store_image_delete(s, IMAGE1), -EBUSY);
        assert_non_null(strstr(error_last_message(), "VM(s) web"));
        assert_non_null(strstr(error_last_message(), "snapshot(s) nightly"));
        StoreCounts c;
        assert_int_equal(store_counts(s, &c), 0);
        assert_int_equal(c.snapshots, 1);
        assert_int_equal(store_snapshot_delete(s, SNAP1), 0);
        assert_int_equal(store_vm_delete(s, VM1), 0);
        assert_int_equal(store_image_delete(s, IMAGE1), 0);
        store_close(s);
}

/* One template per image, vCPUs, memory and VMM. */
static void test_templates(void **state) {
        Store *s = open_populated("tpl.db");
        SnapshotRecord t = snapshot_of(TPL1, "template-debian", NULL, SNAPSHOT_TEMPLATE);
        t.fingerprint = "image=1;agent=2";
        t.state = SNAPSHOT_READY;
        assert_int_equal(store_snapshot_insert(s, &t), 0);
        SnapshotRecord got = {};
        assert_int_equal(store_snapshot_get_template(s, IMAGE1, 2, 1024, VMM_QEMU, &got), 0);
        assert_string_equal(got.id, TPL1);
        assert_string_equal(got.fingerprint, "image=1;agent=2");
        assert_null(got.vm_id);
        snapshot_record_done(&got);
        assert_int_equal(store_snapshot_get_template(s, IMAGE1, 2, 2048, VMM_QEMU, &got), -ENOENT);
        assert_int_equal(store_snapshot_get_template(s, IMAGE1, 2, 1024, VMM_FIRECRACKER, &got), -ENOENT);
        SnapshotRecord again = snapshot_of(SNAP2, "template-debian-2", NULL, SNAPSHOT_TEMPLATE);
        assert_int_equal(store_snapshot_insert(s, &again), -EEXIST);
        /* A user snapshot of the same shape is not a template. */
        SnapshotRecord user = snapshot_of(SNAP1, "mine", VM1, SNAPSHOT_USER);
        assert_int_equal(store_snapshot_insert(s, &user), 0);
        store_close(s);
}

/* A paused VM is stored as such and counts as live (a VMM process exists). */
static void test_paused_state(void **state) {
        Store *s = open_populated("paused.db");
        assert_int_equal(store_vm_set_state(s, VM1, VM_STATE_PAUSED, NULL), 0);
        VmRecord vm = {};
        assert_int_equal(store_vm_get_by_id(s, VM1, &vm), 0);
        assert_int_equal(vm.state, VM_STATE_PAUSED);
        assert_string_equal(vm_state_to_string(vm.state), "paused");
        assert_true(vm_state_is_live(vm.state));
        assert_false(vm_state_is_live(VM_STATE_STOPPED));
        vm_record_done(&vm);
        store_close(s);
        _cleanup_free_ char *p = db_path("paused.db");
        VmRecord *live = NULL;
        size_t n = 0;
        assert_int_equal(store_list_live_vms_readonly(p, &live, &n), 0);
        assert_int_equal(n, 1);
        vm_record_array_free(live, n);
}

#define WS1 "dddddddddddd0011"
#define WS2 "dddddddddddd0012"
#define WS3 "dddddddddddd0013"
#define REPO "/home/ada/src/shop"
#define KEY1 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY2 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static SnapshotRecord workspace_of(const char *id, const char *name, const char *key, usec_t created) {
        SnapshotRecord n = snapshot_of(id, name, NULL, SNAPSHOT_WORKSPACE);
        n.state = SNAPSHOT_READY;
        n.repository = REPO;
        n.fingerprint = (char *) key;
        n.created_at = created;
        return n;
}

/* A workspace snapshot is found by its work tree, setup key, image and
 * shape (the newest ready one); its use is recorded for prune. */
static void test_workspace_snapshots(void **state) {
        Store *s = open_populated("ws.db");
        SnapshotRecord a = workspace_of(WS1, "ws-shop-1", KEY1, 1000), b = workspace_of(WS2, "ws-shop-2", KEY1, 2000),
                       c = workspace_of(WS3, "ws-shop-3", KEY1, 3000);
        c.state = SNAPSHOT_SAVING; /* not found while it is written */
        assert_int_equal(store_snapshot_insert(s, &a), 0);
        assert_int_equal(store_snapshot_insert(s, &b), 0);
        assert_int_equal(store_snapshot_insert(s, &c), 0);
        SnapshotWorkspaceKey k = { .repository = REPO,
                                   .fingerprint = KEY1,
                                   .image_id = IMAGE1,
                                   .vcpus = 2,
                                   .mem_mib = 1024,
                                   .disk_bytes = 8ULL << 30,
                                   .vmm = VMM_QEMU };
        SnapshotRecord got = {};
        assert_int_equal(store_snapshot_get_workspace(s, &k, &got), 0);
        assert_string_equal(got.id, WS2);
        assert_int_equal(got.kind, SNAPSHOT_WORKSPACE);
        assert_string_equal(snapshot_kind_to_string(got.kind), "workspace");
        assert_string_equal(got.repository, REPO);
        assert_string_equal(got.fingerprint, KEY1);
        assert_null(got.vm_id);
        assert_int_equal(got.last_used_at, 0);
        snapshot_record_done(&got);

        /* Any part of the key that differs finds none. */
        SnapshotWorkspaceKey other[] = { k, k, k, k, k, k, k };
        other[0].fingerprint = KEY2;
        other[1].repository = "/home/ada/src/shop2";
        other[2].image_id = IMAGE2;
        other[3].vcpus = 1;
        other[4].mem_mib = 2048;
        other[5].disk_bytes = 4ULL << 30;
        other[6].vmm = VMM_FIRECRACKER;
        for (size_t i = 0; i < ELEMENTSOF(other); i++)
                assert_int_equal(store_snapshot_get_workspace(s, &other[i], &got), -ENOENT);

        /* A user snapshot with the same fingerprint is no workspace snapshot. */
        SnapshotRecord user = snapshot_of(SNAP1, "mine", VM1, SNAPSHOT_USER);
        user.state = SNAPSHOT_READY;
        user.fingerprint = KEY2;
        user.repository = REPO;
        user.created_at = 9000;
        assert_int_equal(store_snapshot_insert(s, &user), 0);
        k.fingerprint = KEY2;
        assert_int_equal(store_snapshot_get_workspace(s, &k, &got), -ENOENT);

        assert_int_equal(store_snapshot_touch(s, WS1, 5000), 0);
        assert_int_equal(store_snapshot_get_by_id(s, WS1, &got), 0);
        assert_int_equal(got.last_used_at, 5000);
        assert_int_equal(got.created_at, 1000);
        snapshot_record_done(&got);

        /* An update keeps them. */
        assert_int_equal(store_snapshot_get_by_id(s, WS2, &got), 0);
        got.state_bytes = 7;
        assert_int_equal(store_snapshot_update(s, &got), 0);
        snapshot_record_done(&got);
        assert_int_equal(store_snapshot_get_by_id(s, WS2, &got), 0);
        assert_string_equal(got.repository, REPO);
        assert_int_equal(got.state_bytes, 7);
        snapshot_record_done(&got);

        /* A workspace snapshot keeps its image like any snapshot. */
        error_clear();
        assert_int_equal(store_image_delete(s, IMAGE1), -EBUSY);
        assert_non_null(strstr(error_last_message(), "ws-shop-1"));
        store_close(s);
}

/* The migration that added workspace snapshots keeps the snapshots made
 * before it, with no repository and never used. */
static void test_workspace_migration_keeps_snapshots(void **state) {
        const unsigned before = 4; /* the schema version before workspace snapshots */
        _cleanup_free_ char *p = db_path("old.db");
        Store *s = NULL;
        assert_int_equal(store_open(p, STORE_OPEN_NO_MIGRATE, &s), 0);
        assert_int_equal(store_migrate(s, before), 0);
        make_kernel(s, KERNEL1, "k1");
        make_image(s, IMAGE1, "debian", KERNEL1);
        store_close(s);
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "INSERT INTO snapshots (id, name, kind, state, image_id, vmm, vmm_version, "
                                      "vcpus, mem_mib, dir, fingerprint, created_at) VALUES ('" TPL1 "', "
                                      "'template-debian', 'template', 'ready', '" IMAGE1 "', 'qemu', 'QEMU 7.2', "
                                      "1, 256, '/var/lib/banger/snapshots/t', 'f=1', 42)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_open(p, 0, &s), 0);
        SnapshotRecord got = {};
        assert_int_equal(store_snapshot_get_by_name(s, "template-debian", &got), 0);
        assert_int_equal(got.kind, SNAPSHOT_TEMPLATE);
        assert_string_equal(got.fingerprint, "f=1");
        assert_int_equal(got.created_at, 42);
        assert_null(got.repository);
        assert_int_equal(got.last_used_at, 0);
        snapshot_record_done(&got);
        assert_int_equal(store_snapshot_get_template(s, IMAGE1, 1, 256, VMM_QEMU, &got), 0);
        snapshot_record_done(&got);
        store_close(s);
}

/* A suspended VM is stored as such and is not live: no VMM process exists,
 * so an uninstall and the start-up sweep leave it be. */
static void test_suspended_state(void **state) {
        Store *s = open_populated("suspended.db");
        assert_int_equal(store_vm_set_state(s, VM1, VM_STATE_SUSPENDED, NULL), 0);
        VmRecord vm = {};
        assert_int_equal(store_vm_get_by_id(s, VM1, &vm), 0);
        assert_int_equal(vm.state, VM_STATE_SUSPENDED);
        assert_string_equal(vm_state_to_string(vm.state), "suspended");
        assert_int_equal(vm_state_from_string("suspended"), VM_STATE_SUSPENDED);
        assert_false(vm_state_is_live(vm.state));
        vm_record_done(&vm);
        store_close(s);
        _cleanup_free_ char *p = db_path("suspended.db");
        VmRecord *live = NULL;
        size_t n = 0;
        assert_int_equal(store_list_live_vms_readonly(p, &live, &n), 0);
        assert_int_equal(n, 0);
        vm_record_array_free(live, n);
}

/* A VM's idle settings: the config's by default (NULL), off (0), or its own;
 * last_used_at moves only forward, through store_vm_touch() alone. */
static void test_idle_fields(void **state) {
        Store *s = open_populated("idle.db");
        VmRecord vm = {};
        assert_int_equal(store_vm_get_by_id(s, VM1, &vm), 0);
        assert_int_equal(vm.idle_timeout_sec, 0);
        assert_int_equal(vm.idle_action, VM_IDLE_DEFAULT);
        assert_int_equal(vm.last_used_at, 0);
        vm.idle_timeout_sec = 300;
        vm.idle_action = VM_IDLE_SUSPEND;
        assert_int_equal(store_vm_update(s, &vm), 0);
        usec_t updated = vm.updated_at;
        vm_record_done(&vm);
        assert_int_equal(store_vm_touch(s, VM1, 2000000), 0);
        assert_int_equal(store_vm_touch(s, VM1, 1000000), 0); /* older: kept as it was */
        assert_int_equal(store_vm_get_by_id(s, VM1, &vm), 0);
        assert_int_equal(vm.idle_timeout_sec, 300);
        assert_int_equal(vm.idle_action, VM_IDLE_SUSPEND);
        assert_int_equal(vm.last_used_at, 2000000);
        assert_int_equal(vm.updated_at, updated);
        /* An update of the rest leaves last_used_at alone. */
        vm.idle_timeout_sec = VM_IDLE_TIMEOUT_OFF;
        vm.idle_action = VM_IDLE_STOP;
        vm.last_used_at = 5;
        assert_int_equal(store_vm_update(s, &vm), 0);
        vm_record_done(&vm);
        assert_int_equal(store_vm_get_by_id(s, VM1, &vm), 0);
        assert_int_equal(vm.idle_timeout_sec, VM_IDLE_TIMEOUT_OFF);
        assert_int_equal(vm.idle_action, VM_IDLE_STOP);
        assert_int_equal(vm.last_used_at, 2000000);
        vm.idle_timeout_sec = VM_IDLE_TIMEOUT_MAX + 1;
        assert_int_equal(store_vm_update(s, &vm), -EINVAL);
        vm_record_done(&vm);
        assert_string_equal(vm_idle_action_to_string(VM_IDLE_SUSPEND), "suspend");
        assert_null(vm_idle_action_to_string(VM_IDLE_DEFAULT));
        assert_int_equal(vm_idle_action_from_string("stop"), VM_IDLE_STOP);
        assert_int_equal(vm_idle_action_from_string(NULL), VM_IDLE_DEFAULT);
        assert_true(vm_idle_action_from_string("sleep") < 0);
        store_close(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_snapshot_crud, setup, teardown),
                cmocka_unit_test_setup_teardown(test_snapshot_dependents, setup, teardown),
                cmocka_unit_test_setup_teardown(test_templates, setup, teardown),
                cmocka_unit_test_setup_teardown(test_paused_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_workspace_snapshots, setup, teardown),
                cmocka_unit_test_setup_teardown(test_workspace_migration_keeps_snapshots, setup, teardown),
                cmocka_unit_test_setup_teardown(test_suspended_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_idle_fields, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
