/* SPDX-License-Identifier: MIT */
/* The default image on first use: `banger vm run` on a fresh host has no
 * image yet, and the configured default_image is one banger knows how to
 * get: pulled from a [[catalog]] that offers it, else made with debootstrap,
 * so vm.create fetches or builds it instead of failing, streaming the
 * stages as progress of the create. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "banger-build.h"
#include "daemon.h"
#include "rpc-call.h"
#include "debootstrap-image.h"
#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "methods.h"
#include "paths.h"
#include "string-util.h"
#include "vm-internal.h"

typedef struct BuildNotes {
        VmProgress *p;
        const char *name;
        char stage[32];
        usec_t last;
} BuildNotes;

/* Forwarded as vm.create progress: the build's own stage names (debootstrap,
 * kernel, initramfs, rootfs, register) with their bytes, so the CLI shows
 * them as it shows any other stage. Within a stage, byte counters go at most
 * ten a second and detail lines (debootstrap's hundreds of "I: ..." lines)
 * one a second, which a log or a terminal can follow; a stage change and a
 * counter reaching its total always go through. */
static void forward_progress(const char *stage, const char *detail, uint64_t done, uint64_t total, void *userdata) {
        BuildNotes *n = userdata;
        usec_t now = now_monotonic();
        bool new_stage = !streq(stage, n->stage);
        usec_t gap = total ? 100 * USEC_PER_MSEC : USEC_PER_SEC;
        if (!new_stage && (!total || done < total) && now - n->last < gap)
                return;
        n->last = now;
        if (new_stage) {
                snprintf(n->stage, sizeof(n->stage), "%s", stage);
                log_info("default image %s: %s%s%s", n->name, stage, detail ? ": " : "", detail ? detail : "");
        }
        if (!n->p || !n->p->call)
                return;
        char msg[512];
        snprintf(msg, sizeof(msg), "image %s%s%s", n->name, detail && *detail ? ": " : "", detail ? detail : "");
        rpc_call_notify(n->p->call, "progress",
                        json_pack("{s:s, s:s, s:I, s:I, s:I}", "stage", stage, "message", msg, "bytes",
                                  (json_int_t) done, "total", (json_int_t) total, "elapsed_ms",
                                  (json_int_t) ((now - n->p->started) / USEC_PER_MSEC)));
}

static int build_default(VmManager *m, Store *s, const char *name, VmProgress *p) {
        const BangerConfig *c = &m->d->config;
        _cleanup_free_ char *agent = daemon_find_agent();
        if (!agent)
                return error_setf(-ENOENT,
                                  "image %s does not exist, and banger-agent (needed to build it) is not "
                                  "next to bangerd or in %s/banger",
                                  name, BANGER_LIBEXECDIR);
        _cleanup_free_ char *cache = path_join(m->d->paths.cache_dir, "debs");
        int cfd = -EBADF;
        if (cache && paths_ensure_private_dir(cache, &cfd) >= 0)
                safe_close(cfd);
        BuildNotes notes = { .p = p, .name = name };
        DebootstrapImageOptions o = { .name = name,
                                      .suite = c->debootstrap_suite,
                                      .mirror = c->debootstrap_mirror,
                                      .agent = agent,
                                      .cache_dir = cache,
                                      .progress = { forward_progress, &notes } };
        vm_progress(p, NULL, "image", "%s does not exist yet: building it from Debian %s (%s), once", name,
                    c->debootstrap_suite, c->debootstrap_mirror);
        usec_t t0 = now_monotonic();
        int r = debootstrap_image_build(s, m->d->paths.state_dir, &o, NULL);
        if (r < 0)
                return error_setf(r, "building the default image %s: %s", name,
                                  error_last_message() ? error_last_message() : strerror(-r));
        vm_progress(p, NULL, "image", "%s built in %.0f s", name, (double) (now_monotonic() - t0) / USEC_PER_SEC);
        return 0;
}

/* A catalog that offers the image is faster than debootstrap on any host
 * with a network: -ENOENT when none does (then it is built). */
static int pull_default(VmManager *m, Store *s, const char *name, VmProgress *p) {
        BuildNotes notes = { .p = p, .name = name };
        vm_progress(p, NULL, "image", "%s does not exist yet: pulling it from a catalog", name);
        usec_t t0 = now_monotonic();
        error_clear();
        int r = catalog_pull_image(m->d, s, name, &(Progress){ forward_progress, &notes });
        if (r == -ENOENT)
                vm_progress(p, NULL, "image", "%s: %s", name, error_last_message() ?: "no catalog offers it");
        else if (r < 0)
                return error_setf(r, "pulling the default image %s: %s", name, error_last_message() ?: strerror(-r));
        else
                vm_progress(p, NULL, "image", "%s pulled in %.0f s", name,
                            (double) (now_monotonic() - t0) / USEC_PER_SEC);
        return r;
}

static int refuse_unprivileged_build(const BangerConfig *c, const char *ref) {
        /* The root helper has no image-build method, so a user's daemon
         * cannot build it: say what the user can do instead. */
        return error_setf(-EPERM,
                          "image %s does not exist, and building it runs debootstrap, which needs root "
                          "(bangerd runs as uid %u): build it as root with `sudo banger image build %s "
                          "--debootstrap %s`, then bring its kernel and rootfs here with `banger kernel "
                          "import` and `banger image register`; add a [[catalog]] that offers it; or pick "
                          "another image with --image",
                          ref, (unsigned) geteuid(), ref, c->debootstrap_suite);
}

int vm_default_image_ensure(VmManager *m, Store *s, const char *ref, VmProgress *p) {
        const BangerConfig *c = &m->d->config;
        /* Only the configured default is built: any other missing name is the
         * user's typo or an image they meant to import, and fails as such. */
        if (!ref || !c->default_image || !streq(ref, c->default_image))
                return 0;
        ImageRecord img = {};
        int r = store_image_get_by_name(s, ref, &img);
        image_record_done(&img);
        if (r != -ENOENT)
                return r < 0 ? r : 0;
        if (geteuid() != 0 && c->n_catalogs == 0)
                return refuse_unprivileged_build(c, ref);
        /* Concurrent creates wait here for the one pull or build instead of
         * starting their own: the second finds the image registered. */
        pthread_mutex_lock(&m->default_image_lock);
        r = store_image_get_by_name(s, ref, &img);
        image_record_done(&img);
        if (r == -ENOENT && c->n_catalogs > 0)
                r = pull_default(m, s, ref, p);
        if (r == -ENOENT)
                r = geteuid() != 0 ? refuse_unprivileged_build(c, ref) : build_default(m, s, ref, p);
        pthread_mutex_unlock(&m->default_image_lock);
        return r < 0 ? r : 0;
}
