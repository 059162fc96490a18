/* SPDX-License-Identifier: MIT */
/* vm.*: parameter checks on the event loop, the work in worker threads. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-client.h"
#include "daemon.h"
#include "error.h"
#include "fs-util.h"
#include "jsonrpc.h"
#include "log.h"
#include "string-util.h"
#include "vm-internal.h"

#define VM_MAX_REFS 256
#define AGENT_QUERY_TIMEOUT (15 * USEC_PER_SEC)

/* Host-derived defaults: cores/4 (1..4) vCPUs, RAM/8 capped at 8 GiB. */
static void host_defaults(unsigned *vcpu, unsigned long long *mem_mib) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        *vcpu = (unsigned) MIN(MAX(cores / 4, 1L), 4L);
        unsigned long long ram_mib = pages > 0 && psize > 0 ? (unsigned long long) pages * (unsigned long long) psize >> 20 : 1024;
        *mem_mib = MIN(MAX(ram_mib / 8, 256ULL), 8192ULL);
}

typedef struct Job {
        VmManager *m;
        VmCreateRequest create;
        char *name, *image;
        char **refs;
        size_t n_refs;
        char *op;
        int sig;
        usec_t timeout;
        unsigned vcpu;
        unsigned long long memory_mib;
        size_t tail, offset;
        bool have_offset;
} Job;

static void job_free(void *p) {
        Job *j = p;
        if (!j)
                return;
        free(j->name);
        free(j->image);
        for (size_t i = 0; i < j->n_refs; i++)
                free(j->refs[i]);
        free(j->refs);
        free(j->op);
        free(j);
}

static Job *job_new(Daemon *d) {
        Job *j = calloc(1, sizeof(*j));
        if (j)
                j->m = d->vms;
        return j;
}

/* ---- parameter helpers (event loop) ---- */

static int param_str(RpcCall *call, json_t *params, const char *key, bool required, const char **ret) {
        json_t *v = json_object_get(params, key);
        if (!v && !required) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4096) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"%s\" must be a non-empty string", key);
                return -EINVAL;
        }
        *ret = json_string_value(v);
        return 0;
}

static int param_uint(RpcCall *call, json_t *params, const char *key, unsigned long long max, unsigned long long *ret) {
        json_t *v = json_object_get(params, key);
        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) <= 0 || (unsigned long long) json_integer_value(v) > max) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"%s\" must be an integer from 1 to %llu", key, max);
                return -EINVAL;
        }
        *ret = (unsigned long long) json_integer_value(v);
        return 0;
}

static int param_bool(RpcCall *call, json_t *params, const char *key, bool *ret) {
        json_t *v = json_object_get(params, key);
        if (!v)
                return 0;
        if (!json_is_boolean(v)) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"%s\" must be true or false", key);
                return -EINVAL;
        }
        *ret = json_is_true(v);
        return 0;
}

static int param_refs(RpcCall *call, json_t *params, Job *j) {
        json_t *v = json_object_get(params, "vms");
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > VM_MAX_REFS) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"vms\" must be a non-empty array of VM references");
                return -EINVAL;
        }
        j->refs = calloc(json_array_size(v), sizeof(char *));
        if (!j->refs)
                return -ENOMEM;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
                if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 64) {
                        rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"vms\"[%zu] must be a VM name or id", i);
                        return -EINVAL;
                }
                j->refs[j->n_refs++] = strdup(json_string_value(e));
        }
        return 0;
}

/* ---- vm.create ---- */

static int work_create(RpcCall *call, void *userdata, json_t **ret) {
        Job *j = userdata;
        Store *s = NULL;
        int r = vm_manager_open_store(j->m, &s);
        if (r < 0)
                return r;
        VmProgress p = { .call = call, .started = now_monotonic() };
        VmRecord vm = {};
        r = vm_op_create(j->m, s, &j->create, &p, &vm);
        if (r >= 0)
                *ret = vm_to_json(j->m, s, &vm);
        else if (p.vm_id[0]) {
                /* The VM stays, in state error: say which, and what its console said. */
                char why[1024];
                snprintf(why, sizeof(why), "%s", error_last_message() ? error_last_message() : strerror(-r));
                _cleanup_free_ char *tail = vm_log_tail(j->m, p.vm_id, 3000);
                rpc_call_set_error_data(call, json_pack("{s:s, s:s?}", "vm", p.vm_id, "log_tail", tail));
                error_setf(r, "%s", why);
        }
        vm_record_done(&vm);
        store_close(s);
        return r;
}

