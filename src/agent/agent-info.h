/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent's read-only reports, produced as JSON text (documented in
 * docs/agent-protocol.md). proc_root is "/proc" except in tests. */

#include <stddef.h>

int agent_health_json(char **ret, size_t *ret_len);
int agent_stats_json(char **ret, size_t *ret_len);
int agent_ports_json(const char *proc_root, char **ret, size_t *ret_len);
