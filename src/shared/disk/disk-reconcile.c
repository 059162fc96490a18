/* SPDX-License-Identifier: MIT */
#include "disk-reconcile.h"

#include <errno.h>

#include "dm-snapshot.h"
#include "log.h"
#include "loopdev.h"
#include "macro.h"
#include "string-util.h"

bool disk_dm_is_managed(const DmDevice *d, const char *dir) {
        const char *rest = d->name ? startswith(d->name, DISK_DM_PREFIX) : NULL;
        if (!rest || !*rest || !d->backings || !d->backings[0])
                return false;
        for (char **b = d->backings; *b; b++)
                if (!path_is_beneath(*b, dir))
                        return false;
        return true;
}

static int reconcile_dm(const char *dir, DiskOwnedFn owned, void *userdata, int *removed) {
        DmDevice *l = NULL;
        size_t n = 0;
        int r = dm_list(&l, &n), ret = 0;
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (!disk_dm_is_managed(&l[i], dir) || owned(DISK_HANDLE_DM, l[i].name, userdata))
                        continue;
                r = dm_snapshot_remove(l[i].name);
                log_debug("reconcile: removing stale dm device %s: %s", l[i].name, r < 0 ? "failed" : "ok");
                if (r < 0 && ret == 0)
                        ret = r;
                if (r >= 0)
                        (*removed)++;
        }
        dm_device_free_many(l, n);
        return ret;
}

static int reconcile_loops(const char *dir, DiskOwnedFn owned, void *userdata, int *removed) {
        LoopInfo *l = NULL;
        size_t n = 0;
        int r = loop_list_beneath(dir, &l, &n), ret = 0;
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                /* A deleted backing file cannot belong to a live VM. */
                if (!l[i].deleted && owned(DISK_HANDLE_LOOP, l[i].backing, userdata))
                        continue;
                r = loop_detach(l[i].node);
                log_debug("reconcile: detaching %s (%s): %s", l[i].node, l[i].backing, r < 0 ? "failed" : "ok");
                if (r < 0 && ret == 0)
                        ret = r;
                if (r >= 0)
                        (*removed)++;
        }
        loop_info_free_many(l, n);
        return ret;
}

int disk_reconcile(const char *managed_dir, DiskOwnedFn owned, void *userdata) {
        if (!managed_dir || managed_dir[0] != '/' || !owned)
                return -EINVAL;
        int removed = 0;
        int r1 = reconcile_dm(managed_dir, owned, userdata, &removed);
        int r2 = reconcile_loops(managed_dir, owned, userdata, &removed);
        if (r1 < 0)
                return r1;
        return r2 < 0 ? r2 : removed;
}
