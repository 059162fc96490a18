/* SPDX-License-Identifier: MIT */
#pragma once

/* A VM's console, owned by the daemon. The VMM writes the guest's serial
 * output (and its own stdout and stderr) into a FIFO, console.pipe, in the
 * VM's state directory; the event loop reads it without blocking and
 * appends to console.log. When console.log would pass half of
 * console_log_max it becomes console.log.1 (replacing the older part), so
 * the two never hold more than console_log_max together and the newest
 * output is always kept. Output written while no daemon reads is lost: the
 * VMM's writes fail (EPIPE) instead of filling anything. */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "worker.h"

#define CONSOLE_PIPE_NAME "console.pipe"
#define CONSOLE_LOG_NAME "console.log"
#define CONSOLE_LOG_OLD_NAME "console.log.1"

typedef struct ConsoleStreams ConsoleStreams;

int console_streams_new(sd_event *event, Workers *workers, uint64_t max_bytes, ConsoleStreams **ret);
ConsoleStreams *console_streams_free(ConsoleStreams *x);

/* Any thread: make sure console.pipe exists in dir_fd (the VM's state
 * directory), open its read end and hand it to the loop, replacing the VM's
 * previous stream. A VMM may open the pipe for writing once this returned. */
int console_stream_open(ConsoleStreams *x, int dir_fd, const char *id);
/* Any thread: stop reading the VM's console (what is in the pipe is kept). */
void console_stream_close(ConsoleStreams *x, const char *id);
