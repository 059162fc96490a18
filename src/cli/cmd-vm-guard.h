/* SPDX-License-Identifier: MIT */
#pragma once

/* "banger vm run --rm": the VM is deleted exactly once, whether the run ends
 * normally or on SIGINT/SIGTERM/SIGHUP. The signals are blocked and read by
 * a watcher thread from a signalfd; a signal before the VM exists only marks
 * the run interrupted (the daemon finishes creating it either way, and the
 * main thread deletes it then); a signal afterwards deletes it at once over
 * the watcher's own connection, which also ends a command or session that
 * is running in it. */

#include <stdbool.h>

#include "cli.h"

typedef struct VmRunGuard VmRunGuard;

/* Call before any other thread exists (the signal mask is inherited). */
int vm_run_guard_new(Cli *cli, VmRunGuard **ret);
/* The VM id to delete (NULL when creation failed without one). */
void vm_run_guard_created(VmRunGuard *g, const char *vm_id);
/* True once a signal arrived (false for g == NULL). */
bool vm_run_guard_interrupted(VmRunGuard *g);
/* Stop the watcher, delete the VM unless it already did, and return the
 * exit status: 128+signal when interrupted, else status. */
int vm_run_guard_finish(VmRunGuard *g, RpcClient *c, int status);
VmRunGuard *vm_run_guard_free(VmRunGuard *g);
static inline void vm_run_guard_freep(VmRunGuard **g) {
        vm_run_guard_free(*g);
}

/* Run argv (absolute path) with our stdio and environment in our process
 * group and wait for it; returns its exit code or 128+signal. */
int vm_run_guard_spawn_wait(char **argv);
