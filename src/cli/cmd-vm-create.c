/* SPDX-License-Identifier: MIT */
/* banger vm create and vm run: option parsing, default resolution (config
 * [vm_defaults], then built-in constants), progress, and for
 * run the session or command afterwards with --rm cleanup on signals. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd-vm.h"
#include "config.h"
#include "error.h"
#include "fs-util.h"
#include "macro.h"
#include "port-spec.h"
#include "string-util.h"
#include "toml.h"
#include "verbs.h"
#include "cmd-vm-guard.h"
#include "workspace.h"

typedef struct VmSpec {
        const char *name; /* NULL: the daemon generates one */
        char *image;
        unsigned vcpu;
        unsigned long long memory_mib, disk_bytes;
        bool nat, no_start, cold, new_host_keys;
        const char *vmm;           /* NULL: config default_vmm */
        const char *from_snapshot; /* a clone: the snapshot decides the rest */
        /* A work tree and its setup's key: vm.create restores the workspace
         * snapshot they prepared, if any. */
        const char *workspace_top, *setup_key;
        char *const *ports; /* -p specs, checked */
        size_t n_ports;
        const char *idle_timeout, *idle_action; /* checked; NULL: the config's */
        ConfigVmm default_vmm;
        /* Where each default came from, for --help. */
        const char *vcpu_from, *memory_from, *disk_from, *image_from;
} VmSpec;

static void vm_spec_done(VmSpec *s) {
        free(s->image);
        s->image = NULL;
}

/* BangerConfig fills unset keys with constants, so whether [vm_defaults]
 * names a key is read from the file itself. */
static bool config_sets(const TomlValue *root, const char *key) {
        const TomlValue *vd = root ? toml_table_get(root, "vm_defaults") : NULL;
        return vd && vd->type == TOML_TABLE && toml_table_get(vd, key);
}

static int load_config(Cli *cli, BangerConfig *ret, TomlValue **ret_root) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, cli->paths.config_dir);
        if (dfd == -ENOENT)
                return config_init(ret);
        if (dfd < 0)
                return error_setf(dfd, "%s: %s", cli->paths.config_dir, strerror(-dfd));
        int r = config_load(dfd, CONFIG_FILE_NAME, ret);
        if (r < 0)
                return r;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        if (read_file_at(dfd, CONFIG_FILE_NAME, TOML_MAX_SIZE, &data, &len) >= 0)
                (void) toml_parse(data, len, CONFIG_FILE_NAME, ret_root);
        return 0;
}

static int resolve_defaults(Cli *cli, VmSpec *s) {
        BangerConfig cfg;
        _cleanup_toml_free_ TomlValue *root = NULL;
        error_clear();
        int r = load_config(cli, &cfg, &root);
        if (r < 0)
                return r;
        /* The built-in constants are config_init()'s: fixed, like the sizes
         * other dev-VM tools start with, not a share of this host. */
        s->vcpu = cfg.vm_defaults.vcpu;
        s->memory_mib = cfg.vm_defaults.memory_mib;
        s->vcpu_from = config_sets(root, "vcpu") ? "config" : "built in";
        s->memory_from = config_sets(root, "memory") ? "config" : "built in";
        s->disk_bytes = cfg.vm_defaults.disk_size;
        s->disk_from = config_sets(root, "disk_size") ? "config" : "built in";
        s->image = strdup(config_vm_image(&cfg));
        s->image_from = config_sets(root, "image") ? "config" : "config default_image";
        s->nat = cfg.vm_defaults.nat;
        s->default_vmm = cfg.default_vmm;
        config_done(&cfg);
        return s->image ? 0 : -ENOMEM;
}

static void print_config_error(Cli *cli, int r) {
        fprintf(stderr, "banger: %s/%s: %s\n", cli->paths.config_dir, CONFIG_FILE_NAME,
                error_last_message() ? error_last_message() : strerror(-r));
}

