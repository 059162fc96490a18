/* SPDX-License-Identifier: MIT */
/* Limits on the owner's loop devices. A file is bound to at most one loop
 * device (a second loop.attach of it, under any name, is refused), and the
 * owner holds at most max_loops of them: the devices bound to files beneath
 * the state directory, plus those loop.attach made whose file has since
 * been renamed out of it (tracked by inode, so a rename does not make room). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "helper.h"
#include "log.h"
#include "loopdev.h"
#include "string-util.h"

int helper_loops_check_unattached(const Helper *h, int fd, const char *relpath) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        int nr = -1;
        int r = loop_find_by_backing(st.st_dev, st.st_ino, &nr);
        if (r < 0)
                return error_setf(r, "listing loop devices: %s", strerror(-r));
        char b[48];
        if (r > 0)
                return error_setf(-EBUSY, "file '%s' is already attached to /dev/loop%d; detach it first",
                                  shorten(relpath, b), nr);
        return 0;
}

/* Drop the records of devices no longer bound to the file they were made
 * for; count those outside the state directory (the others are in l). */
static size_t loops_made_outside(Helper *h, const LoopInfo *l, size_t n) {
        size_t kept = 0, outside = 0;
        for (size_t i = 0; i < h->n_loops_made; i++) {
                HelperLoop *m = &h->loops_made[i];
                if (loop_is_bound_to(m->nr, m->dev, m->ino) <= 0)
                        continue;
                char node[32];
                snprintf(node, sizeof(node), "/dev/loop%d", m->nr);
                bool listed = false;
                for (size_t j = 0; j < n && !listed; j++)
                        listed = streq(l[j].node, node);
                outside += !listed;
                h->loops_made[kept++] = *m;
        }
        h->n_loops_made = kept;
        return outside;
}

int helper_loops_check_room(Helper *h, unsigned want) {
        LoopInfo *l = NULL;
        size_t n = 0;
        int r = loop_list_beneath(h->state_dir, &l, &n);
        if (r < 0)
                return error_setf(r, "listing loop devices: %s", strerror(-r));
        size_t held = n + loops_made_outside(h, l, n);
        loop_info_free_many(l, n);
        if (held + want > h->max_loops)
                return error_setf(-EDQUOT,
                                  "uid %u already holds %zu loop device(s) and may hold at most %u "
                                  "(max_loop_devices); detach unused ones or raise the limit",
                                  (unsigned) h->owner_uid, held, h->max_loops);
        return 0;
}

int helper_loops_record(Helper *h, int nr, int backing_fd) {
        struct stat st;
        if (fstat(backing_fd, &st) < 0)
                return -errno;
        if (h->n_loops_made >= HELPER_MAX_LOOPS_LIMIT)
                return -E2BIG; /* cannot happen below max_loops */
        HelperLoop *l = reallocarray(h->loops_made, h->n_loops_made + 1, sizeof(HelperLoop));
        if (!l)
                return -ENOMEM;
        h->loops_made = l;
        l[h->n_loops_made++] = (HelperLoop){ .nr = nr, .dev = st.st_dev, .ino = st.st_ino };
        return 0;
}

void helper_loops_done(Helper *h) {
        free(h->loops_made);
        h->loops_made = NULL;
        h->n_loops_made = 0;
}
