/* SPDX-License-Identifier: MIT */
/* Idle VMs: a running VM nobody used for its idle timeout (the VM's own,
 * else the config's idle_timeout) is stopped or suspended (idle_action).
 * Use is what the daemon sees: a vm.agent or vm.ssh_info call (exec, cp,
 * ssh), a client of the VM's agent multiplexer (an exec or copy still
 * running, a forwarded connection), a console follower, and, checked only
 * when all of these say idle, an established TCP connection from this
 * host to the VM's address (an ssh session). The check is one timer on the
 * daemon's loop, armed for the moment the next VM could become idle and
 * never sooner than IDLE_CHECK_MIN after the last check: a host with no
 * idle timeout set is never woken, one with VMs to watch at most once per
 * IDLE_CHECK_MIN. The check itself runs in a worker. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "string-util.h"
#include "vm-internal.h"
#include "worker.h"

#define IDLE_CHECK_MIN (5 * USEC_PER_SEC)
#define IDLE_CHECK_ACCURACY (1 * USEC_PER_SEC)
#define TCP_TABLE_MAX_LINES 65536

struct VmIdle {
        VmManager *m;
        sd_event_source *timer;
        bool checking;     /* a check runs in a worker */
        bool kicked;       /* asked to look again while it ran */
        usec_t last_check; /* monotonic */
        usec_t next_due;   /* realtime, set by the worker: USEC_INFINITY when no VM has a timeout */
};

/* With m->lock held. */
static VmRuntime *runtime_find(VmManager *m, const char *id) {
        for (VmRuntime *rt = m->runtimes; rt; rt = rt->next)
                if (streq(rt->id, id))
                        return rt;
        return NULL;
}

void vm_touch(VmManager *m, Store *s, const char *id, bool record) {
        usec_t now = now_realtime();
        pthread_mutex_lock(&m->lock);
        VmRuntime *rt = runtime_find(m, id);
        if (rt)
                rt->touched = now;
        pthread_mutex_unlock(&m->lock);
        if (record && store_vm_touch(s, id, now) < 0)
                log_debug("cannot record the use of VM %s", id);
}

/* Under m->lock: what the daemon saw itself and the multiplexer's clients. */
static usec_t runtime_last_used(VmManager *m, const char *id, unsigned *ret_clients) {
        usec_t last = 0, mux_last = 0;
        unsigned clients = 0;
        pthread_mutex_lock(&m->lock);
        VmRuntime *rt = runtime_find(m, id);
        if (rt) {
                last = rt->touched;
                if (rt->agent)
                        vm_agent_usage(rt->agent, &clients, &mux_last);
        }
        pthread_mutex_unlock(&m->lock);
        if (ret_clients)
                *ret_clients = clients;
        return MAX(last, mux_last);
}

usec_t vm_last_used(VmManager *m, const VmRecord *vm) {
        return MAX(vm->last_used_at, runtime_last_used(m, vm->id, NULL));
}

/* An established TCP connection from this host (its network namespace) to
 * ip: an ssh session, or anything else talking to the guest directly. */
static bool host_talks_to(const char *ip) {
        struct in_addr a;
        if (!ip || inet_pton(AF_INET, ip, &a) != 1)
                return false;
        char want[16];
        snprintf(want, sizeof(want), "%08X:", (unsigned) a.s_addr); /* /proc/net/tcp: the raw word, in hex */
        FILE *f = fopen("/proc/net/tcp", "re");
        if (!f)
                return false;
        char line[256], local[64], remote[64], st[8];
        bool found = false;
        for (unsigned n = 0; !found && n < TCP_TABLE_MAX_LINES && fgets(line, sizeof(line), f); n++)
                found = sscanf(line, " %*s %63s %63s %7s", local, remote, st) == 3 && streq(st, "01") &&
                        startswith(remote, want);
        fclose(f);
        return found;
}

static usec_t effective_timeout(VmManager *m, const VmRecord *vm) {
        if (vm->idle_timeout_sec == VM_IDLE_TIMEOUT_OFF)
                return 0;
        uint64_t sec = vm->idle_timeout_sec > 0 ? (uint64_t) vm->idle_timeout_sec : m->d->config.idle_timeout_sec;
        return sec * USEC_PER_SEC;
}

static bool effective_suspend(VmManager *m, const VmRecord *vm) {
        if (vm->idle_action != VM_IDLE_DEFAULT)
                return vm->idle_action == VM_IDLE_SUSPEND;
        return m->d->config.idle_action == CONFIG_IDLE_SUSPEND;
}

/* With the VM's lock: stop or suspend it when it has been idle for its
 * timeout; else note when it may be. */
static int idle_locked(VmManager *m, Store *s, VmRecord *vm, void *userdata) {
        VmIdle *idle = userdata;
        usec_t timeout = effective_timeout(m, vm), now = now_realtime();
        if (vm->state != VM_STATE_RUNNING || timeout == 0)
                return 0;
        unsigned clients = 0;
        usec_t last = MAX(runtime_last_used(m, vm->id, &clients), vm->last_used_at);
        if (clients > 0 || (now >= last + timeout && host_talks_to(vm->ip)))
                last = now;
        if (last > vm->last_used_at)
                (void) store_vm_touch(s, vm->id, last); /* what vm show says, across restarts */
        if (now < last + timeout) {
                idle->next_due = MIN(idle->next_due, last + timeout);
                return 0;
        }
        bool suspend = effective_suspend(m, vm);
        log_info("vm %s: not used for %llu s (idle timeout %llu s); %s it", vm->name,
                 (unsigned long long) ((now - last) / USEC_PER_SEC), (unsigned long long) (timeout / USEC_PER_SEC),
                 suspend ? "suspending" : "stopping");
        int r = suspend ? vm_suspend_locked(m, s, vm, NULL)
                        : vm_stop_locked(m, s, vm, m->d->config.stop_timeout_sec * USEC_PER_SEC, false);
        if (r < 0)
                log_warning("vm %s: idle %s failed: %s", vm->name, suspend ? "suspend" : "stop",
                            error_last_message() ? error_last_message() : strerror(-r));
        return r;
}

