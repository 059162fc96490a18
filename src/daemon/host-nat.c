/* SPDX-License-Identifier: MIT */
/* Where NAT is regenerated: banger's nftables NAT table is rewritten, through
 * the privileged helper, from the VMs the database records as running with
 * NAT. */
#include <errno.h>
#include <stdlib.h>

#include "error.h"
#include "helper-client.h"
#include "host-internal.h"
#include "log.h"

int host_nat_sync(Host *h, Store *s) {
        if (!h->socket)
                return error_setf(-ENOENT, "no privileged helper: NAT needs bangerd-root");
        VmRecord *list = NULL;
        size_t n = 0;
        pthread_mutex_lock(&h->nat_lock);
        int r = store_vm_list(s, &list, &n);
        if (r < 0) {
                pthread_mutex_unlock(&h->nat_lock);
                return r;
        }
        HelperNatEntry *e = calloc(n + 1, sizeof(HelperNatEntry));
        size_t k = 0;
        for (size_t i = 0; e && i < n; i++)
                if (list[i].nat && vm_holds_network(&list[i]) && list[i].ip && list[i].tap &&
                    inet_pton(AF_INET, list[i].ip, &e[k].guest) == 1)
                        e[k++].tap = list[i].tap;
        r = e ? helper_nat_apply(h->socket, e, k) : -ENOMEM;
        if (e && host_helper_revive(h, r))
                r = helper_nat_apply(h->socket, e, k);
        pthread_mutex_unlock(&h->nat_lock);
        free(e);
        vm_record_array_free(list, n);
        return r;
}