static int method_create(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "name", "image", "vcpu", "memory_mib", "disk_bytes", "nat", "vmm", "no_start", NULL };
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        Job *j = job_new(d);
        if (!j)
                return -ENOMEM;
        const BangerConfig *c = &d->config;
        unsigned hv;
        unsigned long long hm;
        host_defaults(&hv, &hm);
        unsigned long long vcpu = c->vm_defaults.vcpu ? c->vm_defaults.vcpu : hv;
        unsigned long long mem = c->vm_defaults.memory_mib ? c->vm_defaults.memory_mib : hm;
        unsigned long long disk = c->vm_defaults.disk_size ? c->vm_defaults.disk_size : (8ULL << 30);
        bool nat = c->vm_defaults.nat, no_start = false;
        const char *name = NULL, *image = NULL, *vmm = NULL;
        if (param_str(call, params, "name", false, &name) < 0 || param_str(call, params, "image", false, &image) < 0 ||
            param_str(call, params, "vmm", false, &vmm) < 0 || param_uint(call, params, "vcpu", 64, &vcpu) < 0 ||
            param_uint(call, params, "memory_mib", 1ULL << 20, &mem) < 0 ||
            param_uint(call, params, "disk_bytes", 1ULL << 44, &disk) < 0 || param_bool(call, params, "nat", &nat) < 0 ||
            param_bool(call, params, "no_start", &no_start) < 0)
                goto invalid;
        if (name && !name_is_valid(name)) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS,
                                     "\"name\" must be a DNS label: [a-z0-9][a-z0-9-]{0,62}, got '%s'", name);
                goto invalid;
        }
        if (disk < (16ULL << 20)) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"disk_bytes\" must be at least 16 MiB");
                goto invalid;
        }
        if (mem < 64) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"memory_mib\" must be at least 64");
                goto invalid;
        }
        int kind = vmm ? vmm_kind_from_string(vmm) : d->default_vmm;
        if (kind < 0) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"vmm\" must be \"firecracker\" or \"qemu\"");
                goto invalid;
        }
        j->name = name ? strdup(name) : NULL;
        j->image = image ? strdup(image) : NULL;
        j->create = (VmCreateRequest){ .name = j->name, .image = j->image, .vcpu = (unsigned) vcpu, .memory_mib = mem,
                                       .disk_bytes = disk, .nat = nat, .vmm = kind, .no_start = no_start };
        return rpc_call_defer(call, work_create, j, job_free);
invalid:
        job_free(j);
        return 0;
}

/* ---- multi-VM operations ---- */

typedef struct OneOp {
        Job *j;
        char *id;
        int r;
        char err[1024];
        json_t *vm;
} OneOp;

static int run_one(Job *j, Store *s, const char *id) {
        VmManager *m = j->m;
        const char *op = j->op;
        if (streq(op, "start"))
                return vm_op_start(m, s, id, NULL);
        if (streq(op, "stop"))
                return vm_op_stop(m, s, id, j->timeout);
        if (streq(op, "restart")) {
                int r = vm_op_stop(m, s, id, j->timeout);
                return r < 0 ? r : vm_op_start(m, s, id, NULL);
        }
        if (streq(op, "kill"))
                return vm_op_kill(m, s, id, j->sig);
        if (streq(op, "delete"))
                return vm_op_delete(m, s, id, 0);
        return -EINVAL;
}

static void *one_main(void *p) {
        OneOp *o = p;
        Store *s = NULL;
        error_clear();
        o->r = vm_manager_open_store(o->j->m, &s);
        if (o->r >= 0)
                o->r = run_one(o->j, s, o->id);
        if (o->r < 0)
                snprintf(o->err, sizeof(o->err), "%s", error_last_message() ? error_last_message() : strerror(-o->r));
        else if (!streq(o->j->op, "delete")) {
                VmRecord vm = {};
                if (store_vm_get_by_id(s, o->id, &vm) >= 0)
                        o->vm = vm_to_json(o->j->m, s, &vm);
                vm_record_done(&vm);
        }
        if (s)
                store_close(s);
        return NULL;
}

