/* SPDX-License-Identifier: MIT */
/* The TAP pool (config tap_pool_size, --tap-pool): TAPs created, owned,
 * enslaved and up in advance under random "bgtp…" names, so tap.create only
 * renames one (down, rename, up) instead of the full netlink sequence. The
 * pool is refilled from an idle-priority event after the reply went out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "error.h"
#include "helper.h"
#include "log.h"
#include "netlink.h"
#include "string-util.h"
#include "time-util.h"

static int pool_fill(Helper *h, Netlink *nl) {
        usec_t start = now_monotonic();
        size_t room = 0;
        int r = helper_taps_room(h, nl, &room);
        if (r < 0)
                return log_warning_errno(r, "TAP pool: %s", error_last_message() ?: strerror(-r));
        if (room < h->tap_pool.target - h->tap_pool.n)
                log_warning("TAP pool: uid %u holds %d TAP(s) of max_taps %u; filling %zu of %zu",
                            (unsigned) h->owner_uid, r, h->max_taps, room, h->tap_pool.target - h->tap_pool.n);
        r = tap_pool_fill(nl, &h->tap_pool, room);
        if (r < 0)
                return log_warning_errno(r, "TAP pool: refill stopped at %zu of %zu: %s", h->tap_pool.n,
                                         h->tap_pool.target, error_last_message() ?: strerror(-r));
        if (r > 0)
                log_info("TAP pool: added %d TAP(s), %zu ready (%.1f ms)", r, h->tap_pool.n,
                         (double) (now_monotonic() - start) / 1000.0);
        return 0;
}

static int on_pool_refill(sd_event_source *s, void *userdata) {
        Helper *h = userdata;
        _cleanup_netlink_ Netlink *nl = NULL;
        int r = netlink_open(&nl);
        if (r < 0)
                return log_warning_errno(r, "TAP pool: cannot open netlink: %m"), 0;
        /* No bridge, no pool: bridge.ensure and tap.create schedule a refill
         * once they made it. */
        NlLink br;
        if (nl_link_get(nl, h->bridge, &br) < 0)
                return 0;
        error_clear();
        (void) pool_fill(h, nl);
        return 0;
}

void helper_pool_schedule_refill(Helper *h) {
        if (h->pool_refill && h->tap_pool.n < h->tap_pool.target)
                (void) sd_event_source_set_enabled(h->pool_refill, SD_EVENT_ONESHOT);
}

/* At start the pool is filled before the event loop runs, so the first
 * answered request already sees it full; the bridge is created for it since
 * a pool was asked for and every TAP needs the bridge anyway. */
