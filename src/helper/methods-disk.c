/* SPDX-License-Identifier: MIT */
/* Disk methods: loop devices and dm snapshots over files in the state
 * directory. A device is only ever detached or removed when it is backed by
 * a managed file, so a client cannot tear down someone else's disks. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "disk-clone.h"
#include "disk-reconcile.h"
#include "dm-snapshot.h"
#include "error.h"
#include "helper.h"
#include "log.h"
#include "loopdev.h"
#include "string-util.h"

static int method_loop_attach(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = { { "path", FIELD_STRING, true }, { "read_only", FIELD_BOOL }, {} };
        int r = params_check("loop.attach", params, fields);
        if (r < 0)
                return r;
        const char *path = params_string(params, "path");
        bool ro = json_is_true(json_object_get(params, "read_only"));
        _cleanup_close_ int fd = open_state_file(h, path, ro ? O_RDONLY : O_RDWR);
        if (fd < 0)
                return fd;
        if ((r = helper_loops_check_unattached(h, fd, path)) < 0 || (r = helper_loops_check_room(h, 1)) < 0)
                return r;
        /* No AUTOCLEAR: the device must outlive this request; the client
         * detaches it (or reconcile does when no VM owns the file). */
        _cleanup_(loop_device_release) LoopDevice dev = LOOP_DEVICE_NULL;
        r = loop_attach(fd, ro ? LOOP_ATTACH_READ_ONLY : 0, &dev);
        if (r < 0)
                return error_last_message() ? r : error_setf(r, "attaching a loop device: %s", strerror(-r));
        if ((r = helper_loops_record(h, dev.nr, fd)) < 0) {
                (void) loop_device_detach(&dev);
                return r;
        }
        log_info("attached %s to %s%s", dev.node, path, ro ? " (read-only)" : "");
        *ret = json_pack("{s:s}", "device", dev.node);
        return *ret ? 0 : -ENOMEM;
}

static bool loop_node_is_valid(const char *s) {
        const char *n = startswith(s, "/dev/loop");
        if (!n || !*n || strlen(n) > 7)
                return false;
        return strspn(n, "0123456789") == strlen(n);
}

/* 0 when node is bound to a file beneath the state directory. */
static int check_managed_loop(const Helper *h, const char *node) {
        LoopInfo *l = NULL;
        size_t n = 0;
        int r = loop_list_beneath(h->state_dir, &l, &n);
        if (r < 0)
                return error_setf(r, "listing loop devices: %s", strerror(-r));
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
                found = streq(l[i].node, node);
        loop_info_free_many(l, n);
        if (!found)
                return error_setf(-EPERM, "%s is not backed by a file in the state directory; refused", node);
        return 0;
}

static int method_loop_detach(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = { { "device", FIELD_STRING, true }, {} };
        int r = params_check("loop.detach", params, fields);
        if (r < 0)
                return r;
        const char *node = params_string(params, "device");
        char b[48];
        if (!loop_node_is_valid(node))
                return error_setf(-EINVAL, "'%s' is not a loop device node (/dev/loopN)", shorten(node, b));
        if ((r = check_managed_loop(h, node)) < 0)
                return r;
        r = loop_detach(node);
        if (r < 0)
                return error_last_message() ? r : error_setf(r, "detaching %s: %s", node, strerror(-r));
        log_info("detached %s", node);
        *ret = json_pack("{s:s}", "device", node);
        return *ret ? 0 : -ENOMEM;
}

static int check_dm_name(const char *name) {
        char b[48];
        if (!startswith(name, DISK_DM_PREFIX) || !name_is_valid(name))
                return error_setf(-EINVAL, "invalid dm device name '%s': must be 'banger-' followed by [a-z0-9-]",
                                  shorten(name, b));
        return 0;
}

static int method_dm_snapshot_create(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = {
                { "name", FIELD_STRING, true }, { "base", FIELD_STRING, true }, { "cow", FIELD_STRING, true }, {}
        };
        int r = params_check("dm.snapshot.create", params, fields);
        const char *name = params_string(params, "name"), *base = params_string(params, "base"),
                   *cow = params_string(params, "cow");
        if (r >= 0)
                r = check_dm_name(name);
        if (r < 0)
                return r;
        /* Check both files the way loop.attach does and attach the very fds
         * checked: a name reopened later could be anything by then. */
        _cleanup_close_ int bfd = open_state_file(h, base, O_RDONLY);
        if (bfd < 0)
                return bfd;
        _cleanup_close_ int cfd = open_state_file(h, cow, O_RDWR);
        if (cfd < 0)
                return cfd;
        /* The base may back several snapshots; a COW store only one. */
        if ((r = helper_loops_check_unattached(h, cfd, cow)) < 0 || (r = helper_loops_check_room(h, 2)) < 0)
                return r;
        if (!disk_dm_available())
                return error_setf(-EOPNOTSUPP, "device-mapper is not available on this host "
                                               "(/dev/mapper/control is missing)");
        _cleanup_free_ char *device = NULL;
        r = dm_snapshot_assemble(bfd, cfd, name, &device);
        if (r < 0)
                return error_last_message() ? r : error_setf(r, "creating dm snapshot %s: %s", name, strerror(-r));
        log_info("created dm snapshot %s over %s + %s", name, base, cow);
        *ret = json_pack("{s:s}", "device", device);
        return *ret ? 0 : -ENOMEM;
}

/* 1 when the dm device exists and is backed by managed files, 0 when it does
 * not exist, -EPERM when it belongs to someone else. */
static int check_managed_dm(const Helper *h, const char *name) {
        DmDevice *l = NULL;
        size_t n = 0;
        int r = dm_list(&l, &n);
        if (r < 0)
                return error_setf(r, "listing dm devices: %s", strerror(-r));
        r = 0;
        for (size_t i = 0; i < n; i++) {
                if (!streq(l[i].name, name))
                        continue;
                r = disk_dm_is_managed(&l[i], h->state_dir)
                            ? 1
                            : error_setf(-EPERM,
                                         "dm device %s is not backed only by files in the state directory; "
                                         "refused",
                                         name);
        }
        dm_device_free_many(l, n);
        return r;
}

static int method_dm_snapshot_remove(Helper *h, json_t *params, json_t **ret) {
        static const HelperField fields[] = { { "name", FIELD_STRING, true }, {} };
        int r = params_check("dm.snapshot.remove", params, fields);
        const char *name = params_string(params, "name");
        if (r >= 0)
                r = check_dm_name(name);
        if (r >= 0)
                r = check_managed_dm(h, name);
        if (r < 0)
                return r;
        if (r > 0 && (r = dm_snapshot_remove(name)) < 0)
                return error_last_message() ? r : error_setf(r, "removing dm device %s: %s", name, strerror(-r));
        *ret = json_pack("{s:s}", "name", name);
        return *ret ? 0 : -ENOMEM;
}

const HelperMethod helper_disk_methods[] = {
        { "dm.snapshot.create", method_dm_snapshot_create },
        { "dm.snapshot.remove", method_dm_snapshot_remove },
        { "loop.attach", method_loop_attach },
        { "loop.detach", method_loop_detach },
        {},
};