static int work_multi(RpcCall *call, void *userdata, json_t **ret) {
        Job *j = userdata;
        Store *s = NULL;
        int r = vm_manager_open_store(j->m, &s);
        if (r < 0)
                return r;
        /* Resolve everything first: one bad reference fails the call before
         * anything is done. */
        OneOp *ops = calloc(j->n_refs, sizeof(OneOp));
        size_t *slot = calloc(j->n_refs, sizeof(size_t));
        size_t n_ops = 0;
        for (size_t i = 0; ops && slot && i < j->n_refs; i++) {
                VmRecord vm = {};
                r = vm_resolve(s, j->refs[i], &vm);
                if (r < 0)
                        break;
                size_t k;
                for (k = 0; k < n_ops; k++)
                        if (streq(ops[k].id, vm.id))
                                break;
                if (k == n_ops)
                        ops[n_ops++] = (OneOp){ .j = j, .id = strdup(vm.id) };
                slot[i] = k;
                vm_record_done(&vm);
        }
        store_close(s);
        if (!ops || !slot)
                r = -ENOMEM;
        if (r >= 0) {
                pthread_t *t = calloc(n_ops, sizeof(pthread_t));
                bool *started = calloc(n_ops, sizeof(bool));
                for (size_t k = 0; t && started && k < n_ops; k++)
                        started[k] = pthread_create(&t[k], NULL, one_main, &ops[k]) == 0;
                for (size_t k = 0; t && started && k < n_ops; k++) {
                        if (started[k])
                                pthread_join(t[k], NULL);
                        else
                                one_main(&ops[k]);
                }
                free(t);
                free(started);
                json_t *results = json_array();
                for (size_t i = 0; i < j->n_refs; i++) {
                        OneOp *o = &ops[slot[i]];
                        if (o->r < 0)
                                json_array_append_new(results, json_pack("{s:s, s:b, s:s}", "ref", j->refs[i], "ok", 0, "error", o->err));
                        else
                                json_array_append_new(results, json_pack("{s:s, s:b, s:O?}", "ref", j->refs[i], "ok", 1, "vm", o->vm));
                }
                *ret = json_pack("{s:o}", "results", results);
        }
        for (size_t k = 0; ops && k < n_ops; k++) {
                free(ops[k].id);
                json_decref(ops[k].vm);
        }
        free(ops);
        free(slot);
        return r;
}

static int parse_signal(const char *s) {
        static const struct {
                const char *name;
                int sig;
        } table[] = { { "KILL", SIGKILL }, { "TERM", SIGTERM }, { "INT", SIGINT }, { "HUP", SIGHUP },
                      { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "STOP", SIGSTOP },
                      { "CONT", SIGCONT } };
        const char *n = startswith(s, "SIG") ? s + 3 : s;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(n, table[i].name))
                        return table[i].sig;
        int v;
        if (safe_atoi(s, &v) == 0 && v > 0 && v < 65)
                return v;
        return -EINVAL;
}

static int method_multi(Daemon *d, RpcCall *call, json_t *params, const char *op) {
        static const char *const keys_stop[] = { "vms", "timeout_sec", NULL };
        static const char *const keys_kill[] = { "vms", "signal", NULL };
        static const char *const keys_plain[] = { "vms", NULL };
        bool is_stop = streq(op, "stop") || streq(op, "restart");
        if (rpc_params_check_keys(call, params, is_stop ? keys_stop : streq(op, "kill") ? keys_kill : keys_plain) < 0)
                return 0;
        Job *j = job_new(d);
        if (!j)
                return -ENOMEM;
        j->op = strdup(op);
        j->sig = SIGKILL;
        unsigned long long t = d->config.stop_timeout_sec;
        if (param_refs(call, params, j) < 0 || param_uint(call, params, "timeout_sec", 3600, &t) < 0) {
                job_free(j);
                return 0;
        }
        j->timeout = t * USEC_PER_SEC;
        json_t *sig = json_object_get(params, "signal");
        if (sig) {
                char buf[32];
                if (json_is_integer(sig))
                        snprintf(buf, sizeof(buf), "%lld", (long long) json_integer_value(sig));
                else
                        snprintf(buf, sizeof(buf), "%s", json_is_string(sig) ? json_string_value(sig) : "");
                j->sig = parse_signal(buf);
                if (j->sig < 0) {
                        rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"signal\" must be a signal name (KILL, TERM, ...) or number");
                        job_free(j);
                        return 0;
                }
        }
        return rpc_call_defer(call, work_multi, j, job_free);
}

