/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#define AGENT_WORK_DISK_DEVICE "/dev/vdb"
#define AGENT_WORK_DISK_LABEL "banger-work"

typedef struct AgentWorkDisk {
        char *device; /* as the fstab names it */
        char *mount;  /* its mount point */
        bool mounted;
} AgentWorkDisk;

/* The fstab entry (not noauto) for the work disk (/dev/vdb or
 * LABEL=banger-work) and whether mountinfo shows its mount point mounted:
 * 1 when fstab names it, 0 (and an empty *ret) when not. */
int agent_work_disk_parse(const char *fstab, const char *mountinfo, AgentWorkDisk *ret);
/* The same from /etc/fstab (absent: 0) and /proc/self/mountinfo. */
int agent_work_disk_get(AgentWorkDisk *ret);
void agent_work_disk_done(AgentWorkDisk *w);
