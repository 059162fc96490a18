/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers shared by the disk unit tests: temp directories, running tools
 * through the spawn module, and "nothing was left on the host" checks. */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopdev.h"
#include "spawn.h"

/* Run argv (NULL-terminated); returns the exit code and the merged output. */
static inline int dt_run(char **out, char *const argv[]) {
        return spawn_run_capture(argv, 120 * USEC_PER_SEC, 1 << 20, true, out);
}

static inline int dt_rm_rf(const char *path) {
        char *argv[] = { "rm", "-rf", "--", (char *) path, NULL };
        return spawn_run_capture(argv, 60 * USEC_PER_SEC, 0, false, NULL);
}

/* Count loop devices whose backing file lies under dir. */
static inline int dt_loops_beneath(const char *dir) {
        LoopInfo *l = NULL;
        size_t n = 0;
        if (loop_list_beneath(dir, &l, &n) < 0)
                return -1;
        loop_info_free_many(l, n);
        return (int) n;
}

/* Count mount points at or under dir (from /proc/self/mountinfo). */
static inline int dt_mounts_beneath(const char *dir) {
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -1;
        char line[4096];
        int n = 0;
        while (fgets(line, sizeof(line), f)) {
                char mp[4096];
                /* id parent major:minor root mountpoint ... */
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && path_is_beneath(mp, dir))
                        n++;
        }
        fclose(f);
        return n;
}

/* Number of directory entries (besides . and ..) in dir. */
static inline int dt_count_entries(const char *dir) {
        char *argv[] = { "ls", "-A", "--", (char *) dir, NULL };
        char *out = NULL;
        int r = spawn_run_capture(argv, 10 * USEC_PER_SEC, 1 << 16, false, &out);
        if (r != 0) {
                free(out);
                return -1;
        }
        int n = 0;
        for (char *p = out; *p; p++)
                n += *p == '\n';
        free(out);
        return n;
}
