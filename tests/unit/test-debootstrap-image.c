/* SPDX-License-Identifier: MIT */
/* Driver for the slow Debian image build test
 * (tests/integration/test_debootstrap.py): builds the default image with
 * debootstrap_image_build() into $BANGER_DEBOOTSTRAP_STATE and prints what
 * was registered. Downloads a Debian base system, so in the ordinary unit
 * run (no BANGER_SLOW_TESTS=1) it only says so and exits 77.
 *
 * Environment: BANGER_DEBOOTSTRAP_STATE (required), BANGER_DEBOOTSTRAP_SUITE
 * (bookworm), BANGER_DEBOOTSTRAP_MIRROR (http://deb.debian.org/debian),
 * BANGER_AGENT (the built agent), BANGER_TEST_CACHE (kernel package cache). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debootstrap-image.h"
#include "error.h"
#include "kernel-store.h"
#include "store.h"

static void on_progress(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata) {
        unsigned *last_pct = userdata;
        if (total) {
                unsigned pct = (unsigned) (done * 100 / total);
                if (pct == *last_pct)
                        return;
                *last_pct = pct;
                printf("progress %s %u%%\n", stage, pct);
        } else
                printf("progress %s %s\n", stage, detail ? detail : "");
        fflush(stdout);
}

static const char *env_or(const char *name, const char *def) {
        const char *v = getenv(name);
        return v && *v ? v : def;
}

int main(void) {
        const char *state = getenv("BANGER_DEBOOTSTRAP_STATE");
        if (!getenv("BANGER_SLOW_TESTS") || !state) {
                printf("slow test: run by tests/integration/test_debootstrap.py (BANGER_SLOW_TESTS=1)\n");
                return 77;
        }
        if (geteuid() != 0) {
                printf("building a Debian image needs root\n");
                return 77;
        }
        char cache[4096];
        snprintf(cache, sizeof(cache), "%s/debs", env_or("BANGER_TEST_CACHE", "/var/cache/banger-test"));
        unsigned last_pct = 101;
        DebootstrapImageOptions o = {
                .name = "debian-bookworm",
                .suite = env_or("BANGER_DEBOOTSTRAP_SUITE", "bookworm"),
                .mirror = env_or("BANGER_DEBOOTSTRAP_MIRROR", "http://deb.debian.org/debian"),
                .agent = env_or("BANGER_AGENT", TEST_BUILD_DIR "/src/agent/banger-agent"),
                .cache_dir = cache,
                .progress = { .fn = on_progress, .userdata = &last_pct },
        };
        char db[4096];
        snprintf(db, sizeof(db), "%s/banger.db", state);
        Store *s = NULL;
        int r = store_open(db, 0, &s);
        if (r < 0) {
                fprintf(stderr, "store_open: %s\n", strerror(-r));
                return 1;
        }
        ImageRecord img = {};
        r = debootstrap_image_build(s, state, &o, &img);
        if (r < 0) {
                fprintf(stderr, "image build failed: %s (%s)\n", error_last_message() ?: "", strerror(-r));
                store_close(s);
                return 1;
        }
        KernelRecord k = {};
        r = store_kernel_get_by_id(s, img.kernel_id, &k);
        if (r >= 0)
                printf("IMAGE name=%s rootfs=%s kernel=%s vmlinux=%s initrd=%s modules=%s version=%s\n", img.name,
                       img.rootfs_path, k.kernel_path, k.elf_path, k.initrd_path ? k.initrd_path : "",
                       k.modules_path ? k.modules_path : "", k.version ? k.version : "");
        kernel_record_done(&k);
        image_record_done(&img);
        store_close(s);
        return r < 0 ? 1 : 0;
}
