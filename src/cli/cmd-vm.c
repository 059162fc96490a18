/* SPDX-License-Identifier: MIT */
/* banger vm: the verb table and the verbs that are one daemon call each
 * (list, show, set, prune, and the lifecycle verbs over several VMs). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call-error.h"
#include "cmd-vm.h"
#include "config.h"
#include "operation-cancel.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"
#include "workspace.h"

static int vm_list_cmd(Cli *cli, int argc, char **argv);
static int vm_show_cmd(Cli *cli, int argc, char **argv);
static int vm_set_cmd(Cli *cli, int argc, char **argv);
static int vm_prune_cmd(Cli *cli, int argc, char **argv);
static int vm_lifecycle_cmd(Cli *cli, int argc, char **argv);

const CliVerb cli_vm_verbs[] = {
        { "create", NULL, vm_create_cmd, "create a VM and start it (unless --no-start)",
          "--name= --image= --vcpu= --memory= --disk-size= --nat --no-nat --vmm= --no-start --from-snapshot= "
          "--new-host-keys --cold "
          "--workspace= --branch= --no-setup --refresh-setup -p --publish= --idle-timeout= --idle-action= --json "
          "--help",
          "" },
        { "run", NULL, vm_run_cmd, "create, start and open a shell or run a command in a new VM",
          "--name= --image= --vcpu= --memory= --disk-size= --nat --no-nat --vmm= --from-snapshot= --new-host-keys "
          "--cold --rm -d "
          "--detach --workspace= --branch= --no-setup --refresh-setup -p --publish= --idle-timeout= --idle-action= "
          "--json --help",
          "" },
        { "start", NULL, vm_lifecycle_cmd, "start stopped VMs, resume suspended ones", "--json --help", "vm" },
        { "stop", NULL, vm_lifecycle_cmd, "stop VMs gracefully (power off, then kill after a timeout)",
          "--timeout= --json --help", "vm" },
        { "restart", NULL, vm_lifecycle_cmd, "stop and start VMs", "--timeout= --json --help", "vm" },
        { "kill", NULL, vm_lifecycle_cmd, "send a signal to VMs' VMM processes", "--signal= --json --help", "vm" },
        { "pause", NULL, vm_lifecycle_cmd, "pause VMs (their vCPUs stop; memory and devices stay)", "--json --help",
          "vm" },
        { "resume", NULL, vm_lifecycle_cmd, "resume paused VMs", "--json --help", "vm" },
        { "suspend", NULL, vm_lifecycle_cmd, "save VMs' memory to disk and end their VMMs (vm start resumes them)",
          "--json --help", "vm" },
        { "delete", "rm", vm_lifecycle_cmd, "delete VMs and their disks (running ones are killed)",
          "-f --force --json --help", "vm" },
        { "snapshot", NULL, vm_snapshot_cmd, "save a VM's state and disks as a snapshot (it runs on)",
          "--name= --stop --json --help", "vm" },
        { "restore", NULL, vm_restore_cmd, "roll a VM back to one of its snapshots", "--json --help", "vm" },
        { "list", "ls ps", vm_list_cmd, "list VMs", "-q --quiet --names -w --watch --json --help", "" },
        { "show", NULL, vm_show_cmd, "show one VM in detail", "--json --help", "vm" },
        { "logs", NULL, vm_logs_cmd, "print a VM's console log", "-f --follow --tail= --raw --json --help", "vm" },
        { "ssh", NULL, vm_ssh_cmd, "open an SSH session to a VM, or run a command over SSH", "--help", "vm" },
        { "exec", NULL, vm_exec_cmd, "run a command in a VM through its agent",
          "-t --tty -i --interactive --json --timeout= --workdir= --help", "vm" },
        { "cp", NULL, vm_cp_cmd, "copy files and trees between the host and a VM", "--help", "vm" },
        { "workspace", NULL, vm_workspace_cmd,
          "export, sync or show the setup log of the git work tree copied into a VM",
          "--base-commit= -o --output= --apply --help", "vm" },
        { "ports", NULL, vm_ports_cmd, "list the guest's listening sockets and the VM's port forwards", "--json --help",
          "vm" },
        { "port", NULL, vm_port_cmd, "forward host ports to the VM: add, rm, list", "--json --help", "port" },
        { "stats", NULL, vm_stats_cmd, "show VMM CPU and memory, guest memory and load", "--json --help", "vm" },
        { "set", NULL, vm_set_cmd, "change vCPUs or memory of a stopped VM, or its idle timeout",
          "--vcpu= --memory= --idle-timeout= --idle-action= --json --help", "vm" },
        { "prune", NULL, vm_prune_cmd, "delete every stopped, created or failed VM", "-f --force --json --help", "" },
        {},
};

int cmd_vm(Cli *cli, int argc, char **argv) {
        return cli_group_run(cli, "vm",
                             "Create, run, inspect and delete microVMs. A VM reference is its name, its id, or a\n"
                             "unique prefix of its id.",
                             cli_vm_verbs, argc, argv);
}

/* "banger ps" is "banger vm list". */
int cmd_ps(Cli *cli, int argc, char **argv) {
        optind = 0;
        opterr = 0;
        return vm_list_cmd(cli, argc, argv);
}