static int method_start(Daemon *d, RpcCall *call, json_t *params) {
        return method_multi(d, call, params, "start");
}
static int method_stop(Daemon *d, RpcCall *call, json_t *params) {
        return method_multi(d, call, params, "stop");
}
static int method_restart(Daemon *d, RpcCall *call, json_t *params) {
        return method_multi(d, call, params, "restart");
}
static int method_kill(Daemon *d, RpcCall *call, json_t *params) {
        return method_multi(d, call, params, "kill");
}
static int method_delete(Daemon *d, RpcCall *call, json_t *params) {
        return method_multi(d, call, params, "delete");
}

/* ---- single-VM queries (workers: they may talk to the guest) ---- */

static int vmm_proc_stats(pid_t pid, json_t **ret) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        _cleanup_free_ char *stat = NULL;
        int r = read_file_at(AT_FDCWD, path, 8192, &stat, NULL);
        if (r < 0)
                return r;
        /* Fields after the parenthesised comm: state is field 3; utime 14, stime 15, rss 24. */
        char *p = strrchr(stat, ')');
        unsigned long long ut = 0, st = 0;
        long long rss = 0;
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %*u %lld",
                         &ut, &st, &rss) != 3)
                return -EBADMSG;
        double hz = (double) sysconf(_SC_CLK_TCK);
        *ret = json_pack("{s:i, s:f, s:I}", "pid", (int) pid, "cpu_sec", (double) (ut + st) / hz, "rss_bytes",
                         (json_int_t) rss * sysconf(_SC_PAGESIZE));
        return 0;
}

static int agent_for(Job *j, Store *s, const char *id, AgentClient **ret) {
        int fd = -EBADF;
        int r = vm_agent_connect(j->m, s, id, 5 * USEC_PER_SEC, &fd);
        if (r < 0)
                return r;
        AgentClient *c = NULL;
        r = agent_client_new(fd, &c);
        if (r >= 0)
                r = agent_client_hello(c, 10 * USEC_PER_SEC, NULL);
        if (r < 0) {
                agent_client_free(c);
                return error_setf(r, "the guest agent does not answer: %s", strerror(-r));
        }
        *ret = c;
        return 0;
}

static int query_ports(Job *j, Store *s, const VmRecord *vm, json_t **ret) {
        AgentClient *c = NULL;
        int r = agent_for(j, s, vm->id, &c);
        if (r < 0)
                return r;
        AgentPort *ports = NULL;
        size_t n = 0;
        r = agent_client_ports(c, AGENT_QUERY_TIMEOUT, &ports, &n);
        agent_client_free(c);
        if (r < 0)
                return r;
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
                char ep[128];
                snprintf(ep, sizeof(ep), "%s.vm:%u", vm->name, ports[i].port);
                json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:i, s:s, s:s}", "proto", ports[i].proto, "address",
                                                     ports[i].address, "port", (int) ports[i].port, "pid", ports[i].pid,
                                                     "process", ports[i].process ? ports[i].process : "", "endpoint", ep));
        }
        agent_ports_free(ports, n);
        *ret = json_pack("{s:o}", "ports", arr);
        return 0;
}

static int query_stats(Job *j, Store *s, const VmRecord *vm, json_t **ret) {
        json_t *vmm = NULL;
        if (vm->pid <= 0 || vmm_proc_stats(vm->pid, &vmm) < 0)
                vmm = json_null();
        AgentClient *c = NULL;
        json_t *guest = NULL;
        int r = agent_for(j, s, vm->id, &c);
        if (r >= 0) {
                r = agent_client_query_json(c, AGENT_MSG_STATS, AGENT_QUERY_TIMEOUT, &guest);
                agent_client_free(c);
        }
        if (r < 0) {
                json_decref(vmm);
                return r;
        }
        *ret = json_pack("{s:o, s:o}", "vmm", vmm, "guest", guest);
        return 0;
}

