/* SPDX-License-Identifier: MIT */
#pragma once

/* Plain ssh to VMs: 'banger ssh-config install|uninstall|show' manages an
 * Include of ~/.ssh/banger.conf (a "Host *.vm" block with banger's key, its
 * known_hosts and 'banger ssh-proxy' as ProxyCommand) in ~/.ssh/config. */

#include "cli.h"
#include "verbs.h"

extern const CliVerb cli_ssh_config_verbs[];

int cmd_ssh_config(Cli *cli, int argc, char **argv);
int cmd_ssh_proxy(Cli *cli, int argc, char **argv);