/* ---- argument parsing shared by the vm verbs ---- */

/* parse_size() takes digits only, so "-1" and "" are refused here too. */
static int parse_positive_size(const char *cmd, const char *what, const char *arg, unsigned long long unit,
                               unsigned long long *ret) {
        unsigned long long v;
        bool bare = arg[0] && strspn(arg, "0123456789") == strlen(arg);
        if (parse_size(arg, &v) < 0)
                return cli_usage_error(cmd, "invalid %s '%s': use a size like 512M or 2G", what, arg);
        if (bare) {
                if (unit == 0)
                        return cli_usage_error(cmd, "%s '%s' needs a unit, like 8G or 512M", what, arg);
                if (v > (~0ULL) / unit)
                        return cli_usage_error(cmd, "%s '%s' is too large", what, arg);
                v *= unit;
        }
        if (v == 0)
                return cli_usage_error(cmd, "%s must be greater than zero", what);
        if (v % (1ULL << 20))
                return cli_usage_error(cmd, "%s '%s' is not a whole number of MiB", what, arg);
        *ret = v;
        return 0;
}

int vm_parse_memory_arg(const char *cmd, const char *arg, unsigned long long *ret_mib) {
        unsigned long long b;
        int r = parse_positive_size(cmd, "memory", arg, 1ULL << 20, &b);
        if (r != 0)
                return r;
        if (b > (1ULL << 40))
                return cli_usage_error(cmd, "memory '%s' is more than 1 TiB", arg);
        *ret_mib = b >> 20;
        return 0;
}

int vm_parse_disk_arg(const char *cmd, const char *arg, unsigned long long *ret_bytes) {
        int r = parse_positive_size(cmd, "disk size", arg, 0, ret_bytes);
        if (r == 0 && *ret_bytes > (64ULL << 40))
                return cli_usage_error(cmd, "disk size '%s' is more than 64 TiB", arg);
        return r;
}

int vm_parse_vcpu_arg(const char *cmd, const char *arg, unsigned *ret) {
        unsigned long long v;
        if (safe_atou64(arg, &v) < 0 || v == 0 || v > 64)
                return cli_usage_error(cmd, "invalid vCPU count '%s': give a number from 1 to 64", arg);
        *ret = (unsigned) v;
        return 0;
}

int vm_parse_idle_args(const char *cmd, const char *timeout, const char *action) {
        uint64_t sec;
        if (timeout && !streq(timeout, "default") && parse_duration_sec(timeout, CONFIG_IDLE_TIMEOUT_MAX, &sec) < 0)
                return cli_usage_error(
                        cmd, "invalid --idle-timeout '%s': give a duration like 30m or 1h30m, off or default", timeout);
        if (action && !streq(action, "stop") && !streq(action, "suspend") && !streq(action, "default"))
                return cli_usage_error(cmd, "invalid --idle-action '%s': give stop, suspend or default", action);
        return 0;
}

int vm_parse_seconds_arg(const char *cmd, const char *opt, const char *arg, usec_t *ret) {
        char *end = NULL;
        errno = 0;
        double d = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(d) || d <= 0 || d > 1e9)
                return cli_usage_error(cmd, "invalid %s '%s': give seconds greater than zero", opt, arg);
        *ret = (usec_t) (d * USEC_PER_SEC);
        return 0;
}

/* ---- calls ---- */

static void print_call_error(Cli *cli, const char *method, int r, const RpcError *err) {
        cli_print_call_error(cli, method, r, err);
        const char *tail = r == -EREMOTEIO ? json_str(err->data, "log_tail", NULL) : NULL;
        if (tail && *tail)
                fprintf(stderr, "banger: last console lines:\n%s%s", tail, endswith(tail, "\n") ? "" : "\n");
        if (cli->json && r == -EREMOTEIO) {
                json_t *e = json_pack("{s:s, s:i, s:s, s:O?}", "event", "error", "code", err->code, "message",
                                      err->message ? err->message : "", "data", err->data);
                print_json_line(e);
                json_decref(e);
        }
}

