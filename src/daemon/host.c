/* SPDX-License-Identifier: MIT */
/* Host resources through the privileged helper: the helper itself (ours
 * when the daemon runs as root), the bridge and TAP devices. */
#include "host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "banger-build.h"
#include "host-internal.h"
#include "error.h"
#include "fs-util.h"
#include "helper-client.h"
#include "log.h"
#include "string-util.h"

const char *host_bridge_ip(Host *h) {
        return h->bridge_ip;
}

unsigned host_prefix(Host *h) {
        return h->prefix;
}

const char *host_netmask(Host *h) {
        return h->netmask;
}

/* A root daemon (development, tests) runs its own helper: still a separate
 * process with its own small validated method table. */
static int start_own_helper(Host *h) {
        Daemon *d = h->d;
        _cleanup_free_ char *bin = helper_find_binary();
        if (!bin)
                return error_setf(-ENOENT, "cannot find bangerd-root next to bangerd or in " BANGER_LIBEXECDIR);
        HelperSpawnOptions o = {
                .binary = bin,
                .socket_path = h->socket,
                .state_dir = d->paths.state_dir,
                .owner_uid = getuid(),
                .owner_gid = getgid(),
                .cidr = d->config.cidr,
                .bridge = d->config.bridge_name,
                .bridge_ip = d->config.bridge_ip,
                .tap_pool = d->config.tap_pool_size,
                .log_fd = d->log_fd,
        };
        int r = helper_spawn(&o, &h->helper);
        if (r < 0)
                return error_setf(r, "cannot start bangerd-root: %s",
                                  error_last_message() ? error_last_message() : strerror(-r));
        if (r > 0)
                log_info("started bangerd-root (pid %d) on %s", (int) h->helper.pid, h->socket);
        else
                log_info("using the bangerd-root already answering on %s", h->socket);
        return 0;
}

static int spawn_own_helper(Host *h) {
        _cleanup_free_ char *dir = path_join(h->d->paths.runtime_dir, "helper");
        h->socket = dir ? path_join(dir, "bangerd-root.sock") : NULL;
        if (!h->socket)
                return -ENOMEM;
        h->own_helper = true;
        return start_own_helper(h);
}

bool host_helper_revive(Host *h, int r) {
        if (!h->own_helper || (r != -ECONNREFUSED && r != -ENOENT))
                return false;
        pthread_mutex_lock(&h->helper_lock);
        if (h->helper.pidfd >= 0) {
                (void) process_wait(&h->helper, 0, NULL); /* reaped when it died */
                process_release(&h->helper);
        }
        log_warning("bangerd-root does not answer on %s (%s); starting it again", h->socket, strerror(-r));
        r = start_own_helper(h);
        if (r < 0)
                log_warning("%s", error_last_message());
        pthread_mutex_unlock(&h->helper_lock);
        return r >= 0;
}

int host_new(Daemon *d, Host **ret) {
        Host *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->d = d;
        h->helper = PROCESS_NULL;
        pthread_mutex_init(&h->nat_lock, NULL);
        pthread_mutex_init(&h->helper_lock, NULL);
        h->prefix = d->config.cidr_prefix;
        snprintf(h->bridge_ip, sizeof(h->bridge_ip), "%s", d->config.bridge_ip);
        struct in_addr mask = { .s_addr = h->prefix ? htonl(~0U << (32 - h->prefix)) : 0 };
        inet_ntop(AF_INET, &mask, h->netmask, sizeof(h->netmask));
        if (geteuid() == 0 && !d->paths.system) {
                int r = spawn_own_helper(h);
                if (r < 0)
                        log_warning("%s; VMs will have no network", error_last_message());
        } else
                h->socket = strdup(HELPER_SYSTEM_SOCKET);
        *ret = h;
        return 0;
}

void host_stop_helper(Host *h) {
        if (!h || h->helper.pidfd < 0)
                return;
        (void) process_signal(&h->helper, SIGTERM);
        if (process_wait(&h->helper, 5 * USEC_PER_SEC, NULL) < 0)
                process_kill_and_reap(&h->helper);
        process_release(&h->helper);
}

Host *host_free(Host *h) {
        if (!h)
                return NULL;
        host_stop_helper(h);
        free(h->socket);
        free(h);
        return NULL;
}

bool host_available(Host *h) {
        if (!h->socket) {
                (void) error_setf(-ENOENT, "no privileged helper");
                return false;
        }
        json_t *res = NULL;
        int r = helper_call(h->socket, "helper.ping", json_object(), 5 * USEC_PER_SEC, &res);
        if (host_helper_revive(h, r))
                r = helper_call(h->socket, "helper.ping", json_object(), 5 * USEC_PER_SEC, &res);
        json_decref(res);
        if (r < 0) {
                error_setf(r,
                           "the privileged helper bangerd-root does not answer on %s (%s); run 'banger system install' "
                           "or bangerd as root",
                           h->socket, strerror(-r));
                return false;
        }
        return true;
}

static int host_call(Host *h, const char *method, json_t *params) {
        if (!h->socket) {
                json_decref(params);
                return error_setf(-ENOENT, "no privileged helper: networking needs bangerd-root");
        }
        int r = helper_call(h->socket, method, json_incref(params), HELPER_TIMEOUT, NULL);
        if (host_helper_revive(h, r))
                r = helper_call(h->socket, method, json_incref(params), HELPER_TIMEOUT, NULL);
        json_decref(params);
        return r;
}

/* Route the .vm zone to our DNS through systemd-resolved, where it runs
 * (the bridge must exist); remembers whether that worked. */
static void hook_resolved(Host *h) {
        int k = helper_resolved_configure(h->socket);
        if (k == -EOPNOTSUPP)
                log_info("systemd-resolved is not running: <name>.vm resolves only through %s:%u",
                         h->d->config.dns_listen, h->d->config.dns_port);
        else if (k < 0)
                log_warning("cannot hook .vm into systemd-resolved: %s",
                            error_last_message() ? error_last_message() : strerror(-k));
        __atomic_store_n(&h->resolved_hooked, k >= 0 ? 1 : -1, __ATOMIC_SEQ_CST);
}

int host_bridge_ensure(Host *h) {
        int r = host_call(h, "bridge.ensure", json_object());
        if (r < 0 || __atomic_exchange_n(&h->resolved_done, true, __ATOMIC_SEQ_CST))
                return r;
        hook_resolved(h);
        return 0;
}

bool host_vm_names_resolve(Host *h) {
        /* A daemon that re-attached to running VMs has not made the bridge. */
        if (__atomic_load_n(&h->resolved_hooked, __ATOMIC_SEQ_CST) == 0 && h->socket &&
            !__atomic_exchange_n(&h->resolved_done, true, __ATOMIC_SEQ_CST))
                hook_resolved(h);
        return __atomic_load_n(&h->resolved_hooked, __ATOMIC_SEQ_CST) > 0;
}

int host_tap_create(Host *h, const char *name) {
        return host_call(h, "tap.create", json_pack("{s:s}", "name", name));
}

int host_tap_delete(Host *h, const char *name) {
        return host_call(h, "tap.delete", json_pack("{s:s}", "name", name));
}

/* A paused VM's VMM still lives and holds its TAP and NAT rules. */
bool vm_holds_network(const VmRecord *vm) {
        return vm_state_is_live(vm->state);
}
