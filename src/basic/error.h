/* SPDX-License-Identifier: MIT */
#pragma once

/* The human-readable cause of the last failure on this thread. Library code
 * returns -errno as always; where a richer cause exists (a Firecracker
 * fault_message, an SQLite or nft message, "name already in use") it also
 * records it here, and the edge (RPC reply, CLI) shows it. The edge calls
 * error_clear() before an operation and error_last_message() after a failure. */

#include "macro.h"

/* Record a message and return r unchanged (so "return error_setf(-EINVAL, ...)"). */
int error_setf(int r, const char *fmt, ...) _printf_(2, 3);
/* The last recorded message on this thread, or NULL. */
const char *error_last_message(void);
void error_clear(void);
