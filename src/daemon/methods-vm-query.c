/* SPDX-License-Identifier: MIT */
/* The methods on one VM: vm.show, logs, agent, ports, stats, ssh_info and
 * set. Each runs in a worker (ports and stats talk to the guest). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent-client.h"
#include "daemon.h"
#include "error.h"
#include "fs-util.h"
#include "jsonrpc.h"
#include "methods.h"
#include "tcp-port.h"
#include "vm-manager.h"

#define AGENT_OPEN_TIMEOUT (10 * USEC_PER_SEC)
#define AGENT_QUERY_TIMEOUT (15 * USEC_PER_SEC)
#define SSH_INFO_WAIT (60 * USEC_PER_SEC)
#define LOGS_NO_OFFSET ULLONG_MAX

typedef struct VmArgs {
        const char *vm;
        unsigned long long tail_bytes, offset, file;
        bool raw;
        unsigned long long vcpu, memory_mib;
        bool idle_timeout_given;
        int64_t idle_timeout_sec;
        int idle_action; /* -1: not given */
} VmArgs;

typedef int (*VmQueryFn)(Daemon *d, Store *s, VmRecord *vm, const VmArgs *a, json_t **ret);
typedef struct VmQuery {
        VmQueryFn fn;
        bool wake; /* uses the guest: a suspended VM resumes first */
} VmQuery;

#define VM_PARAM \
        { "vm", RPC_PARAM_STRING, RPC_ARG(VmArgs, vm), true, .what = "a VM name, id or id prefix" }

static const RpcParam vm_params[] = { VM_PARAM, {} };
static const RpcParam logs_params[] = {
        VM_PARAM,
        { "tail_bytes", RPC_PARAM_UINT, RPC_ARG(VmArgs, tail_bytes), .min = 1, .max = 8u << 20 },
        { "offset", RPC_PARAM_UINT, RPC_ARG(VmArgs, offset), .min = 0, .max = INT64_MAX,
          .what = "a non-negative integer" },
        { "file", RPC_PARAM_UINT, RPC_ARG(VmArgs, file), .min = 0, .max = INT64_MAX,
          .what = "a \"file\" from an earlier reply" },
        { "raw", RPC_PARAM_BOOL, RPC_ARG(VmArgs, raw) },
        {},
};
static const RpcParam set_params[] = {
        VM_PARAM,
        { "vcpu", RPC_PARAM_UINT, RPC_ARG(VmArgs, vcpu), .min = 1, .max = 64 },
        { "memory_mib", RPC_PARAM_UINT, RPC_ARG(VmArgs, memory_mib), .min = 64, .max = 1ULL << 20,
          .what = VM_MEMORY_WORDS },
        { "idle_timeout", RPC_PARAM_CUSTOM, RPC_ARG(VmArgs, idle_timeout_sec), .what = VM_IDLE_TIMEOUT_WORDS,
          .parse = vm_idle_timeout_param },
        { "idle_action", RPC_PARAM_CUSTOM, RPC_ARG(VmArgs, idle_action), .what = VM_IDLE_ACTION_WORDS,
          .parse = vm_idle_action_param },
        {},
};

/* Out of range for vm_idle_timeout_param(): tells "not given". */
#define IDLE_NOT_GIVEN INT64_MIN

static void vm_defaults(Daemon *d, void *args) {
        ((VmArgs *) args)->offset = LOGS_NO_OFFSET;
        ((VmArgs *) args)->idle_timeout_sec = IDLE_NOT_GIVEN;
        ((VmArgs *) args)->idle_action = -1;
}

static int set_check(Daemon *d, RpcCall *call, void *args) {
        VmArgs *a = args;
        a->idle_timeout_given = a->idle_timeout_sec != IDLE_NOT_GIVEN;
        if (a->vcpu || a->memory_mib)
                return vm_check_size_params(call, a->vcpu, a->memory_mib);
        if (a->idle_timeout_given || a->idle_action >= 0)
                return 0;
        rpc_call_reply_error(call, JSONRPC_INVALID_PARAMS,
                             "give \"vcpu\", \"memory_mib\", \"idle_timeout\" and/or \"idle_action\"");
        return -EINVAL;
}

/* How stale the stored last use may be before a query that counts as use
 * (vm.agent, vm.ssh_info) writes it again. */
#define TOUCH_RECORD_INTERVAL USEC_PER_SEC

