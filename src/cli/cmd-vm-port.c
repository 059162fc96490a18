/* SPDX-License-Identifier: MIT */
/* banger vm port add | rm | list: a VM's port forwards (host ports whose
 * connections the daemon carries to guest ports through the guest agent;
 * docs/port-forwarding.md). Also how vm show and vm ports print them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-vm.h"
#include "error.h"
#include "macro.h"
#include "port-spec.h"
#include "verbs.h"

static int vm_port_add_cmd(Cli *cli, int argc, char **argv);
static int vm_port_rm_cmd(Cli *cli, int argc, char **argv);
static int vm_port_list_cmd(Cli *cli, int argc, char **argv);

const CliVerb cli_vm_port_verbs[] = {
        { "add", NULL, vm_port_add_cmd, "forward a host port to a port of the VM", "--json --help", "vm" },
        { "rm", "remove", vm_port_rm_cmd, "remove a forward (its listener and connections close)", "--json --help",
          "vm" },
        { "list", "ls", vm_port_list_cmd, "list the VM's forwards", "--json --help", "vm" },
        {},
};

int vm_port_cmd(Cli *cli, int argc, char **argv) {
        return cli_group_run(cli, "vm port",
                             "Forward TCP ports of the host to ports of a VM. Each connection to HOST_IP:HOST_PORT\n"
                             "is carried through the VM's guest agent to 127.0.0.1:GUEST_PORT in the guest, so it\n"
                             "needs neither NAT nor a route to the VM. Forwards are kept with the VM: they listen\n"
                             "while it runs and come back when it starts again.",
                             cli_vm_port_verbs, argc, argv);
}

/* ---- printing (also vm show, vm ports) ---- */

static void forward_row(json_t *f, const char **row, char (*buf)[TABLE_CELL_MAX]) {
        snprintf(buf[2], TABLE_CELL_MAX, "%lld", json_integer_value(json_object_get(f, "guest_port")));
        row[0] = json_str(f, "proto", "-");
        row[1] = json_str(f, "host", "-");
        row[2] = buf[2];
        row[3] = json_is_true(json_object_get(f, "active")) ? "listening" : "-";
}

void vm_print_forwards(json_t *forwards) {
        static const char *const hdr[] = { "PROTO", "HOST", "GUEST PORT", "STATE" };
        table_print_items(forwards, hdr, ELEMENTSOF(hdr), forward_row);
}

/* ---- verbs ---- */

static void add_help(void) {
        printf("Usage: banger vm port add VM [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp] [--json]\n"
               "\n"
               "Forward HOST_IP:HOST_PORT (HOST_IP defaults to 127.0.0.1; give 0.0.0.0 to accept\n"
               "connections from other hosts) to GUEST_PORT in the VM. On a running VM the port\n"
               "listens at once; a stopped VM's forwards listen when it starts. Only tcp is\n"
               "forwarded. A host port that is in use, privileged (below 1024, for a daemon\n"
               "that is not root) or already forwarded is refused.\n");
}

static void rm_help(void) {
        printf("Usage: banger vm port rm VM [HOST_IP:]HOST_PORT[/tcp] [--json]\n"
               "\n"
               "Remove the forward from HOST_IP:HOST_PORT (HOST_IP defaults to 127.0.0.1): its\n"
               "listener and the connections it carries are closed.\n");
}

static void list_help(void) {
        printf("Usage: banger vm port list VM [--json]\n"
               "\n"
               "List the VM's port forwards; STATE is \"listening\" while the daemon listens.\n");
}

static json_t *spec_params(const char *vm, const PortSpec *p, bool with_guest) {
        json_t *j = json_pack("{s:s, s:s, s:i, s:s}", "vm", vm, "host_ip", p->host_ip, "host_port", (int) p->host_port,
                              "proto", p->proto);
        if (j && with_guest)
                json_object_set_new(j, "guest_port", json_integer(p->guest_port));
        return j;
}

static void print_added(json_t *res) {
        printf("forwarding %s to port %lld\n", json_str(res, "host", "?"),
               json_integer_value(json_object_get(res, "guest_port")));
}

static void print_removed(json_t *res) {
        printf("removed\n");
}

static int vm_port_add_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "vm port add", add_help, argc, argv, 2, 2);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        PortSpec p;
        if (port_spec_parse(argv[optind + 1], &p) < 0)
                return cli_usage_error("vm port add", "%s", error_last_message());
        return cli_call_and_print(cli, "vm.port.add", spec_params(argv[optind], &p, true), print_added);
}

static int vm_port_rm_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "vm port rm", rm_help, argc, argv, 2, 2);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        PortSpec p;
        if (port_spec_parse_host(argv[optind + 1], &p) < 0)
                return cli_usage_error("vm port rm", "%s", error_last_message());
        return cli_call_and_print(cli, "vm.port.remove", spec_params(argv[optind], &p, false), print_removed);
}

static void print_list(json_t *res) {
        vm_print_forwards(json_object_get(res, "forwards"));
}

static int vm_port_list_cmd(Cli *cli, int argc, char **argv) {
        return cli_show_one(cli, "vm port list", list_help, argc, argv, "vm.port.list", "vm", print_list);
}