typedef struct CallNotify {
        Progress *p;
        OperationCancel cancel;
} CallNotify;

static void call_notify(const char *method, json_t *params, void *userdata) {
        CallNotify *n = userdata;
        operation_cancel_notify(&n->cancel, method, params);
        if (n->p)
                progress_notify(method, params, n->p);
}

int vm_call(Cli *cli, RpcClient *c, const char *method, json_t *params, Progress *p, json_t **ret_result,
            char **ret_vm) {
        RpcError err = {};
        CallNotify n = { .p = p };
        operation_cancel_begin(&n.cancel, cli, c); /* Ctrl-C cancels the operation */
        int r = rpc_client_call(c, method, params, USEC_INFINITY, call_notify, &n, ret_result, &err);
        operation_cancel_end(&n.cancel, r == -EREMOTEIO ? err.code : 0);
        progress_end(p, r >= 0);
        if (r < 0) {
                print_call_error(cli, method, r, &err);
                /* The daemon's answer says whether a VM stays; without one
                 * (it went away), the VM the progress named may. */
                const char *vm = r == -EREMOTEIO ? json_str(err.data, "vm", NULL) : p ? progress_vm(p) : NULL;
                if (ret_vm && vm)
                        *ret_vm = strdup(vm);
        }
        rpc_error_done(&err);
        return r;
}

int cli_call_progress(Cli *cli, const char *method, json_t *params, json_t **ret_result) {
        _cleanup_rpc_client_ RpcClient *c = NULL;
        _cleanup_progress_ Progress *p = NULL;
        if (!params || cli_connect(cli, &c) < 0 || progress_new(cli->json, &p) < 0) {
                json_decref(params);
                return EXIT_FAIL;
        }
        return vm_call(cli, c, method, params, p, ret_result, NULL) < 0 ? EXIT_FAIL : 0;
}

int vm_delete_ref(Cli *cli, RpcClient *c, const char *ref) {
        json_t *res = NULL;
        int r = cli_call(cli, c, "vm.delete", json_pack("{s:[s]}", "vms", ref), &res);
        if (r < 0)
                return r;
        json_t *first = json_array_get(json_object_get(res, "results"), 0);
        if (!json_is_true(json_object_get(first, "ok"))) {
                fprintf(stderr, "banger: cannot delete %s: %s\n", ref, json_str(first, "error", "unknown error"));
                r = -EIO;
        }
        json_decref(res);
        return r;
}

void vm_print_created(json_t *vm) {
        const char *name = json_str(vm, "name", "?");
        printf("%s (%.12s) %s", name, json_str(vm, "id", "?"), json_str(vm, "state", "?"));
        if (json_str(vm, "ip", NULL))
                printf(", %s (%s)", json_str(vm, "ip", ""), json_str(vm, "dns_name", ""));
        printf("\n");
        if (streq(json_str(vm, "state", ""), "running"))
                printf("  banger vm ssh %s    banger vm exec %s -- CMD\n", name, name);
        else if (streq(json_str(vm, "state", ""), "created"))
                printf("  banger vm start %s\n", name);
}

/* ---- list / show ---- */

static void list_help(void) {
        printf("Usage: banger vm list [-q | --names] [-w] [--json]\n"
               "       banger ps ...\n"
               "\n"
               "List VMs, oldest first, with columns ID NAME STATE IMAGE IP VCPU MEM DISK CREATED.\n"
               "ID shows the first 12 of the 16 id characters (any unique prefix works as a\n"
               "reference); MEM and DISK are binary sizes (1.0G = 1 GiB); CREATED is relative\n"
               "('3m ago', 's', 'm', 'h', 'd'). --json prints the daemon's {\"vms\": [...]}, with\n"
               "exact sizes and RFC 3339 times.\n"
               "\n"
               "Options:\n"
               "  -q, --quiet   print full ids only, one per line\n"
               "  -w, --watch   list again whenever a VM is created, changes state or is\n"
               "                deleted, until Ctrl-C: redrawn in place on a terminal, else\n"
               "                printed again (with --json: one {\"vms\": [...]} per line)\n"
               "  --names       print names only (for shell completion; never starts the daemon)\n"
               "  --json        machine-readable output\n");
}