static int work_vm(RpcCall *call, Store *s, void *args, json_t **ret) {
        Daemon *d = rpc_call_daemon(call);
        const VmQuery *q = rpc_call_method_data(call);
        _cleanup_(vm_record_done) VmRecord vm = {};
        int r = vm_resolve(s, ((VmArgs *) args)->vm, &vm);
        if (r >= 0 && q->wake && vm.state == VM_STATE_SUSPENDED) {
                VmProgress p = { .call = call, .started = now_monotonic() };
                r = vm_op_wake(d->vms, s, vm.id, &p);
                _cleanup_free_ char *id = strdup(vm.id);
                vm_record_done(&vm);
                if (r >= 0)
                        r = id ? store_vm_get_by_id(s, id, &vm) : -ENOMEM;
        }
        /* In memory every call; in the database (what a restarted daemon
         * sees; the idle check writes it too) at most once a second, so a
         * burst of vm execs makes one write, not one each queued on its lock. */
        if (r >= 0 && q->wake)
                vm_touch(d->vms, s, vm.id, now_realtime() >= vm.last_used_at + TOUCH_RECORD_INTERVAL);
        return r < 0 ? r : q->fn(d, s, &vm, args, ret);
}

static int query_show(Daemon *d, Store *s, VmRecord *vm, const VmArgs *a, json_t **ret) {
        *ret = vm_to_json(d->vms, s, vm);
        if (*ret)
                json_object_set_new(*ret, "forwards", vm_forwards_json(d->vms, s, vm));
        return 0;
}

/* raw: the bytes as they are, in base64; otherwise text with every byte
 * that is not ASCII (or NUL) as '?', so it is valid UTF-8. Control
 * characters stay: the CLI cleans them for a terminal. */
static json_t *logs_data(char *buf, size_t n, bool raw) {
        if (!raw) {
                for (size_t i = 0; i < n; i++)
                        if ((unsigned char) buf[i] >= 0x80 || buf[i] == 0)
                                buf[i] = '?';
                return json_stringn(buf, n);
        }
        _cleanup_free_ char *b64 = malloc(4 * ((n + 2) / 3) + 1);
        if (!b64)
                return NULL;
        int l = EVP_EncodeBlock((unsigned char *) b64, (const unsigned char *) buf, (int) n);
        return json_stringn(b64, (size_t) l);
}

/* The console from offset (in the part named by file), or its last
 * tail_bytes; the reply says where to continue, across rotations. */
static int query_logs(Daemon *d, Store *s, VmRecord *vm, const VmArgs *a, json_t **ret) {
        _cleanup_free_ char *path = vm_console_log(d->vms, vm->id);
        VmConsoleChunk c = {};
        bool from_offset = a->offset != LOGS_NO_OFFSET;
        if (from_offset)
                vm_touch(d->vms, s, vm->id, false); /* a console follower */
        int r = vm_console_read(d->vms, vm->id, from_offset, from_offset ? a->offset : 0, a->file,
                                a->tail_bytes ? a->tail_bytes : 65536, 8u << 20, &c);
        if (r < 0)
                return r;
        _cleanup_free_ char *buf = c.data;
        if (!path)
                return -ENOMEM;
        json_t *data = logs_data(buf, c.len, a->raw);
        *ret = json_pack("{s:o, s:s, s:I, s:I, s:I, s:s}", "data", data, "encoding", a->raw ? "base64" : "text",
                         "offset", (json_int_t) c.next_offset, "file", (json_int_t) c.next_file, "size",
                         (json_int_t) c.kept, "path", path);
        return *ret ? 0 : -ENOMEM;
}

static int query_agent(Daemon *d, Store *s, VmRecord *vm, const VmArgs *a, json_t **ret) {
        _cleanup_free_ char *sock = NULL;
        unsigned port = 0;
        int r = vm_agent_endpoint(d->vms, s, vm->id, &sock, &port);
        if (r >= 0)
                *ret = json_pack("{s:s, s:o}", "socket", sock, "handshake_port",
                                 port ? json_integer(port) : json_null());
        return r;
}

