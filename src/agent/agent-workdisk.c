/* SPDX-License-Identifier: MIT */
/* The work disk: banger gives each VM a second disk (/dev/vdb, ext4 labelled
 * banger-work) that the image's fstab mounts. A guest whose fstab names it
 * is ready only once it is mounted: otherwise what should go to the work
 * disk silently fills the root disk. */
#include "agent-workdisk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "fs-util.h"
#include "macro.h"
#include "string-util.h"

#define FSTAB_MAX (64U * 1024U)
#define MOUNTINFO_MAX (1024U * 1024U)

/* Up to n whitespace-separated fields of line (modified in place). */
static size_t split_fields(char *line, char **f, size_t n) {
        size_t k = 0;
        for (char *save = NULL, *t = strtok_r(line, " \t", &save); t && k < n; t = strtok_r(NULL, " \t", &save))
                f[k++] = t;
        return k;
}

static bool names_work_disk(const char *dev) {
        return streq(dev, AGENT_WORK_DISK_DEVICE) || streq(dev, "LABEL=" AGENT_WORK_DISK_LABEL);
}

static bool is_mounted(const char *mountinfo, const char *mount) {
        _cleanup_free_ char *copy = strdup(mountinfo);
        if (!copy)
                return false;
        for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                char *f[5];
                /* id parent major:minor root MOUNTPOINT ... */
                if (split_fields(l, f, 5) == 5 && streq(f[4], mount))
                        return true;
        }
        return false;
}

int agent_work_disk_parse(const char *fstab, const char *mountinfo, AgentWorkDisk *ret) {
        _cleanup_free_ char *copy = strdup(fstab);
        if (!copy)
                return -ENOMEM;
        for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                char *f[4];
                size_t n = split_fields(l, f, 4);
                if (n < 2 || f[0][0] == '#' || !names_work_disk(f[0]) || f[1][0] != '/')
                        continue;
                if (n >= 4 && strstr(f[3], "noauto"))
                        continue;
                AgentWorkDisk w = { .device = strdup(f[0]), .mount = strdup(f[1]) };
                if (!w.device || !w.mount) {
                        agent_work_disk_done(&w);
                        return -ENOMEM;
                }
                w.mounted = is_mounted(mountinfo, w.mount);
                *ret = w;
                return 1;
        }
        *ret = (AgentWorkDisk){};
        return 0;
}

int agent_work_disk_get(AgentWorkDisk *ret) {
        _cleanup_free_ char *fstab = NULL, *mountinfo = NULL;
        int r = read_file_at(AT_FDCWD, "/etc/fstab", FSTAB_MAX, &fstab, NULL);
        if (r == -ENOENT) {
                *ret = (AgentWorkDisk){};
                return 0;
        }
        if (r < 0)
                return r;
        r = read_virtual_file_at(AT_FDCWD, "/proc/self/mountinfo", MOUNTINFO_MAX, &mountinfo, NULL);
        if (r < 0)
                return r;
        return agent_work_disk_parse(fstab, mountinfo, ret);
}

void agent_work_disk_done(AgentWorkDisk *w) {
        free(w->device);
        free(w->mount);
        *w = (AgentWorkDisk){};
}