static void vm_row(json_t *vm, const char **row, char (*buf)[TABLE_CELL_MAX]) {
        snprintf(buf[0], TABLE_CELL_MAX, "%.12s", json_str(vm, "id", ""));
        snprintf(buf[5], TABLE_CELL_MAX, "%lld", json_integer_value(json_object_get(vm, "vcpu")));
        format_size(buf[6], TABLE_CELL_MAX, (uint64_t) json_integer_value(json_object_get(vm, "memory_mib")) << 20);
        format_json_size(buf[7], TABLE_CELL_MAX, vm, "disk_bytes");
        format_ago(buf[8], TABLE_CELL_MAX, json_str(vm, "created_at", NULL));
        const char *cells[] = { buf[0],
                                json_str(vm, "name", "-"),
                                json_str(vm, "state", "-"),
                                json_str(vm, "image", "-"),
                                json_str(vm, "ip", "-"),
                                buf[5],
                                buf[6],
                                buf[7],
                                buf[8] };
        memcpy(row, cells, sizeof(cells));
}

static void print_vm_table(json_t *vms) {
        static const char *const hdr[] = { "ID", "NAME", "STATE", "IMAGE", "IP", "VCPU", "MEM", "DISK", "CREATED" };
        table_print_items(vms, hdr, ELEMENTSOF(hdr), vm_row);
}

typedef struct ListPrint {
        bool json, ids, watch;
} ListPrint;

static void print_vm_list(json_t *res, void *userdata) {
        const ListPrint *lp = userdata;
        json_t *vms = json_object_get(res, "vms");
        size_t i;
        json_t *vm;
        if (lp->ids)
                json_array_foreach (vms, i, vm)
                        printf("%s\n", json_str(vm, "id", ""));
        else if (lp->json && lp->watch)
                print_json_line(res);
        else if (lp->json)
                cli_print_json(res);
        else
                print_vm_table(vms);
}