int helper_pool_setup(Helper *h) {
        if (h->tap_pool.target == 0)
                return 0;
        int r = sd_event_add_defer(h->event, &h->pool_refill, on_pool_refill, h);
        if (r >= 0)
                r = sd_event_source_set_priority(h->pool_refill, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(h->pool_refill, SD_EVENT_OFF);
        if (r < 0)
                return error_setf(r, "TAP pool: cannot set up the refill event: %s", strerror(-r));
        _cleanup_netlink_ Netlink *nl = NULL;
        if ((r = netlink_open(&nl)) < 0)
                return error_setf(r, "TAP pool: cannot open netlink: %s", strerror(-r));
        error_clear();
        r = bridge_ensure(nl, h->bridge, h->bridge_ip, h->subnet.prefixlen, NULL);
        if (r < 0) {
                /* Not fatal: the pool fills after a later bridge.ensure. */
                log_warning_errno(r, "TAP pool: bridge %s: %s; the pool stays empty for now", h->bridge,
                                  error_last_message() ?: strerror(-r));
                return 0;
        }
        if (r > 0)
                log_info("created bridge %s", h->bridge);
        error_clear();
        (void) pool_fill(h, nl);
        return 0;
}

/* Turn the pooled TAP into name. current tracks the name it has right now,
 * so a failure deletes the right device. */
static int pool_tap_adopt(Helper *h, Netlink *nl, const char *pooled, const char *name, char current[static IFNAMSIZ]) {
        NlLink tap, br;
        int r = nl_link_get(nl, pooled, &tap);
        if (r < 0)
                return error_setf(r, "pooled TAP %s: %s", pooled, strerror(-r));
        if (!streq(tap.kind, "tun"))
                return error_setf(-ENOTUNIQ, "pooled TAP %s is no longer a TAP", pooled);
        if ((r = nl_link_get(nl, h->bridge, &br)) < 0)
                return error_setf(r, "bridge %s: %s", h->bridge, strerror(-r));
        /* The kernel renames only links that are down. */
        if ((r = net_fault_step()) < 0 || (r = nl_link_set_up(nl, tap.ifindex, false)) < 0)
                return error_setf(r, "bringing %s down: %s", pooled, strerror(-r));
        if ((r = net_fault_step()) < 0 || (r = nl_link_rename(nl, tap.ifindex, name)) < 0)
                return error_setf(r, "renaming %s to %s: %s", pooled, name, strerror(-r));
        snprintf(current, IFNAMSIZ, "%s", name);
        /* Created enslaved, but the bridge may have been re-created since. */
        if (tap.master != br.ifindex &&
            ((r = net_fault_step()) < 0 || (r = nl_link_set_master(nl, tap.ifindex, br.ifindex)) < 0))
                return error_setf(r, "attaching %s to %s: %s", name, h->bridge, strerror(-r));
        if ((r = net_fault_step()) < 0 || (r = nl_link_set_up(nl, tap.ifindex, true)) < 0)
                return error_setf(r, "bringing %s up: %s", name, strerror(-r));
        return 0;
}

int helper_pool_take_as(Helper *h, Netlink *nl, const char *name) {
        if (h->tap_pool.target == 0)
                return -EAGAIN;
        /* Checked first so a taken name does not cost a pooled TAP. */
        int ifindex;
        if (nl_link_get_index(nl, name, &ifindex) >= 0)
                return -EEXIST;
        char pooled[IFNAMSIZ], current[IFNAMSIZ];
        /* The pool's TAPs are created owned by the owner: take() re-owns
         * only on a mismatch, which cannot happen here. */
        int r = tap_pool_take(nl, &h->tap_pool, h->owner_uid, h->owner_gid, pooled);
        helper_pool_schedule_refill(h);
        if (r < 0) {
                error_clear();
                return -EAGAIN;
        }
        memcpy(current, pooled, IFNAMSIZ);
        r = pool_tap_adopt(h, nl, pooled, name, current);
        if (r >= 0) {
                log_debug("TAP pool: %s became %s", pooled, name);
                return 0;
        }
        log_warning("TAP pool: %s; creating %s from scratch", error_last_message(), name);
        int k = tap_delete(nl, current);
        if (k < 0)
                log_warning_errno(k, "TAP pool: cannot delete %s: %m", current);
        error_clear();
        return -EAGAIN;
}

int helper_pool_keep(const Helper *h, char ***keep) {
        size_t n = 0;
        while (*keep && (*keep)[n])
                n++;
        char **l = reallocarray(*keep, n + h->tap_pool.n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        *keep = l;
        l[n] = NULL;
        for (size_t i = 0; i < h->tap_pool.n; i++) {
                if (!(l[n] = strdup(h->tap_pool.names[i])))
                        return -ENOMEM;
                l[++n] = NULL;
        }
        return 0;
}

void helper_pool_done(Helper *h) {
        h->pool_refill = sd_event_source_disable_unref(h->pool_refill);
        if (h->tap_pool.n == 0)
                return;
        size_t n = h->tap_pool.n;
        _cleanup_netlink_ Netlink *nl = NULL;
        int r = netlink_open(&nl);
        if (r >= 0)
                r = tap_pool_drain(nl, &h->tap_pool);
        if (r < 0)
                log_warning_errno(r, "TAP pool: removing pooled TAPs: %m");
        else
                log_info("TAP pool: removed %zu pooled TAP(s)", n);
}