static void check_main(void *userdata) {
        VmIdle *idle = userdata;
        VmManager *m = idle->m;
        idle->next_due = USEC_INFINITY;
        _cleanup_store_close_ Store *s = NULL;
        VmRecord *list = NULL;
        size_t n = 0;
        int r = daemon_open_store(m->d, &s);
        if (r >= 0)
                r = store_vm_list(s, &list, &n);
        if (r < 0) {
                log_warning("idle check: cannot read the VMs: %s", error_last_message() ?: strerror(-r));
                idle->next_due = now_realtime() + IDLE_CHECK_MIN;
                return;
        }
        for (size_t i = 0; i < n; i++)
                if (list[i].state == VM_STATE_RUNNING && effective_timeout(m, &list[i]) > 0)
                        (void) vm_with_lock(m, s, list[i].id, 0, idle_locked, idle);
        vm_record_array_free(list, n);
}

/* On the loop: the timer at `when` (monotonic), never sooner than
 * IDLE_CHECK_MIN after the last check. */
static void arm(VmIdle *idle, usec_t when) {
        if (idle->checking) {
                idle->kicked = true;
                return;
        }
        when = MAX(when, idle->last_check + IDLE_CHECK_MIN);
        uint64_t armed = 0;
        int enabled = SD_EVENT_OFF;
        (void) sd_event_source_get_enabled(idle->timer, &enabled);
        if (enabled != SD_EVENT_OFF && sd_event_source_get_time(idle->timer, &armed) >= 0 && armed <= when)
                return;
        if (sd_event_source_set_time(idle->timer, when) < 0 ||
            sd_event_source_set_enabled(idle->timer, SD_EVENT_ONESHOT) < 0)
                log_warning("idle check: cannot arm its timer");
}

static void check_done(void *userdata) {
        VmIdle *idle = userdata;
        idle->checking = false;
        idle->last_check = now_monotonic();
        if (idle->kicked) {
                idle->kicked = false;
                arm(idle, idle->last_check);
        } else if (idle->next_due != USEC_INFINITY) {
                usec_t now = now_realtime();
                arm(idle, idle->last_check + (idle->next_due > now ? idle->next_due - now : 0));
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        VmIdle *idle = userdata;
        if (idle->m->d->shutting_down)
                return 0;
        idle->checking = true;
        idle->kicked = false;
        if (workers_start(idle->m->d->workers, check_main, check_done, idle, WORKER_UNLIMITED) < 0) {
                idle->checking = false;
                idle->last_check = now_monotonic();
                arm(idle, idle->last_check);
        }
        return 0;
}

static void kick_on_loop(void *userdata) {
        VmIdle *idle = userdata;
        arm(idle, now_monotonic());
}

void vm_idle_kick(VmManager *m) {
        if (m->idle && workers_post(m->d->workers, kick_on_loop, m->idle) < 0)
                log_warning("idle check: cannot schedule it");
}

int vm_idle_start(VmManager *m) {
        VmIdle *idle = calloc(1, sizeof(*idle));
        if (!idle)
                return -ENOMEM;
        idle->m = m;
        idle->last_check = now_monotonic();
        int r = sd_event_add_time(m->d->event, &idle->timer, CLOCK_MONOTONIC, idle->last_check + IDLE_CHECK_MIN,
                                  IDLE_CHECK_ACCURACY, on_timer, idle);
        if (r < 0) {
                free(idle);
                return r;
        }
        (void) sd_event_source_set_description(idle->timer, "idle-check");
        m->idle = idle;
        return 0;
}

void vm_idle_free(VmManager *m) {
        if (!m->idle)
                return;
        sd_event_source_disable_unref(m->idle->timer);
        free(m->idle);
        m->idle = NULL;
}

int vm_idle_timeout_param(json_t *v, void *field) {
        const char *t = json_string_value(v);
        uint64_t sec = 0;
        if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= VM_IDLE_TIMEOUT_MAX)
                sec = (uint64_t) json_integer_value(v);
        else if (t && streq(t, "default")) {
                *(int64_t *) field = 0;
                return 0;
        } else if (!t || parse_duration_sec(t, VM_IDLE_TIMEOUT_MAX, &sec) < 0)
                return -EINVAL;
        *(int64_t *) field = sec == 0 ? VM_IDLE_TIMEOUT_OFF : (int64_t) sec;
        return 0;
}

int vm_idle_action_param(json_t *v, void *field) {
        const char *t = json_string_value(v);
        VmIdleAction a = t && streq(t, "default") ? VM_IDLE_DEFAULT : vm_idle_action_from_string(t);
        if (!t || a < 0)
                return -EINVAL;
        *(int *) field = (int) a;
        return 0;
}