static int vm_list_cmd(Cli *cli, int argc, char **argv) {
        enum { OPT_NAMES = CLI_OPT_FIRST_PRIVATE };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "quiet", no_argument, NULL, 'q' },
                                              { "names", no_argument, NULL, OPT_NAMES },
                                              { "watch", no_argument, NULL, 'w' },
                                              {} };
        bool quiet = false, names = false;
        ListPrint lp = {};
        int o;
        while ((o = getopt_long(argc, argv, "hqw", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        list_help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'w':
                        lp.watch = true;
                        break;
                case OPT_NAMES:
                        names = true;
                        break;
                default:
                        return cli_option_error("vm list", argv);
                }
        }
        if (optind < argc)
                return cli_usage_error("vm list", "unexpected argument '%s'", argv[optind]);
        if (names && lp.watch)
                return cli_usage_error("vm list", "--names is for shell completion: it does not go with --watch");
        lp.json = cli->json;
        lp.ids = quiet;
        if (lp.watch)
                return vm_list_watch(cli, print_vm_list, &lp);
        if (names)
                cli->no_autostart = true;
        /* A listing of a thousand VMs is a megabyte of --json: written in a
         * few large writes, not 4 KiB ones. Nothing was written to stdout yet. */
        static char out_buf[1 << 16];
        (void) setvbuf(stdout, out_buf, _IOFBF, sizeof(out_buf));
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (names ? rpc_client_connect(cli->socket_path, &c) < 0 : cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        /* --json prints whole records as the daemon wrote them, indented, with
         * no jansson tree of a thousand records in between. */
        if (lp.json && !names && !lp.ids)
                return cli_call_print_json(cli, c, "vm.list", NULL) < 0 ? EXIT_FAIL : EXIT_OK;
        /* The table, -q and --names need only a few fields (vm.list "brief").
         * --names skips the daemon's build check (shell completion), so it
         * asks as any build understands. */
        json_t *res = NULL, *params = names ? NULL : json_pack("{s:b}", "brief", 1);
        if (cli_call(cli, c, "vm.list", params, &res) < 0)
                return EXIT_FAIL;
        size_t i;
        json_t *vm;
        if (names)
                json_array_foreach (json_object_get(res, "vms"), i, vm)
                        printf("%s\n", json_str(vm, "name", ""));
        else
                print_vm_list(res, &lp);
        json_decref(res);
        return EXIT_OK;
}

static void show_help(void) {
        printf("Usage: banger vm show VM [--json]\n"
               "\n"
               "Show one VM: state and readiness, image, VMM and its pid, resources, network\n"
               "address and DNS name, console log path, the last error. VM is a name, an id or\n"
               "a unique id prefix. --json prints the VM object (see docs/protocol.md).\n");
}

/* The idle timeout in effect and when the VM was last used. */
static void print_idle(json_t *vm) {
        char ago[32];
        json_t *idle = json_object_get(vm, "idle");
        json_int_t sec = json_integer_value(json_object_get(idle, "timeout_sec"));
        if (sec > 0)
                printf("idle:       %s after %llds without use%s\n", json_str(idle, "action", "stop"), (long long) sec,
                       json_is_null(json_object_get(vm, "idle_timeout_sec")) ? " (config idle_timeout)" : "");
        else
                printf("idle:       never stopped or suspended for it\n");
        const char *used = json_str(vm, "last_used_at", NULL);
        printf("last used:  %s%s%s%s\n", used ? used : "not seen", used ? " (" : "",
               used ? format_ago(ago, sizeof(ago), used) : "", used ? ")" : "");
}

static void print_vm_detail(json_t *vm) {
        char mem[16], disk[16], ago[32];
        json_make_printable(vm);
        json_t *ready = json_object_get(vm, "ready");
        printf("name:       %s\n", json_str(vm, "name", "-"));
        printf("id:         %s\n", json_str(vm, "id", "-"));
        printf("state:      %s (ready: vmm %s, agent %s, ssh %s)\n", json_str(vm, "state", "-"),
               json_is_true(json_object_get(ready, "vmm")) ? "yes" : "no",
               json_is_true(json_object_get(ready, "agent")) ? "yes" : "no",
               json_is_true(json_object_get(ready, "ssh")) ? "yes" : "no");
        if (json_str(vm, "last_error", NULL))
                printf("error:      %s\n", json_str(vm, "last_error", ""));
        printf("image:      %s\n", json_str(vm, "image", "-"));
        printf("vmm:        %s", json_str(vm, "vmm", "-"));
        if (json_is_integer(json_object_get(vm, "pid")))
                printf(" (pid %lld)", json_integer_value(json_object_get(vm, "pid")));
        printf("\n");
        format_size(mem, sizeof(mem), (uint64_t) json_integer_value(json_object_get(vm, "memory_mib")) << 20);
        format_json_size(disk, sizeof(disk), vm, "disk_bytes");
        printf("resources:  %lld vCPU, %s memory, %s disk\n", json_integer_value(json_object_get(vm, "vcpu")), mem,
               disk);
        printf("network:    %s (%s), mac %s, tap %s, NAT %s\n", json_str(vm, "ip", "-"), json_str(vm, "dns_name", "-"),
               json_str(vm, "mac", "-"), json_str(vm, "tap", "-"),
               json_is_true(json_object_get(vm, "nat")) ? "on" : "off");
        if (json_str(vm, "boot_id", NULL))
                printf("boot id:    %s\n", json_str(vm, "boot_id", ""));
        printf("created:    %s (%s)\n", json_str(vm, "created_at", "-"),
               format_ago(ago, sizeof(ago), json_str(vm, "created_at", NULL)));
        printf("updated:    %s\n", json_str(vm, "updated_at", "-"));
        print_idle(vm);
        printf("console:    %s\n", json_str(vm, "log_path", "-"));
        json_t *fw = json_object_get(vm, "forwards");
        for (size_t i = 0; i < json_array_size(fw); i++) {
                json_t *f = json_array_get(fw, i);
                printf("%s %s -> port %lld/%s%s\n", i == 0 ? "forwards:  " : "           ", json_str(f, "host", "?"),
                       json_integer_value(json_object_get(f, "guest_port")), json_str(f, "proto", "tcp"),
                       json_is_true(json_object_get(f, "active")) ? " (listening)" : "");
        }
}

static int vm_show_cmd(Cli *cli, int argc, char **argv) {
        return cli_show_one(cli, "vm show", show_help, argc, argv, "vm.show", "vm", print_vm_detail);
}

/* ---- set / prune ---- */

static void set_help(void) {
        printf("Usage: banger vm set VM [--vcpu N] [--memory SIZE] [--idle-timeout D] [--idle-action A] [--json]\n"
               "\n"
               "Change the resources of a stopped (or never started) VM; they apply at its next\n"
               "start. The idle settings change in any state and apply at once.\n"
               "\n"
               "Options:\n"
               "  --vcpu N          virtual CPUs, 1..64\n"
               "  --memory SIZE     guest memory: MiB as a bare number (2048) or with a unit (2G)\n"
               "  --idle-timeout D  stop or suspend the VM once nobody used it (exec, ssh, cp, a\n"
               "                    forwarded connection, vm logs -f) for D: 30m, 1h30m, 45s;\n"
               "                    off: never; default: config idle_timeout\n"
               "  --idle-action A   stop, suspend, or default (config idle_action)\n");
}

static int vm_set_cmd(Cli *cli, int argc, char **argv) {
        enum { OPT_VCPU = CLI_OPT_FIRST_PRIVATE, OPT_MEMORY, OPT_IDLE_TIMEOUT, OPT_IDLE_ACTION };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "vcpu", required_argument, NULL, OPT_VCPU },
                                              { "memory", required_argument, NULL, OPT_MEMORY },
                                              { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
                                              { "idle-action", required_argument, NULL, OPT_IDLE_ACTION },
                                              {} };
        const char *idle_timeout = NULL, *idle_action = NULL;
        unsigned vcpu = 0;
        unsigned long long mib = 0;
        int o, r;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        set_help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case OPT_VCPU:
                        if ((r = vm_parse_vcpu_arg("vm set", optarg, &vcpu)) != 0)
                                return r;
                        break;
                case OPT_MEMORY:
                        if ((r = vm_parse_memory_arg("vm set", optarg, &mib)) != 0)
                                return r;
                        break;
                case OPT_IDLE_TIMEOUT:
                        idle_timeout = optarg;
                        break;
                case OPT_IDLE_ACTION:
                        idle_action = optarg;
                        break;
                default:
                        return cli_option_error("vm set", argv);
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("vm set", "expects exactly one VM");
        if ((r = vm_parse_idle_args("vm set", idle_timeout, idle_action)) != 0)
                return r;
        if (!vcpu && !mib && !idle_timeout && !idle_action)
                return cli_usage_error("vm set",
                                       "nothing to change: give --vcpu, --memory, --idle-timeout or --idle-action");
        json_t *params = json_pack("{s:s, s:s*, s:s*}", "vm", argv[optind], "idle_timeout", idle_timeout, "idle_action",
                                   idle_action);
        if (vcpu)
                json_object_set_new(params, "vcpu", json_integer(vcpu));
        if (mib)
                json_object_set_new(params, "memory_mib", json_integer((json_int_t) mib));
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0) {
                json_decref(params);
                return EXIT_FAIL;
        }
        json_t *vm = NULL;
        if (cli_call(cli, c, "vm.set", params, &vm) < 0)
                return EXIT_FAIL;
        if (cli->json)
                cli_print_json(vm);
        else
                print_vm_detail(vm);
        json_decref(vm);
        return EXIT_OK;
}

