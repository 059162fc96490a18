/* SPDX-License-Identifier: MIT */
/* banger vm snapshot|restore and banger snapshot list|show|delete|prune. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-vm.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"

static int snapshot_list_cmd(Cli *cli, int argc, char **argv);
static int snapshot_show_cmd(Cli *cli, int argc, char **argv);
static int snapshot_delete_cmd(Cli *cli, int argc, char **argv);
static int snapshot_prune_cmd(Cli *cli, int argc, char **argv);

const CliVerb cli_snapshot_verbs[] = {
        { "list", "ls", snapshot_list_cmd, "list snapshots, templates and workspace snapshots", "--json --help", "" },
        { "show", NULL, snapshot_show_cmd, "show one snapshot", "--json --help", "snapshot" },
        { "delete", "rm", snapshot_delete_cmd, "delete snapshots and their files", "--json --help", "snapshot" },
        { "prune", NULL, snapshot_prune_cmd, "delete templates and unused workspace snapshots (--all: every one)",
          "--all --json --help", "" },
        {},
};

int cmd_snapshot(Cli *cli, int argc, char **argv) {
        return cli_group_run(cli, "snapshot",
                             "A snapshot is a VM's saved CPU, device and memory state plus copies of its disks\n"
                             "('banger vm snapshot'). 'vm restore' rolls its VM back to it; 'vm create\n"
                             "--from-snapshot' makes new VMs that resume where it was taken. Templates are\n"
                             "snapshots banger makes itself for warm starts (config vm_templates); workspace\n"
                             "snapshots keep a VM a work tree's setup prepared ('vm run DIR').",
                             cli_snapshot_verbs, argc, argv);
}

static void vm_snapshot_help(void) {
        printf("Usage: banger vm snapshot VM [--name SNAP] [--stop] [--json]\n"
               "\n"
               "Pause VM, save its CPU, device and memory state, copy its disks while it is\n"
               "paused (reflink where the filesystem can, else a sparse copy: the progress\n"
               "says which), then let it run on. Stages: prepare, pause, save, disk, resume,\n"
               "ready. Nothing is left of a snapshot that fails or is interrupted.\n"
               "\n"
               "Options:\n"
               "  --name SNAP   snapshot name (a-z, 0-9 and '-' inside); default VM-N\n"
               "  --stop        stop the VM afterwards instead of letting it run on\n");
}

int vm_snapshot_cmd(Cli *cli, int argc, char **argv) {
        enum { OPT_NAME = CLI_OPT_FIRST_PRIVATE, OPT_STOP };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "name", required_argument, NULL, OPT_NAME },
                                              { "stop", no_argument, NULL, OPT_STOP },
                                              {} };
        const char *name = NULL;
        bool stop = false;
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        vm_snapshot_help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case OPT_NAME:
                        name = optarg;
                        break;
                case OPT_STOP:
                        stop = true;
                        break;
                default:
                        return cli_option_error("vm snapshot", argv);
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("vm snapshot", "expects one VM");
        if (name && !name_is_valid(name))
                return cli_invalid_name("vm snapshot", name);
        json_t *params = json_pack("{s:s, s:b}", "vm", argv[optind], "stop", stop);
        if (name)
                json_object_set_new(params, "name", json_string(name));
        _cleanup_rpc_client_ RpcClient *c = NULL;
        _cleanup_progress_ Progress *p = NULL;
        if (cli_connect(cli, &c) < 0 || progress_new(cli->json, &p) < 0) {
                json_decref(params);
                return EXIT_FAIL;
        }
        json_t *snap = NULL;
        if (vm_call(cli, c, "vm.snapshot", params, p, &snap, NULL) < 0)
                return EXIT_FAIL;
        if (cli->json)
                print_json_line(snap);
        else
                printf("snapshot %s of %s (%s)\n", json_str(snap, "name", "?"), argv[optind],
                       json_str(snap, "id", "?"));
        json_decref(snap);
        return EXIT_OK;
}

static void vm_restore_help(void) {
        printf("Usage: banger vm restore VM SNAPSHOT [--json]\n"
               "\n"
               "Roll VM back to one of its snapshots, in place: what it runs is discarded (its\n"
               "VMM is killed), its disks are replaced by copies of the snapshot's, and it\n"
               "resumes where the snapshot was taken, with the same name, address and TAP.\n"
               "A snapshot of another VM is refused: 'vm create --from-snapshot' clones it.\n");
}

int vm_restore_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "vm restore", vm_restore_help, argc, argv, 2, 2);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        _cleanup_rpc_client_ RpcClient *c = NULL;
        _cleanup_progress_ Progress *p = NULL;
        if (cli_connect(cli, &c) < 0 || progress_new(cli->json, &p) < 0)
                return EXIT_FAIL;
        json_t *vm = NULL;
        json_t *params = json_pack("{s:s, s:s}", "vm", argv[optind], "snapshot", argv[optind + 1]);
        if (vm_call(cli, c, "vm.restore", params, p, &vm, NULL) < 0)
                return EXIT_FAIL;
        if (cli->json)
                print_json_line(vm);
        else
                printf("restored %s from snapshot %s\n", json_str(vm, "name", argv[optind]), argv[optind + 1]);
        json_decref(vm);
        return EXIT_OK;
}

static uint64_t json_u64(json_t *o, const char *key) {
        return (uint64_t) json_integer_value(json_object_get(o, key));
}

static void print_snapshot(json_t *n) {
        char mem[16], state[16], disk[16], used[16], ago[32];
        json_make_printable(n); /* a kernel's version, an image's names: not ours */
        printf("name:       %s\n", json_str(n, "name", "-"));
        printf("id:         %s\n", json_str(n, "id", "-"));
        printf("kind:       %s\n", json_str(n, "kind", "-"));
        printf("vm:         %s\n", json_str(n, "vm", "-"));
        if (json_is_string(json_object_get(n, "repository")))
                printf("repository: %s\n", json_str(n, "repository", "-"));
        printf("image:      %s\n", json_str(n, "image", "-"));
        printf("shape:      %lld vCPU, %s memory, %s disk\n", json_integer_value(json_object_get(n, "vcpu")),
               format_size(mem, sizeof(mem), json_u64(n, "memory_mib") << 20),
               format_size(disk, sizeof(disk), json_u64(n, "disk_bytes")));
        printf("vmm:        %s (%s)\n", json_str(n, "vmm", "-"), json_str(n, "vmm_version", "-"));
        printf("state:      %s saved state%s\n",
               format_size(state, sizeof(state), json_u64(n, "state_bytes") + json_u64(n, "memory_bytes")),
               json_u64(n, "memory_bytes") ? " (memory file included)" : "");
        printf("disks:      %s on disk\n", format_size(used, sizeof(used), json_u64(n, "disk_used_bytes")));
        printf("directory:  %s\n", json_str(n, "dir", "-"));
        printf("created:    %s (%s)\n", json_str(n, "created_at", "-"),
               format_ago(ago, sizeof(ago), json_str(n, "created_at", NULL)));
        if (json_is_string(json_object_get(n, "last_used_at")))
                printf("last used:  %s (%s)\n", json_str(n, "last_used_at", "-"),
                       format_ago(ago, sizeof(ago), json_str(n, "last_used_at", NULL)));
}

