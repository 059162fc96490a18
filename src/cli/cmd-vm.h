/* SPDX-License-Identifier: MIT */
#pragma once

/* Pieces shared by the "banger vm" verbs (cmd-vm*.c). */

#include <stdbool.h>

#include "cli.h"
#include "output.h"
#include "time-util.h"

/* Sizes from the command line. Memory: a bare number counts MiB ("1024"),
 * or a unit ("2G"); disk: a unit is required ("8G"). Both must be whole MiB
 * and greater than zero. Print a usage error and return EXIT_USAGE, or 0. */
int vm_parse_memory_arg(const char *cmd, const char *arg, unsigned long long *ret_mib);
int vm_parse_disk_arg(const char *cmd, const char *arg, unsigned long long *ret_bytes);
int vm_parse_vcpu_arg(const char *cmd, const char *arg, unsigned *ret);
/* --idle-timeout and --idle-action (either NULL: not given), as the daemon
 * takes them: 0 or EXIT_USAGE after the message. */
int vm_parse_idle_args(const char *cmd, const char *timeout, const char *action);
/* A seconds value > 0 ("30", "1.5"). */
int vm_parse_seconds_arg(const char *cmd, const char *opt, const char *arg, usec_t *ret);

/* Call with progress (may be NULL); on failure print the daemon's message
 * and, when its error data carries one, the console's last lines. Returns
 * -errno; the VM id from the error data (or the progress events) goes to
 * *ret_vm when asked for. Steals params. */
int vm_call(Cli *cli, RpcClient *c, const char *method, json_t *params, Progress *p, json_t **ret_result,
            char **ret_vm);

/* Connect and vm_call() with live progress: 0 and *ret_result, or
 * EXIT_FAIL after the reason was printed. Steals params (NULL: they could
 * not be built, EXIT_FAIL). */
int cli_call_progress(Cli *cli, const char *method, json_t *params, json_t **ret_result);

/* Human summary of a VM after create/start: name, id, state, address. */
void vm_print_created(json_t *vm);

/* vm.delete of one reference; prints failures; returns 0 or -errno. */
int vm_delete_ref(Cli *cli, RpcClient *c, const char *ref);

/* Connect to a running VM's guest agent (vm.agent, its multiplexer's socket)
 * and say hello; prints why on failure. */
typedef struct AgentClient AgentClient;
int vm_agent_client(Cli *cli, RpcClient *c, const char *ref, AgentClient **ret);

/* Run argv in the guest through the agent with our stdio; *ret_status is
 * the exit code, or 128+signal. timeout USEC_INFINITY: none. */
int vm_exec_in_guest(Cli *cli, RpcClient *c, const char *ref, char *const *argv, const char *workdir, usec_t timeout,
                     int *ret_status);

/* An interactive login shell in the guest through the agent, in workdir
 * (NULL: the agent's default), with a terminal when stdin is one; for
 * vm run without a command where SSH is not there or not the way in. */
int vm_shell_in_guest(Cli *cli, RpcClient *c, const char *ref, const char *workdir, int *ret_status);

/* Build the ssh command line for a VM (vm.ssh_info); free with strv_free. */
int vm_ssh_argv(Cli *cli, RpcClient *c, const char *ref, char *const *cmd, char ***ret);

/* vm list --watch (cmd-vm-watch.c): print a vm.list result once, then
 * again after every change of a VM (cleared and redrawn on a terminal),
 * until Ctrl-C (EXIT_OK) or the daemon goes away (EXIT_FAIL). */
typedef void (*VmListPrintFn)(json_t *result, void *userdata);
int vm_list_watch(Cli *cli, VmListPrintFn print, void *userdata);

int vm_create_cmd(Cli *cli, int argc, char **argv);
int vm_run_cmd(Cli *cli, int argc, char **argv);
int vm_ssh_cmd(Cli *cli, int argc, char **argv);
int vm_exec_cmd(Cli *cli, int argc, char **argv);
int vm_cp_cmd(Cli *cli, int argc, char **argv);
int vm_ports_cmd(Cli *cli, int argc, char **argv);
/* cmd-vm-port.c: vm port add|rm|list, and the forwards table */
int vm_port_cmd(Cli *cli, int argc, char **argv);
void vm_print_forwards(json_t *forwards);
int vm_stats_cmd(Cli *cli, int argc, char **argv);
int vm_logs_cmd(Cli *cli, int argc, char **argv);
/* cmd-snapshot.c */
int vm_snapshot_cmd(Cli *cli, int argc, char **argv);
int vm_restore_cmd(Cli *cli, int argc, char **argv);
