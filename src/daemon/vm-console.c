/* SPDX-License-Identifier: MIT */
/* A VM's console log: opened through the state directory, its tail for
 * error replies. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "path-beneath.h"
#include "vm-internal.h"

int vm_console_log_open(VmManager *m, const char *id) {
        char rel[64];
        snprintf(rel, sizeof(rel), "vms/%s/console.log", id);
        return open_beneath(m->d->state_dir_fd, rel, O_RDONLY, 0);
}

/* Last lines of the console log, for error replies. */
char *vm_log_tail(VmManager *m, const char *id, size_t max) {
        _cleanup_close_ int fd = vm_console_log_open(m, id);
        if (fd < 0)
                return NULL;
        off_t size = lseek(fd, 0, SEEK_END);
        off_t from = size > (off_t) max ? size - (off_t) max : 0;
        char *buf = calloc(1, max + 1);
        if (!buf)
                return NULL;
        ssize_t n = pread(fd, buf, max, from);
        if (n < 0)
                n = 0;
        buf[n] = '\0';
        /* Start at a line boundary; keep it valid UTF-8-ish for JSON. */
        char *nl = from > 0 ? strchr(buf, '\n') : NULL;
        if (nl)
                memmove(buf, nl + 1, strlen(nl + 1) + 1);
        for (char *p = buf; *p; p++)
                if ((unsigned char) *p >= 0x80 || (*p < 0x20 && *p != '\n' && *p != '\t'))
                        *p = '?';
        return buf;
}