static void list_help(void) {
        printf("Usage: banger snapshot list [--json]\n"
               "\n"
               "List snapshots: NAME KIND VM IMAGE VCPU MEM VMM STATE DISKS CREATED REPOSITORY,\n"
               "where KIND is user, template or workspace, STATE the saved state's size (memory\n"
               "included), DISKS what the disk copies take and REPOSITORY the work tree a\n"
               "workspace snapshot was prepared for.\n");
}

static void add_row(Table *t, json_t *n) {
        char vcpu[16], mem[16], state[16], used[16], ago[32];
        snprintf(vcpu, sizeof(vcpu), "%lld", json_integer_value(json_object_get(n, "vcpu")));
        const char *row[] = { json_str(n, "name", "-"),
                              json_str(n, "kind", "-"),
                              json_str(n, "vm", "-"),
                              json_str(n, "image", "-"),
                              vcpu,
                              format_size(mem, sizeof(mem), json_u64(n, "memory_mib") << 20),
                              json_str(n, "vmm", "-"),
                              format_size(state, sizeof(state),
                                          json_u64(n, "state_bytes") + json_u64(n, "memory_bytes")),
                              format_size(used, sizeof(used), json_u64(n, "disk_used_bytes")),
                              format_ago(ago, sizeof(ago), json_str(n, "created_at", NULL)),
                              json_str(n, "repository", "-") };
        (void) table_add_row(t, row);
}