static void prune_help(void) {
        printf("Usage: banger vm prune [-f] [--json]\n"
               "\n"
               "Delete every VM that is stopped, created (never started) or in error, with its\n"
               "disks. Lists them and asks for confirmation first unless -f is given; without\n"
               "a 'y' answer nothing is deleted and the exit code is 1.\n"
               "\n"
               "Options:\n"
               "  -f, --force   do not ask\n");
}

static bool prunable(json_t *vm) {
        const char *s = json_str(vm, "state", "");
        return streq(s, "stopped") || streq(s, "created") || streq(s, "error");
}

static int confirm_prune(Cli *cli, RpcClient *c) {
        json_t *res = NULL;
        if (cli_call(cli, c, "vm.list", json_pack("{s:b}", "brief", 1), &res) < 0)
                return -EIO;
        size_t i, n = 0;
        json_t *vm;
        json_array_foreach (json_object_get(res, "vms"), i, vm)
                if (prunable(vm)) {
                        fprintf(stderr, "  %s (%s)\n", json_str(vm, "name", "?"), json_str(vm, "state", "?"));
                        n++;
                }
        json_decref(res);
        if (n == 0)
                return 0;
        char q[64];
        snprintf(q, sizeof(q), "Delete these %zu VM%s and their disks?", n, n == 1 ? "" : "s");
        return ask_yes_no(q) ? 1 : -ECANCELED;
}

static int vm_prune_cmd(Cli *cli, int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS, { "force", no_argument, NULL, 'f' }, {} };
        bool force = false;
        int o;
        while ((o = getopt_long(argc, argv, "hf", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        prune_help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case 'f':
                        force = true;
                        break;
                default:
                        return cli_option_error("vm prune", argv);
                }
        }
        if (optind < argc)
                return cli_usage_error("vm prune", "unexpected argument '%s'", argv[optind]);
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        if (!force) {
                int r = confirm_prune(cli, c);
                if (r == -ECANCELED)
                        fprintf(stderr, "banger vm prune: not confirmed; nothing deleted (-f skips the question)\n");
                if (r < 0)
                        return EXIT_FAIL;
                if (r == 0 && !cli->json) {
                        printf("nothing to prune\n");
                        return EXIT_OK;
                }
        }
        json_t *res = NULL;
        if (cli_call(cli, c, "vm.prune", NULL, &res) < 0)
                return EXIT_FAIL;
        return cli_print_deleted(cli, res);
}

