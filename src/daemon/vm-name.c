/* SPDX-License-Identifier: MIT */
/* Generated VM names: adjective-noun, DNS labels. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "error.h"
#include "macro.h"
#include "vm-manager.h"

static const char *const adjectives[] = {
        "amber", "bold",  "brave",  "brisk", "calm",  "clever", "cosmic", "crisp", "daring", "eager",
        "fancy", "fast",  "gentle", "happy", "jolly", "keen",   "lively", "lucky", "mellow", "nimble",
        "proud", "quick", "quiet",  "rapid", "shiny", "snappy", "steady", "swift", "tidy",   "witty",
};
static const char *const nouns[] = {
        "badger",  "beacon", "canyon",  "comet",  "falcon", "fern",   "gecko",  "harbor", "heron",  "island",
        "lantern", "lynx",   "maple",   "meadow", "otter",  "panda",  "pebble", "pine",   "quartz", "raven",
        "river",   "rocket", "sparrow", "summit", "tiger",  "walrus", "willow", "wombat", "yak",    "zephyr",
};

int vm_name_generate(Store *s, char **ret) {
        for (int attempt = 0; attempt < 64; attempt++) {
                unsigned r[2];
                if (getrandom(r, sizeof(r), 0) != sizeof(r))
                        return -errno;
                char name[64];
                const char *a = adjectives[r[0] % ELEMENTSOF(adjectives)];
                const char *n = nouns[r[1] % ELEMENTSOF(nouns)];
                if (attempt < 32)
                        snprintf(name, sizeof(name), "%s-%s", a, n);
                else
                        snprintf(name, sizeof(name), "%s-%s-%u", a, n, (r[0] >> 8) % 1000);
                VmRecord vm = {};
                int k = store_vm_get_by_name(s, name, &vm);
                if (k == -ENOENT) {
                        *ret = strdup(name);
                        return *ret ? 0 : -ENOMEM;
                }
                vm_record_done(&vm);
                if (k < 0)
                        return k;
        }
        return error_setf(-EEXIST, "could not find a free VM name; pass --name");
}