static int query_logs(Job *j, const VmRecord *vm, json_t **ret) {
        _cleanup_free_ char *path = vm_console_log(j->m, vm->id);
        _cleanup_close_ int fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -ENOMEM;
        off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : 0;
        if (size < 0)
                size = 0;
        size_t want = j->tail ? j->tail : 65536;
        off_t from = j->have_offset ? (off_t) MIN((off_t) j->offset, size) : (size > (off_t) want ? size - (off_t) want : 0);
        size_t len = (size_t) MIN(size - from, (off_t) (8u << 20));
        _cleanup_free_ char *buf = calloc(1, len + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t n = fd >= 0 && len > 0 ? pread(fd, buf, len, from) : 0;
        if (n < 0)
                return -errno;
        /* The console is bytes; hand out valid UTF-8. */
        for (ssize_t i = 0; i < n; i++)
                if ((unsigned char) buf[i] >= 0x80 || buf[i] == 0)
                        buf[i] = '?';
        *ret = json_pack("{s:s%, s:I, s:I, s:s}", "data", buf, (size_t) n, "offset", (json_int_t) (from + n), "size",
                         (json_int_t) size, "path", path);
        return 0;
}

static int work_single(RpcCall *call, void *userdata, json_t **ret) {
        Job *j = userdata;
        Store *s = NULL;
        int r = vm_manager_open_store(j->m, &s);
        if (r < 0)
                return r;
        VmRecord vm = {};
        r = vm_resolve(s, j->refs[0], &vm);
        if (r < 0)
                goto out;
        if (streq(j->op, "show"))
                *ret = vm_to_json(j->m, s, &vm);
        else if (streq(j->op, "logs"))
                r = query_logs(j, &vm, ret);
        else if (streq(j->op, "ports"))
                r = query_ports(j, s, &vm, ret);
        else if (streq(j->op, "stats"))
                r = query_stats(j, s, &vm, ret);
        else if (streq(j->op, "agent")) {
                char *sock = NULL;
                unsigned port = 0;
                r = vm_agent_endpoint(j->m, s, vm.id, &sock, &port);
                if (r >= 0)
                        *ret = json_pack("{s:s, s:o}", "socket", sock, "handshake_port", port ? json_integer(port) : json_null());
                free(sock);
        } else if (streq(j->op, "ssh_info")) {
                if (vm.state != VM_STATE_RUNNING)
                        r = error_setf(-ESRCH, "VM %s is not running", vm.name);
                /* sshd may still be starting after the agent answered: give it a while. */
                else if (!tcp_port_open(vm.ip, 22, now_monotonic() + 60 * USEC_PER_SEC))
                        r = error_setf(-ETIMEDOUT, "VM %s: nothing answers on %s port 22 (is sshd in the image?)", vm.name,
                                       vm.ip ? vm.ip : "?");
                else
                        *ret = json_pack("{s:s, s:s, s:s, s:s, s:s}", "ip", vm.ip ? vm.ip : "", "user", "root", "key",
                                         vm_manager_ssh_key(j->m) ? vm_manager_ssh_key(j->m) : "", "known_hosts",
                                         vm_manager_known_hosts(j->m) ? vm_manager_known_hosts(j->m) : "", "name", vm.name);
        } else if (streq(j->op, "set")) {
                r = vm_op_set(j->m, s, vm.id, j->vcpu, j->memory_mib);
                if (r >= 0) {
                        _cleanup_free_ char *id = strdup(vm.id);
                        vm_record_done(&vm);
                        r = id ? store_vm_get_by_id(s, id, &vm) : -ENOMEM;
                }
                if (r >= 0)
                        *ret = vm_to_json(j->m, s, &vm);
        } else
                r = -EINVAL;
out:
        vm_record_done(&vm);
        store_close(s);
        return r;
}

static int method_single(Daemon *d, RpcCall *call, json_t *params, const char *op, const char *const *keys) {
        if (rpc_params_check_keys(call, params, keys) < 0)
                return 0;
        const char *ref = NULL;
        if (param_str(call, params, "vm", true, &ref) < 0)
                return 0;
        Job *j = job_new(d);
        if (!j)
                return -ENOMEM;
        j->op = strdup(op);
        j->refs = calloc(1, sizeof(char *));
        if (!j->op || !j->refs || !(j->refs[0] = strdup(ref))) {
                job_free(j);
                return -ENOMEM;
        }
        j->n_refs = 1;
        unsigned long long tail = 0, vcpu = 0, mem = 0;
        if (param_uint(call, params, "tail_bytes", 8u << 20, &tail) < 0 || param_uint(call, params, "vcpu", 64, &vcpu) < 0 ||
            param_uint(call, params, "memory_mib", 1ULL << 20, &mem) < 0) {
                job_free(j);
                return 0;
        }
        json_t *off = json_object_get(params, "offset");
        if (off) {
                if (!json_is_integer(off) || json_integer_value(off) < 0) {
                        rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"offset\" must be a non-negative integer");
                        job_free(j);
                        return 0;
                }
                j->offset = (size_t) json_integer_value(off);
                j->have_offset = true;
        }
        if (streq(op, "set") && !vcpu && !mem) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "give \"vcpu\" and/or \"memory_mib\"");
                job_free(j);
                return 0;
        }
        if (mem && mem < 64) {
                rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS, "\"memory_mib\" must be at least 64");
                job_free(j);
                return 0;
        }
        j->tail = tail;
        j->vcpu = (unsigned) vcpu;
        j->memory_mib = mem;
        return rpc_call_defer(call, work_single, j, job_free);
}

