/* SPDX-License-Identifier: MIT */
#pragma once

/* banger system: the verbs live in cmd-system.c and cmd-system-status.c. */

#include "cli.h"

int cmd_system_status(Cli *cli, int argc, char **argv);