static void spec_help(Cli *cli, bool run) {
        _cleanup_(vm_spec_done) VmSpec s = {};
        int r = resolve_defaults(cli, &s);
        char mem[16], disk[16];
        if (r < 0)
                print_config_error(cli, r);
        format_size(mem, sizeof(mem), s.memory_mib << 20);
        format_size(disk, sizeof(disk), s.disk_bytes);
        printf("Options (defaults from your config, else built in):\n"
               "  --name NAME       unique; a-z, 0-9 and '-' inside, at most 63 (the guest's\n"
               "                    hostname); default: generated\n"
               "  --image IMAGE     image to boot; default: %s (%s)\n"
               "  --vcpu N          virtual CPUs, 1..64; default: %u (%s)\n"
               "  --memory SIZE     guest memory, MiB as a bare number or with a unit (2G);\n"
               "                    default: %s (%s)\n"
               "  --disk-size SIZE  writable disk, with a unit (8G, 512M); default: %s (%s)\n"
               "  --nat, --no-nat   outbound internet through host NAT; default: %s\n"
               "  --vmm VMM         firecracker or qemu; default: %s (config default_vmm;\n"
               "                    auto is Firecracker with KVM, else QEMU)\n",
               s.image ? s.image : "?", s.image_from, s.vcpu, s.vcpu_from, mem, s.memory_from, disk, s.disk_from,
               s.nat ? "on" : "off", config_vmm_to_string(s.default_vmm));
        if (!run)
                printf("  --no-start        create the VM (disks, address) without starting it\n");
        printf("  --from-snapshot SNAP  a new VM that resumes where snapshot SNAP was taken (its\n"
               "                    image, size and VMM; its own name, address, MAC and TAP)\n"
               "  --new-host-keys   with --from-snapshot: new SSH host keys and machine id in the\n"
               "                    guest, not the snapshot's (made by its ssh-keygen/dropbearkey)\n"
               "  --cold            boot even when a warm-start template of this image and size\n"
               "                    exists (config vm_templates), and make none\n"
               "  --workspace DIR   copy the git work tree DIR (tracked and untracked, not ignored\n"
               "                    files, and a shallow .git) to /root/<name of DIR> in the guest\n"
               "  --branch REF      with a workspace: copy the commit REF instead of the work tree\n"
               "  --no-setup        with a workspace: do not run its .banger/setup nor mise install\n"
               "  --refresh-setup   with a workspace: run its setup even when a workspace snapshot\n"
               "                    of the same setup inputs exists, and keep the VM anew\n"
               "  -p, --publish [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp]\n"
               "                    forward a host port to a port of the guest, through its agent\n"
               "                    (repeatable; HOST_IP defaults to 127.0.0.1; tcp only)\n"
               "  --idle-timeout D  stop or suspend the VM once nobody used it for D (30m, 1h30m;\n"
               "                    off: never); default: config idle_timeout\n"
               "  --idle-action A   stop or suspend; default: config idle_action\n");
        printf("  --json            print progress events and the result as JSON lines\n"
               "  -h, --help        show this help\n"
               "\nDefaults come from [vm_defaults] in %s/%s, else the built-in\n"
               "constants. Sizes must be greater than zero; vCPUs and memory at most what this\n"
               "host has.\n",
               cli->paths.config_dir, CONFIG_FILE_NAME);
}

static void create_help(Cli *cli) {
        printf("Usage: banger vm create [OPTIONS]\n"
               "\n"
               "Create a VM and start it: prints a 'spec:' line, then the stages (prepare, disk,\n"
               "network, launch, boot, agent, ssh, ready) live on a terminal or as plain lines\n"
               "otherwise, and returns once the guest agent answers. On failure the VM is left in\n"
               "state error with its disks, and the console's last lines are shown.\n\n");
        spec_help(cli, false);
}

