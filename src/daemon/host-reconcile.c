/* SPDX-License-Identifier: MIT */
/* At start: remove the TAPs and loop devices no VM in the database owns. */
#include <errno.h>
#include <stdlib.h>

#include "error.h"
#include "helper-client.h"
#include "host-internal.h"
#include "log.h"

int host_reconcile(Host *h, Store *s, bool (*may_hold)(const VmRecord *vm, void *userdata), void *userdata) {
        if (!h->socket)
                return -ENOENT;
        VmRecord *list = NULL;
        size_t n = 0;
        int r = store_vm_list(s, &list, &n);
        if (r < 0)
                return r;
        char **keep = calloc(n + 1, sizeof(char *));
        size_t k = 0;
        for (size_t i = 0; keep && i < n; i++)
                if (list[i].tap && (vm_holds_network(&list[i]) || (may_hold && may_hold(&list[i], userdata))))
                        keep[k++] = list[i].tap;
        json_t *removed = NULL;
        r = keep ? helper_reconcile(h->socket, keep, NULL, NULL, &removed) : -ENOMEM;
        if (keep && host_helper_revive(h, r))
                r = helper_reconcile(h->socket, keep, NULL, NULL, &removed);
        if (r >= 0 && removed) {
                char *t = json_dumps(removed, JSON_COMPACT);
                log_info("reconcile removed: %s", t ? t : "?");
                free(t);
        }
        json_decref(removed);
        free(keep);
        vm_record_array_free(list, n);
        return r;
}