static int query_ports(Daemon *d, Store *s, VmRecord *vm, const VmArgs *a, json_t **ret) {
        _cleanup_(agent_client_freep) AgentClient *c = NULL;
        int r = vm_agent_open(d->vms, s, vm->id, AGENT_OPEN_TIMEOUT, &c);
        if (r < 0)
                return r;
        AgentPort *ports = NULL;
        size_t n = 0;
        r = agent_client_ports(c, AGENT_QUERY_TIMEOUT, &ports, &n);
        if (r < 0)
                return r;
        json_t *arr = json_array();
        bool names = vm_manager_names_resolve(d->vms);
        for (size_t i = 0; i < n; i++) {
                /* What works from this host: the name only where it resolves. */
                char ep[128];
                snprintf(ep, sizeof(ep), "%s%s:%u", names ? vm->name : vm->ip, names ? ".vm" : "", ports[i].port);
                json_array_append_new(arr,
                                      json_pack("{s:s, s:s, s:i, s:i, s:s, s:s}", "proto", ports[i].proto, "address",
                                                ports[i].address, "port", (int) ports[i].port, "pid", ports[i].pid,
                                                "process", ports[i].process ? ports[i].process : "", "endpoint", ep));
        }
        agent_ports_free(ports, n);
        *ret = json_pack("{s:o, s:o}", "ports", arr, "forwards", vm_forwards_json(d->vms, s, vm));
        return 0;
}

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
        if (!p ||
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %*u %lld",
                   &ut, &st, &rss) != 3)
                return -EBADMSG;
        double hz = (double) sysconf(_SC_CLK_TCK);
        *ret = json_pack("{s:i, s:f, s:I}", "pid", (int) pid, "cpu_sec", (double) (ut + st) / hz, "rss_bytes",
                         (json_int_t) rss * sysconf(_SC_PAGESIZE));
        return 0;
}

static int query_stats(Daemon *d, Store *s, VmRecord *vm, const VmArgs *a, json_t **ret) {
        json_t *vmm = NULL;
        if (vm->pid <= 0 || vmm_proc_stats(vm->pid, &vmm) < 0)
                vmm = json_null();
        _cleanup_(agent_client_freep) AgentClient *c = NULL;
        json_t *guest = NULL;
        int r = vm_agent_open(d->vms, s, vm->id, AGENT_OPEN_TIMEOUT, &c);
        if (r >= 0)
                r = agent_client_query_json(c, AGENT_STREAM_STATS, AGENT_QUERY_TIMEOUT, &guest);
        if (r < 0) {
                json_decref(vmm);
                return r;
        }
        *ret = json_pack("{s:o, s:o}", "vmm", vmm, "guest", guest);
        return 0;
}

static int query_ssh_info(Daemon *d, Store *s, VmRecord *vm, const VmArgs *a, json_t **ret) {
        if (vm->state != VM_STATE_RUNNING)
                return error_setf(-ESRCH, "vm %s is not running", vm->name);
        /* sshd may still be starting after the agent answered: give it a while. */
        if (tcp_port_open(vm->ip, 22, now_monotonic() + SSH_INFO_WAIT, -EBADF) <= 0)
                return error_setf(-ETIMEDOUT, "vm %s: nothing answers on %s port 22 (is sshd in the image?)", vm->name,
                                  vm->ip ? vm->ip : "?");
        const char *key = vm_manager_ssh_key(d->vms), *known = vm_manager_known_hosts(d->vms);
        *ret = json_pack("{s:s, s:s, s:s, s:s, s:s}", "ip", vm->ip ? vm->ip : "", "user", "root", "key", key ? key : "",
                         "known_hosts", known ? known : "", "name", vm->name);
        return 0;
}

static int query_set(Daemon *d, Store *s, VmRecord *vm, const VmArgs *a, json_t **ret) {
        int r = a->vcpu || a->memory_mib ? vm_op_set(d->vms, s, vm->id, (unsigned) a->vcpu, a->memory_mib) : 0;
        if (r >= 0 && (a->idle_timeout_given || a->idle_action >= 0))
                r = vm_op_set_idle(d->vms, s, vm->id, a->idle_timeout_given, a->idle_timeout_sec, a->idle_action);
        if (r < 0)
                return r;
        _cleanup_(vm_record_done) VmRecord now = {};
        r = store_vm_get_by_id(s, vm->id, &now);
        if (r >= 0)
                *ret = vm_to_json(d->vms, s, &now);
        return r;
}

#define VM_METHOD_WAKE(params_, fn_, wake_)                                                       \
        .params = params_, .args_size = sizeof(VmArgs), .defaults = vm_defaults, .work = work_vm, \
        .data = &(const VmQuery) {                                                                \
                fn_, wake_                                                                        \
        }
#define VM_METHOD(params_, fn_) VM_METHOD_WAKE(params_, fn_, false)

const RpcMethod vm_query_methods[] = {
        { "vm.show", VM_METHOD(vm_params, query_show) },
        { "vm.logs", VM_METHOD(logs_params, query_logs) },
        { "vm.agent", VM_METHOD_WAKE(vm_params, query_agent, true) },
        { "vm.ports", VM_METHOD(vm_params, query_ports) },
        { "vm.stats", VM_METHOD(vm_params, query_stats) },
        { "vm.ssh_info", VM_METHOD_WAKE(vm_params, query_ssh_info, true) },
        { "vm.set", VM_METHOD(set_params, query_set), .check = set_check },
        {},
};