static void run_help(Cli *cli) {
        printf("Usage: banger vm run [OPTIONS] [--rm] [-d] [DIR] [-- COMMAND [ARGS...]]\n"
               "\n"
               "Create and start a VM, wait until it is ready, then open a shell, or with a\n"
               "COMMAND run it through the guest agent and exit with its exit code (128+N when\n"
               "killed by signal N). stdin, stdout and stderr pass through. The shell is an SSH\n"
               "session, or a login shell through the agent (on a terminal like ours) when no\n"
               "sshd answers in the guest or with DIR. With DIR (the top of a git work tree,\n"
               "the same as --workspace DIR) the work tree is copied to /root/<name of DIR>\n"
               "first and COMMAND (or the shell) runs there; when DIR has an executable\n"
               ".banger/setup (or mise files) it runs first, as root, and COMMAND only after it\n"
               "succeeded; a failed setup exits with its code ('vm workspace log VM' prints its\n"
               "log; see docs/workspaces.md). A setup that succeeded is kept as a workspace\n"
               "snapshot: a later run of DIR with the same setup inputs, image and size resumes\n"
               "it, copies only the files changed since and skips the setup.\n"
               "\n"
               "  --rm              delete the VM afterwards, also on Ctrl-C or SIGTERM\n"
               "  -d, --detach      return once the VM is ready (prints it)\n\n");
        spec_help(cli, true);
}

enum {
        OPT_NAME = CLI_OPT_FIRST_PRIVATE,
        OPT_IMAGE,
        OPT_VCPU,
        OPT_MEMORY,
        OPT_DISK,
        OPT_NAT,
        OPT_NO_NAT,
        OPT_VMM,
        OPT_NO_START,
        OPT_RM,
        OPT_FROM_SNAPSHOT,
        OPT_COLD,
        OPT_NEW_HOST_KEYS,
        OPT_WORKSPACE,
        OPT_BRANCH,
        OPT_NO_SETUP,
        OPT_REFRESH_SETUP,
        OPT_IDLE_TIMEOUT,
        OPT_IDLE_ACTION,
};

#define SPEC_MAX_PORTS 64

typedef struct SpecArgs {
        const char *name, *image, *vcpu, *memory, *disk, *vmm, *from_snapshot, *workspace, *branch;
        const char *idle_timeout, *idle_action;
        char *ports[SPEC_MAX_PORTS];
        size_t n_ports;
        int nat; /* -1 unset */
        bool no_start, rm, detach, cold, no_setup, refresh_setup, new_host_keys;
} SpecArgs;

/* The options that take a string as it is. */
static const char **spec_string_field(SpecArgs *a, int o) {
        switch (o) {
        case OPT_NAME:
                return &a->name;
        case OPT_IMAGE:
                return &a->image;
        case OPT_VCPU:
                return &a->vcpu;
        case OPT_MEMORY:
                return &a->memory;
        case OPT_DISK:
                return &a->disk;
        case OPT_VMM:
                return &a->vmm;
        case OPT_FROM_SNAPSHOT:
                return &a->from_snapshot;
        case OPT_WORKSPACE:
                return &a->workspace;
        case OPT_BRANCH:
                return &a->branch;
        case OPT_IDLE_TIMEOUT:
                return &a->idle_timeout;
        case OPT_IDLE_ACTION:
                return &a->idle_action;
        default:
                return NULL;
        }
}