static void print_list(json_t *res) {
        static const char *const hdr[] = { "NAME", "KIND",  "VM",    "IMAGE",   "VCPU",      "MEM",
                                           "VMM",  "STATE", "DISKS", "CREATED", "REPOSITORY" };
        _cleanup_table_ Table *t = table_new(ELEMENTSOF(hdr), hdr);
        size_t i;
        json_t *n;
        if (!t)
                return;
        json_array_foreach (json_object_get(res, "snapshots"), i, n)
                add_row(t, n);
        table_print(t, stdout);
}

static int snapshot_list_cmd(Cli *cli, int argc, char **argv) {
        return cli_list(cli, "snapshot list", list_help, argc, argv, "snapshot.list", print_list);
}

static void show_help(void) {
        printf("Usage: banger snapshot show SNAPSHOT [--json]\n"
               "\n"
               "Show a snapshot: its VM, image, shape, VMM and version, sizes and directory.\n");
}

static int snapshot_show_cmd(Cli *cli, int argc, char **argv) {
        return cli_show_one(cli, "snapshot show", show_help, argc, argv, "snapshot.show", "name", print_snapshot);
}

static void delete_help(void) {
        printf("Usage: banger snapshot delete SNAPSHOT... [--json]\n"
               "\n"
               "Delete snapshots: their saved state and disk copies, then their records. VMs\n"
               "made from them are not affected (they have disks of their own). Exit code 1\n"
               "when any deletion failed.\n");
}

static int snapshot_delete_cmd(Cli *cli, int argc, char **argv) {
        return cli_for_each_named(cli, "snapshot delete", delete_help, argc, argv, "snapshot.delete", "deleted",
                                  "snapshot");
}

static void prune_help(void) {
        printf("Usage: banger snapshot prune [--all] [--json]\n"
               "\n"
               "Delete the warm-start templates (banger makes a new one after the next cold\n"
               "boot of each shape) and the workspace snapshots made or last used at least\n"
               "workspace_snapshot_max_age_days ago (config.toml; 14 unless set, 0: never by\n"
               "age). With --all, delete every snapshot.\n");
}

static int snapshot_prune_cmd(Cli *cli, int argc, char **argv) {
        bool all = false;
        for (int i = 1; i < argc; i++) {
                bool helped = false;
                if (cli_common_option(cli, argv[i], prune_help, &helped)) {
                        if (helped)
                                return EXIT_OK;
                } else if (streq(argv[i], "--all"))
                        all = true;
                else
                        return cli_usage_error("snapshot prune", "unexpected argument '%s'", argv[i]);
        }
        _cleanup_rpc_client_ RpcClient *c = NULL;
        json_t *res = NULL;
        if (cli_connect(cli, &c) < 0 || cli_call(cli, c, "snapshot.prune", json_pack("{s:b}", "all", all), &res) < 0)
                return EXIT_FAIL;
        return cli_print_deleted(cli, res);
}