static const char *const keys_vm[] = { "vm", NULL };

static int method_show(Daemon *d, RpcCall *call, json_t *params) {
        return method_single(d, call, params, "show", keys_vm);
}
static int method_logs(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "vm", "tail_bytes", "offset", NULL };
        return method_single(d, call, params, "logs", keys);
}
static int method_agent(Daemon *d, RpcCall *call, json_t *params) {
        return method_single(d, call, params, "agent", keys_vm);
}
static int method_ports(Daemon *d, RpcCall *call, json_t *params) {
        return method_single(d, call, params, "ports", keys_vm);
}
static int method_stats(Daemon *d, RpcCall *call, json_t *params) {
        return method_single(d, call, params, "stats", keys_vm);
}
static int method_ssh_info(Daemon *d, RpcCall *call, json_t *params) {
        return method_single(d, call, params, "ssh_info", keys_vm);
}
static int method_set(Daemon *d, RpcCall *call, json_t *params) {
        static const char *const keys[] = { "vm", "vcpu", "memory_mib", NULL };
        return method_single(d, call, params, "set", keys);
}

/* ---- list and prune ---- */

static int method_list(Daemon *d, RpcCall *call, json_t *params) {
        if (rpc_params_check_keys(call, params, (const char *const[]){ NULL }) < 0)
                return 0;
        VmRecord *list = NULL;
        size_t n = 0;
        int r = store_vm_list(d->store, &list, &n);
        if (r < 0)
                return r;
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, vm_to_json(d->vms, d->store, &list[i]));
        vm_record_array_free(list, n);
        rpc_call_reply(call, json_pack("{s:o}", "vms", arr));
        return 0;
}

static int work_prune(RpcCall *call, void *userdata, json_t **ret) {
        Job *j = userdata;
        Store *s = NULL;
        int r = vm_manager_open_store(j->m, &s);
        if (r < 0)
                return r;
        VmRecord *list = NULL;
        size_t n = 0;
        r = store_vm_list(s, &list, &n);
        json_t *deleted = json_array();
        for (size_t i = 0; r >= 0 && i < n; i++) {
                VmState st = list[i].state;
                if (st != VM_STATE_STOPPED && st != VM_STATE_CREATED && st != VM_STATE_ERROR)
                        continue;
                if (vm_op_delete(j->m, s, list[i].id, VM_DELETE_ONLY_IDLE) >= 0)
                        json_array_append_new(deleted, json_string(list[i].name));
        }
        vm_record_array_free(list, n);
        store_close(s);
        if (r < 0) {
                json_decref(deleted);
                return r;
        }
        *ret = json_pack("{s:o}", "deleted", deleted);
        return 0;
}

static int method_prune(Daemon *d, RpcCall *call, json_t *params) {
        if (rpc_params_check_keys(call, params, (const char *const[]){ NULL }) < 0)
                return 0;
        Job *j = job_new(d);
        if (!j)
                return -ENOMEM;
        return rpc_call_defer(call, work_prune, j, job_free);
}

const RpcMethod vm_methods[] = {
        { "vm.create", method_create },   { "vm.start", method_start }, { "vm.stop", method_stop },
        { "vm.restart", method_restart }, { "vm.kill", method_kill },   { "vm.delete", method_delete },
        { "vm.list", method_list },       { "vm.show", method_show },   { "vm.logs", method_logs },
        { "vm.agent", method_agent },     { "vm.ports", method_ports }, { "vm.stats", method_stats },
        { "vm.ssh_info", method_ssh_info }, { "vm.set", method_set },   { "vm.prune", method_prune },
        {},
};