static const struct option spec_opts[] = { CLI_COMMON_LONG_OPTIONS,
                                           { "name", required_argument, NULL, OPT_NAME },
                                           { "image", required_argument, NULL, OPT_IMAGE },
                                           { "vcpu", required_argument, NULL, OPT_VCPU },
                                           { "memory", required_argument, NULL, OPT_MEMORY },
                                           { "disk-size", required_argument, NULL, OPT_DISK },
                                           { "nat", no_argument, NULL, OPT_NAT },
                                           { "no-nat", no_argument, NULL, OPT_NO_NAT },
                                           { "vmm", required_argument, NULL, OPT_VMM },
                                           { "no-start", no_argument, NULL, OPT_NO_START },
                                           { "rm", no_argument, NULL, OPT_RM },
                                           { "detach", no_argument, NULL, 'd' },
                                           { "from-snapshot", required_argument, NULL, OPT_FROM_SNAPSHOT },
                                           { "cold", no_argument, NULL, OPT_COLD },
                                           { "new-host-keys", no_argument, NULL, OPT_NEW_HOST_KEYS },
                                           { "workspace", required_argument, NULL, OPT_WORKSPACE },
                                           { "branch", required_argument, NULL, OPT_BRANCH },
                                           { "no-setup", no_argument, NULL, OPT_NO_SETUP },
                                           { "refresh-setup", no_argument, NULL, OPT_REFRESH_SETUP },
                                           { "publish", required_argument, NULL, 'p' },
                                           { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
                                           { "idle-action", required_argument, NULL, OPT_IDLE_ACTION },
                                           {} };

/* The plain on/off options, by their getopt code. */
static bool *spec_flag_field(SpecArgs *a, int o) {
        switch (o) {
        case OPT_COLD:
                return &a->cold;
        case OPT_NEW_HOST_KEYS:
                return &a->new_host_keys;
        case OPT_NO_SETUP:
                return &a->no_setup;
        case OPT_REFRESH_SETUP:
                return &a->refresh_setup;
        default:
                return NULL;
        }
}

static int parse_spec_args(Cli *cli, const char *cmd, bool run, int argc, char **argv, SpecArgs *a) {
        *a = (SpecArgs){ .nat = -1 };
        int o;
        while ((o = getopt_long(argc, argv, run ? "hdp:" : "hp:", spec_opts, NULL)) >= 0) {
                const char **field = spec_string_field(a, o);
                bool *flag = spec_flag_field(a, o);
                if (field || flag) {
                        if (field)
                                *field = optarg;
                        else
                                *flag = true;
                        continue;
                }
                switch (o) {
                case 'h':
                        run ? run_help(cli) : create_help(cli);
                        return -1;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case OPT_NAT:
                        a->nat = 1;
                        break;
                case OPT_NO_NAT:
                        a->nat = 0;
                        break;
                case 'p':
                        if (a->n_ports >= SPEC_MAX_PORTS)
                                return cli_usage_error(cmd, "at most %d port forwards", SPEC_MAX_PORTS);
                        a->ports[a->n_ports++] = optarg;
                        break;
                case OPT_NO_START:
                        if (run)
                                return cli_option_error(cmd, argv);
                        a->no_start = true;
                        break;
                case OPT_RM:
                        if (!run)
                                return cli_option_error(cmd, argv);
                        a->rm = true;
                        break;
                case 'd':
                        if (!run)
                                return cli_option_error(cmd, argv);
                        a->detach = true;
                        break;
                default:
                        return cli_option_error(cmd, argv);
                }
        }
        return 0;
}

/* A clone takes image, size and VMM from its snapshot. */
static int check_from_snapshot(const char *cmd, const SpecArgs *a) {
        if (!a->from_snapshot)
                return a->new_host_keys ? cli_usage_error(cmd, "--new-host-keys is for a VM made from a snapshot "
                                                               "(--from-snapshot): a VM that boots makes its own")
                                        : 0;
        if (!name_is_valid(a->from_snapshot))
                return cli_usage_error(cmd, "invalid snapshot reference '%s'", a->from_snapshot);
        if (a->image || a->vcpu || a->memory || a->disk || a->vmm || a->no_start || a->cold)
                return cli_usage_error(cmd, "--from-snapshot takes the image, size and VMM from the snapshot: "
                                            "--image, --vcpu, --memory, --disk-size, --vmm, --cold and "
                                            "--no-start do not apply");
        return 0;
}

/* Validate everything before any RPC, then fill the spec over the defaults. */
static int build_spec(Cli *cli, const char *cmd, const SpecArgs *a, VmSpec *s) {
        int r = check_from_snapshot(cmd, a);
        if (r != 0)
                return r;
        if ((a->branch || a->no_setup || a->refresh_setup) && !a->workspace)
                return cli_usage_error(cmd, "--branch, --no-setup and --refresh-setup need a workspace "
                                            "(--workspace DIR)");
        if (a->no_setup && a->refresh_setup)
                return cli_usage_error(cmd, "--no-setup and --refresh-setup exclude each other");
        if (a->workspace && a->no_start)
                return cli_usage_error(cmd, "a workspace is copied into a running VM: --no-start does not apply");
        if (a->name && !name_is_valid(a->name))
                return cli_usage_error(cmd, "invalid name '%s': use " NAME_RULE, a->name);
        if (a->image && !name_is_valid(a->image))
                return cli_usage_error(cmd, "invalid image name '%s'", a->image);
        if (a->vmm && !streq(a->vmm, "firecracker") && !streq(a->vmm, "qemu"))
                return cli_usage_error(cmd, "invalid --vmm '%s': use firecracker or qemu", a->vmm);
        unsigned vcpu = 0;
        unsigned long long mib = 0, disk = 0;
        if (a->vcpu && (r = vm_parse_vcpu_arg(cmd, a->vcpu, &vcpu)) != 0)
                return r;
        if (a->memory && (r = vm_parse_memory_arg(cmd, a->memory, &mib)) != 0)
                return r;
        if (a->disk && (r = vm_parse_disk_arg(cmd, a->disk, &disk)) != 0)
                return r;
        if ((r = vm_parse_idle_args(cmd, a->idle_timeout, a->idle_action)) != 0)
                return r;
        for (size_t i = 0; i < a->n_ports; i++) {
                PortSpec p;
                if (port_spec_parse(a->ports[i], &p) < 0)
                        return cli_usage_error(cmd, "%s", error_last_message());
        }
        r = resolve_defaults(cli, s);
        if (r < 0) {
                print_config_error(cli, r);
                return EXIT_FAIL;
        }
        s->name = a->name;
        s->vmm = a->vmm;
        s->no_start = a->no_start;
        s->cold = a->cold;
        s->new_host_keys = a->new_host_keys;
        s->from_snapshot = a->from_snapshot;
        s->ports = a->ports;
        s->n_ports = a->n_ports;
        s->idle_timeout = a->idle_timeout;
        s->idle_action = a->idle_action;
        if (a->image) {
                free(s->image);
                s->image = strdup(a->image);
        }
        if (vcpu)
                s->vcpu = vcpu;
        if (mib)
                s->memory_mib = mib;
        if (disk)
                s->disk_bytes = disk;
        if (a->nat >= 0)
                s->nat = a->nat;
        return s->image ? 0 : EXIT_FAIL;
}

/* Every resolved value is sent, so the spec line shows what the VM gets. */
static json_t *spec_params(const VmSpec *s) {
        json_t *p = s->from_snapshot ? json_pack("{s:s, s:b}", "from_snapshot", s->from_snapshot, "nat", s->nat)
                                     : json_pack("{s:s, s:i, s:I, s:I, s:b, s:b}", "image", s->image, "vcpu",
                                                 (int) s->vcpu, "memory_mib", (json_int_t) s->memory_mib, "disk_bytes",
                                                 (json_int_t) s->disk_bytes, "nat", s->nat, "no_start", s->no_start);
        if (p && s->cold)
                json_object_set_new(p, "cold", json_true());
        if (p && s->new_host_keys)
                json_object_set_new(p, "new_host_keys", json_true());
        if (p && s->name)
                json_object_set_new(p, "name", json_string(s->name));
        if (p && s->vmm)
                json_object_set_new(p, "vmm", json_string(s->vmm));
        if (p && s->setup_key) {
                json_object_set_new(p, "workspace", json_string(s->workspace_top));
                json_object_set_new(p, "setup_key", json_string(s->setup_key));
        }
        if (p && s->idle_timeout)
                json_object_set_new(p, "idle_timeout", json_string(s->idle_timeout));
        if (p && s->idle_action)
                json_object_set_new(p, "idle_action", json_string(s->idle_action));
        json_t *ports = p && s->n_ports > 0 ? json_array() : NULL;
        for (size_t i = 0; ports && i < s->n_ports; i++)
                json_array_append_new(ports, json_string(s->ports[i]));
        if (ports)
                json_object_set_new(p, "ports", ports);
        return p;
}

static void print_spec(Cli *cli, const VmSpec *s) {
        const char *vmm = s->vmm ? s->vmm : config_vmm_to_string(s->default_vmm);
        if (cli->json) {
                json_t *e = spec_params(s);
                json_object_set_new(e, "event", json_string("spec"));
                json_object_set_new(e, "vmm", json_string(vmm));
                print_json_line(e);
                json_decref(e);
                return;
        }
        char mem[16], disk[16];
        if (s->from_snapshot) {
                fprintf(stderr, "spec: name=%s from snapshot %s nat=%s\n", s->name ? s->name : "(generated)",
                        s->from_snapshot, s->nat ? "on" : "off");
                return;
        }
        fprintf(stderr, "spec: name=%s image=%s vcpu=%u memory=%s disk=%s nat=%s vmm=%s%s\n",
                s->name ? s->name : "(generated)", s->image, s->vcpu,
                format_size(mem, sizeof(mem), s->memory_mib << 20), format_size(disk, sizeof(disk), s->disk_bytes),
                s->nat ? "on" : "off", vmm, s->no_start ? " (not started)" : "");
}

/* With a work tree that has a setup (and no --branch or --no-setup): its
 * key, which vm.create is given unless --refresh-setup, and after which a
 * setup that succeeded is kept. 0, or the exit code after the reason. */
static int prepare_workspace(Cli *cli, const char *cmd, const SpecArgs *a, WsPrepared *wp, VmSpec *s) {
        if (!a->workspace || a->branch || a->no_setup || a->from_snapshot)
                return 0;
        if (ws_prepared_key(cmd, a->workspace, wp) < 0)
                return EXIT_FAIL;
        if (wp->key && !a->refresh_setup) {
                s->workspace_top = wp->top;
                s->setup_key = wp->key;
        }
        return 0;
}

/* The spec from the arguments and the config, then the daemon: 0, or the
 * exit code after the reason was printed. */
static int spec_and_connect(Cli *cli, const char *cmd, const SpecArgs *a, VmSpec *s, RpcClient **ret) {
        int r = build_spec(cli, cmd, a, s);
        if (r != 0)
                return r;
        return cli_connect(cli, ret) < 0 ? EXIT_FAIL : 0;
}

/* vm.create with progress; *ret_vm_id gets the id even on failure when the
 * daemon named one (the VM was made but did not start). */
static int create_vm(Cli *cli, RpcClient *c, const VmSpec *s, json_t **ret_vm, char **ret_vm_id) {
        print_spec(cli, s);
        _cleanup_progress_ Progress *p = NULL;
        if (progress_new(cli->json, &p) < 0)
                return -ENOMEM;
        return vm_call(cli, c, "vm.create", spec_params(s), p, ret_vm, ret_vm_id);
}

/* A VM that was made but did not start stays, in state error: say what to
 * do, naming it as the user knows it. */
static void print_failed_hint(Cli *cli, RpcClient *c, const char *id) {
        json_t *vm = NULL;
        if (cli->json || !id ||
            rpc_client_call(c, "vm.show", json_pack("{s:s}", "vm", id), 10 * USEC_PER_SEC, NULL, NULL, &vm, NULL) < 0)
                return;
        const char *n = json_str(vm, "name", id);
        fprintf(stderr,
                "banger: vm %s stays, in state error: 'banger vm set %s' changes its size, 'banger vm start %s' "
                "tries again, 'banger vm delete %s' removes it\n",
                n, n, n, n);
        json_decref(vm);
}

static void print_result(Cli *cli, json_t *vm) {
        if (cli->json) {
                json_t *e = json_pack("{s:s, s:O}", "event", "result", "vm", vm);
                print_json_line(e);
                json_decref(e);
        } else
                vm_print_created(vm);
}

int vm_create_cmd(Cli *cli, int argc, char **argv) {
        SpecArgs a;
        int r = parse_spec_args(cli, "vm create", false, argc, argv, &a);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        if (optind < argc)
                return cli_usage_error("vm create", "unexpected argument '%s'", argv[optind]);
        if (a.workspace && workspace_check("vm create", a.workspace, a.branch) < 0)
                return EXIT_USAGE;
        _cleanup_(vm_spec_done) VmSpec s = {};
        _cleanup_(ws_prepared_done) WsPrepared wp = {};
        _cleanup_rpc_client_ RpcClient *c = NULL;
        r = spec_and_connect(cli, "vm create", &a, &s, &c);
        if (r == 0)
                r = prepare_workspace(cli, "vm create", &a, &wp, &s);
        if (r != 0)
                return r;
        json_t *vm = NULL;
        _cleanup_free_ char *failed_id = NULL;
        if (create_vm(cli, c, &s, &vm, &failed_id) < 0) {
                print_failed_hint(cli, c, failed_id);
                return EXIT_FAIL;
        }
        _cleanup_free_ char *guest = NULL;
        WsStartOptions wo = { .dir = a.workspace,
                              .branch = a.branch,
                              .no_setup = a.no_setup,
                              .prepared = &wp,
                              .restored = json_object_get(vm, "workspace_snapshot") };
        r = a.workspace ? vm_workspace_start(cli, c, "vm create", json_str(vm, "id", ""), &wo, &guest) : 0;
        if (r != 0) {
                fprintf(stderr,
                        r < 0 ? "banger: vm %s runs without its workspace\n"
                              : "banger: vm %s runs, with its workspace not set up\n",
                        json_str(vm, "name", ""));
                json_decref(vm);
                return r > 0 ? r : EXIT_FAIL;
        }
        print_result(cli, vm);
        json_decref(vm);
        return EXIT_OK;
}

/* After the VM is ready: a command through the agent, or a shell: SSH
 * (exec'd, unless --rm needs us afterwards), or through the agent when the
 * guest has no sshd listening or the shell belongs in a workspace.
 * Returns the exit status. */
static int run_payload(Cli *cli, RpcClient *c, const char *id, char **cmd, const char *workdir, bool ssh_ready,
                       bool keep_process) {
        int status = EXIT_FAIL;
        if (cmd && cmd[0]) {
                if (vm_exec_in_guest(cli, c, id, cmd, workdir, USEC_INFINITY, &status) < 0)
                        return EXIT_FAIL;
                return status;
        }
        if (!ssh_ready || workdir) {
                if (!ssh_ready)
                        fprintf(stderr, "banger: no sshd answers in the guest: a shell through banger's agent\n");
                if (vm_shell_in_guest(cli, c, id, workdir, &status) < 0)
                        return EXIT_FAIL;
                return status;
        }
        _cleanup_strv_free_ char **ssh = NULL;
        if (vm_ssh_argv(cli, c, id, NULL, &ssh) < 0)
                return EXIT_FAIL;
        fflush(NULL);
        if (!keep_process) {
                execv(ssh[0], ssh);
                fprintf(stderr, "banger: cannot run %s: %s\n", ssh[0], strerror(errno));
                return EXIT_FAIL;
        }
        return vm_run_guard_spawn_wait(ssh);
}

/* vm run [OPTIONS] [DIR] [-- COMMAND...]: options and DIR before the first
 * "--", the command after it. */
static int parse_run_args(Cli *cli, int argc, char **argv, SpecArgs *a, char ***ret_cmd) {
        int dd = 1;
        while (dd < argc && !streq(argv[dd], "--"))
                dd++;
        int r = parse_spec_args(cli, "vm run", true, dd, argv, a);
        if (r != 0)
                return r;
        if (dd - optind > 1 || (dd - optind == 1 && a->workspace))
                return cli_usage_error("vm run", "unexpected argument '%s': one work tree, and the command after --",
                                       argv[dd - 1]);
        if (dd - optind == 1)
                a->workspace = argv[optind];
        if (a->branch && !a->workspace)
                return cli_usage_error("vm run", "--branch needs a work tree (vm run DIR)");
        if (a->rm && a->detach)
                return cli_usage_error("vm run", "--rm and --detach exclude each other");
        if (a->detach && dd + 1 < argc)
                return cli_usage_error("vm run", "--detach takes no command");
        *ret_cmd = argv + MIN(dd + 1, argc);
        return a->workspace && workspace_check("vm run", a->workspace, a->branch) < 0 ? EXIT_USAGE : 0;
}

int vm_run_cmd(Cli *cli, int argc, char **argv) {
        SpecArgs a;
        char **cmd = NULL;
        int r = parse_run_args(cli, argc, argv, &a, &cmd);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        _cleanup_(vm_spec_done) VmSpec s = {};
        _cleanup_(ws_prepared_done) WsPrepared wp = {};
        _cleanup_rpc_client_ RpcClient *c = NULL;
        r = spec_and_connect(cli, "vm run", &a, &s, &c);
        if (r == 0)
                r = prepare_workspace(cli, "vm run", &a, &wp, &s);
        if (r != 0)
                return r;
        _cleanup_(vm_run_guard_freep) VmRunGuard *g = NULL;
        if (a.rm && vm_run_guard_new(cli, &g) < 0) {
                fprintf(stderr, "banger: cannot set up --rm signal handling\n");
                return EXIT_FAIL;
        }
        json_t *vm = NULL;
        _cleanup_free_ char *failed_id = NULL;
        r = create_vm(cli, c, &s, &vm, &failed_id);
        if (g)
                vm_run_guard_created(g, r >= 0 ? json_str(vm, "id", NULL) : failed_id);
        if (r < 0 && g)
                return vm_run_guard_finish(g, c, EXIT_FAIL);
        if (r < 0) {
                /* vm run made it to run something: a VM that never started
                 * is no use to keep. */
                if (failed_id && vm_delete_ref(cli, c, failed_id) >= 0 && !cli->json)
                        fprintf(stderr, "banger: deleted the VM, which did not start\n");
                return EXIT_FAIL;
        }
        _cleanup_free_ char *id = strdup(json_str(vm, "id", ""));
        bool ssh_ready = json_is_true(json_object_get(json_object_get(vm, "ready"), "ssh"));
        if (a.detach || cli->json)
                print_result(cli, vm);
        _cleanup_(json_decrefp) json_t *restored = json_incref(json_object_get(vm, "workspace_snapshot"));
        json_decref(vm);
        if (!id)
                return EXIT_FAIL;
        _cleanup_free_ char *guest = NULL;
        int status = EXIT_OK;
        WsStartOptions wo = { .dir = a.workspace,
                              .branch = a.branch,
                              .no_setup = a.no_setup,
                              .prepared = &wp,
                              .restored = restored,
                              .guard = g };
        if (a.workspace && !vm_run_guard_interrupted(g) &&
            (r = vm_workspace_start(cli, c, "vm run", id, &wo, &guest)) != 0)
                status = r > 0 ? r : EXIT_FAIL;
        else if (!a.detach)
                status = vm_run_guard_interrupted(g) ? EXIT_FAIL
                                                     : run_payload(cli, c, id, cmd, guest, ssh_ready, g != NULL);
        if (g && a.workspace)
                vm_workspace_forget(cli, id);
        return g ? vm_run_guard_finish(g, c, status) : status;
}