/* ---- start / stop / restart / kill / delete ---- */

static void lifecycle_help(const char *verb) {
        printf("Usage: banger vm %s VM... %s[--json]\n\n", verb,
               streq(verb, "stop") || streq(verb, "restart") ? "[--timeout SEC] "
               : streq(verb, "kill")                         ? "[--signal SIG] "
               : streq(verb, "delete")                       ? "[-f|--force] "
                                                             : "");
        if (streq(verb, "start"))
                printf("Start stopped or created VMs and wait until their agents answer. A suspended VM\n"
                       "resumes from its saved state, with the processes and files it had; when that\n"
                       "state cannot be loaded (the VMM's version changed since), it boots cold and\n"
                       "says why.\n");
        else if (streq(verb, "stop"))
                printf("Stop VMs: ask the guest to power off, and kill the VMM when it has not exited\n"
                       "after the timeout (config stop_timeout_sec, 10 s by default). A VM in error\n"
                       "whose VMM still runs has it found again and stopped (asked through the VMM,\n"
                       "killed when it cannot be asked); one whose vmm.lock is held by a process that\n"
                       "cannot be identified is refused.\n\n"
                       "Options:\n  --timeout SEC   seconds to wait before killing\n");
        else if (streq(verb, "restart"))
                printf("Stop VMs as 'vm stop' does, then start them.\n\n"
                       "Options:\n  --timeout SEC   seconds to wait for power-off before killing\n");
        else if (streq(verb, "kill"))
                printf("Send a signal to VMs' VMM processes at once (no guest shutdown). A VM in error\n"
                       "whose VMM still runs has it found again and signalled; one whose vmm.lock is\n"
                       "held by a process that cannot be identified is refused.\n\n"
                       "Options:\n  -s, --signal SIG   signal name (KILL, TERM, INT, ...) or number; default KILL\n");
        else if (streq(verb, "pause"))
                printf("Pause running VMs with the VMM's own pause: the vCPUs stop, memory, devices and\n"
                       "network stay. 'vm list' shows them paused; stop, kill and delete work on them.\n");
        else if (streq(verb, "resume"))
                printf("Let paused VMs run again from where they were.\n");
        else if (streq(verb, "suspend"))
                printf("Suspend running VMs to disk: their memory and device state are saved in the\n"
                       "VM's directory, their VMM ends and its memory is freed; the disks stay in\n"
                       "place. 'vm list' shows them suspended; 'vm start' resumes them with the same\n"
                       "address, processes and files. 'vm stop' and 'vm kill' discard the saved\n"
                       "state (the VM is stopped); a suspended VM survives a daemon restart.\n");
        else
                printf("Delete VMs: kill them if running, then remove their disks, logs and records.\n"
                       "One with snapshots is refused (the error names them) unless --force, which\n"
                       "deletes its snapshots too. A VM in error has its VMM found and killed if it\n"
                       "still runs; one whose runtime directory's vmm.lock is held by a process that\n"
                       "cannot be identified is refused unless --force (a warning on stderr then\n"
                       "says what may still run).\n\n"
                       "Options:\n  -f, --force   delete the VM's snapshots with it; delete a VM in error even\n"
                       "                when something unidentified may still run\n");
        printf("\nSeveral VMs run concurrently; each is a name, an id or a unique id prefix, and\n"
               "duplicates count once. A reference that names no VM fails alone: the others\n"
               "are still done. Results print in the order given, failures on stderr; the\n"
               "exit code is 1 when any failed.\n");
}

static const char *past_tense(const char *verb) {
        return streq(verb, "start")     ? "started"
               : streq(verb, "stop")    ? "stopped"
               : streq(verb, "restart") ? "restarted"
               : streq(verb, "kill")    ? "signalled"
               : streq(verb, "pause")   ? "paused"
               : streq(verb, "resume")  ? "resumed"
               : streq(verb, "suspend") ? "suspended"
                                        : "deleted";
}

