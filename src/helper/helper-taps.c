/* SPDX-License-Identifier: MIT */
/* Which TAPs this helper may act on. Any TUN named "bgt…" is not enough:
 * another owner's helper, or a third user, may hold TAPs with banger names
 * in the same namespace. A TAP is this helper's when it is owned by the
 * owner and enslaved to the helper's bridge, or when this process made it
 * (tap.create) or holds it (the pool) - so a TAP whose bridge was deleted
 * and re-created can still be deleted by the helper that made it. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "helper.h"
#include "string-util.h"

static bool strv_has(char *const *l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

int helper_taps_record(Helper *h, const char *name) {
        if (strv_has(h->taps_made, name))
                return 0;
        size_t n = strv_length(h->taps_made);
        if (n >= HELPER_MAX_LIST)
                return -E2BIG; /* cannot happen below the TAP cap */
        char **l = reallocarray(h->taps_made, n + 2, sizeof(char *));
        if (!l)
                return -ENOMEM;
        h->taps_made = l;
        if (!(l[n] = strdup(name)))
                return -ENOMEM;
        l[n + 1] = NULL;
        return 0;
}

void helper_taps_forget(Helper *h, const char *name) {
        char **w = h->taps_made;
        for (char **r = h->taps_made; r && *r; r++) {
                if (streq(*r, name))
                        free(*r);
                else
                        *w++ = *r;
        }
        if (w)
                *w = NULL;
}

int helper_tap_scope(const Helper *h, TapScope *ret, char ***storage) {
        size_t n = strv_length(h->taps_made);
        _cleanup_strv_free_ char **l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(l[i] = strdup(h->taps_made[i])))
                        return -ENOMEM;
        int r = helper_pool_keep(h, &l);
        if (r < 0)
                return r;
        *ret = (TapScope){ .uid = h->owner_uid, .bridge = h->bridge, .recorded = l };
        *storage = TAKE_PTR(l);
        return 0;
}

int helper_taps_room(const Helper *h, Netlink *nl, size_t *ret) {
        _cleanup_free_ NlLink *links = NULL;
        size_t n = 0, held = 0;
        int r = nl_link_list(nl, &links, &n);
        if (r < 0)
                return error_setf(r, "listing links: %s", strerror(-r));
        /* Every TAP of the owner's, on whichever bridge: the limit is per owner. */
        for (size_t i = 0; i < n; i++)
                held += streq(links[i].kind, "tun") && tap_name_is_valid(links[i].name) && links[i].tun_has_owner &&
                        links[i].tun_owner == h->owner_uid;
        *ret = held >= h->max_taps ? 0 : h->max_taps - held;
        return (int) MIN(held, (size_t) INT_MAX);
}

int helper_taps_check_room(const Helper *h, Netlink *nl) {
        size_t room = 0;
        int held = helper_taps_room(h, nl, &room);
        if (held < 0)
                return held;
        if (room == 0)
                return error_setf(-EDQUOT,
                                  "uid %u already holds %d TAP(s) and may hold at most %u (max_taps, "
                                  "pooled TAPs included); delete unused VMs or raise the limit",
                                  (unsigned) h->owner_uid, held, h->max_taps);
        return 0;
}
