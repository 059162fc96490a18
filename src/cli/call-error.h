/* SPDX-License-Identifier: MIT */
#pragma once

/* How a failed daemon call reads to the user. A param the daemon refused
 * (-32602 with data {"param", "expected"}) is a usage error: it is shown
 * under the option the user typed ("--memory", not "memory_mib") and the
 * command exits 2. */

#include "cli.h"

/* The command-line option that sets method's param, or NULL. */
const char *cli_param_flag(const char *method, const char *param);

/* Print the error of a call of method that returned r (-EREMOTEIO: err
 * holds the daemon's error); marks cli->usage_failed for a refused param. */
void cli_print_call_error(Cli *cli, const char *method, int r, const RpcError *err);