static int print_results(Cli *cli, const char *verb, json_t *res) {
        int ret = EXIT_OK;
        size_t i;
        json_t *e, *seen = json_object();
        json_array_foreach (json_object_get(res, "results"), i, e) {
                /* The same VM named twice ran once: say so once. A result
                 * names its VM by "id" or its "vm" object; without either
                 * (vm.delete) only identical references are recognised. */
                const char *id = json_str(e, "id", json_str(json_object_get(e, "vm"), "id", NULL));
                char key[128];
                snprintf(key, sizeof(key), "%s:%s", id ? "id" : "ref", id ? id : json_str(e, "ref", ""));
                if (json_object_get(seen, key))
                        continue;
                json_object_set_new(seen, key, json_true());
                const char *name = json_str(json_object_get(e, "vm"), "name", json_str(e, "ref", "?"));
                if (!json_is_true(json_object_get(e, "ok"))) {
                        fprintf(stderr, "banger: %s: %s\n", json_str(e, "ref", "?"), json_str(e, "error", "failed"));
                        ret = EXIT_FAIL;
                        continue;
                }
                /* Done, but with something the user must know (also in --json's). */
                if (json_str(e, "warning", NULL))
                        fprintf(stderr, "banger: warning: %s: %s\n", json_str(e, "ref", "?"),
                                json_str(e, "warning", ""));
                if (cli->json)
                        continue;
                else if (json_is_true(json_object_get(e, "unchanged"))) {
                        const char *state = json_str(json_object_get(e, "vm"), "state", "?");
                        if (streq(state, "running") || streq(state, "suspended"))
                                printf("%s is already %s\n", name, state);
                        else
                                printf("%s is not running (%s)\n", name, state);
                } else if (json_is_true(json_object_get(e, "discarded_suspended_state")))
                        printf("%s %s (it was suspended: its saved state is discarded)\n", past_tense(verb), name);
                else
                        printf("%s %s\n", past_tense(verb), name);
        }
        json_decref(seen);
        if (cli->json)
                cli_print_json(res);
        return ret;
}

static int vm_lifecycle_cmd(Cli *cli, int argc, char **argv) {
        enum { OPT_TIMEOUT = CLI_OPT_FIRST_PRIVATE };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "timeout", required_argument, NULL, OPT_TIMEOUT },
                                              { "signal", required_argument, NULL, 's' },
                                              { "force", no_argument, NULL, 'f' },
                                              {} };
        const char *verb = streq(argv[0], "rm") ? "delete" : argv[0];
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "vm %s", verb);
        bool timed = streq(verb, "stop") || streq(verb, "restart");
        json_t *extra = json_object();
        int o;
        while ((o = getopt_long(argc, argv, "hs:f", opts, NULL)) >= 0) {
                usec_t t;
                if (o == 'h') {
                        lifecycle_help(verb);
                        json_decref(extra);
                        return EXIT_OK;
                } else if (o == CLI_OPT_JSON)
                        cli->json = true;
                else if (o == OPT_TIMEOUT && timed && vm_parse_seconds_arg(cmd, "--timeout", optarg, &t) == 0)
                        json_object_set_new(extra, "timeout_sec",
                                            json_integer((json_int_t) ((t + USEC_PER_SEC - 1) / USEC_PER_SEC)));
                else if (o == 's' && streq(verb, "kill") && optarg[0])
                        json_object_set_new(extra, "signal", json_string(optarg));
                else if (o == 'f' && streq(verb, "delete"))
                        json_object_set_new(extra, "force", json_true());
                else {
                        json_decref(extra);
                        if (o == OPT_TIMEOUT && !timed)
                                return cli_usage_error(cmd, "--timeout is for stop and restart only");
                        if (o == 's' && !streq(verb, "kill"))
                                return cli_usage_error(cmd, "--signal is for kill only");
                        return o == OPT_TIMEOUT ? EXIT_USAGE : cli_option_error(cmd, argv);
                }
        }
        if (optind >= argc) {
                json_decref(extra);
                return cli_usage_error(cmd, "expects at least one VM");
        }
        json_t *refs = json_array();
        for (int i = optind; i < argc; i++)
                json_array_append_new(refs, json_string(argv[i]));
        json_object_set_new(extra, "vms", refs);
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0) {
                json_decref(extra);
                return EXIT_FAIL;
        }
        char method[32];
        snprintf(method, sizeof(method), "vm.%s", verb);
        _cleanup_progress_ Progress *p = NULL;
        if ((streq(verb, "start") || streq(verb, "restart")) && progress_new(cli->json, &p) < 0) {
                json_decref(extra);
                return EXIT_FAIL;
        }
        json_t *res = NULL;
        if (vm_call(cli, c, method, extra, p, &res, NULL) < 0)
                return EXIT_FAIL;
        int ret = print_results(cli, verb, res);
        json_decref(res);
        return ret;
}
