/* SPDX-License-Identifier: MIT */
/* debootstrap's per-package lines folded into counts (debootstrap-progress.h). */
#include <stdio.h>
#include <string.h>

#include "debootstrap-progress.h"
#include "macro.h"
#include "string-util.h"

static const struct {
        const char *prefix, *words;
        int tokens; /* after the verb: "name version" or "name..." */
} steps[DEBOOTSTRAP_N_STEPS] = {
        [DEBOOTSTRAP_RETRIEVING] = { "I: Retrieving ", "retrieving", 2 },
        [DEBOOTSTRAP_VALIDATING] = { "I: Validating ", "validating", 2 },
        [DEBOOTSTRAP_EXTRACTING] = { "I: Extracting ", "extracting", 1 },
        [DEBOOTSTRAP_UNPACKING] = { "I: Unpacking ", "unpacking", 1 },
        [DEBOOTSTRAP_CONFIGURING] = { "I: Configuring ", "configuring", 1 },
};

/* A package's line: its name (lowercase: "Packages" and "InRelease" are
 * indexes) then a version, or the name and "..." ("the base system..." is
 * a phase: more than one word). */
static bool is_package_line(const char *rest, int tokens) {
        size_t n = strspn(rest, "abcdefghijklmnopqrstuvwxyz0123456789.+-:");
        if (n == 0 || !((rest[0] >= 'a' && rest[0] <= 'z') || (rest[0] >= '0' && rest[0] <= '9')))
                return false;
        if (tokens == 1)
                return streq(rest + n, "") && endswith(rest, "...");
        return rest[n] == ' ' && rest[n + 1] && !strchr(rest + n + 1, ' ');
}

bool debootstrap_progress_line(DebootstrapProgress *p, const char *line, char *buf, size_t len) {
        if (!line || !line[0])
                return false;
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                const char *rest = startswith(line, steps[i].prefix);
                if (rest && is_package_line(rest, steps[i].tokens)) {
                        snprintf(buf, len, "%s packages: %u", steps[i].words, ++p->count[i]);
                        return true;
                }
        }
        snprintf(buf, len, "%s", line);
        return true;
}
