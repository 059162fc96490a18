/* SPDX-License-Identifier: MIT */
/* vm.create, vm.start/stop/restart/kill/pause/resume/suspend/delete (many VMs at
 * once), vm.list
 * and vm.prune: params checked on the loop, the work in workers. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "error.h"
#include "jsonrpc.h"
#include "methods.h"
#include "operation.h"
#include "string-util.h"
#include "vm-manager.h"

#define VM_MAX_REFS 256
#define VM_REF_WORDS "a VM reference: a name, an id or an id prefix"

/* ---- vm.create ---- */

typedef struct CreateArgs {
        const char *name, *image, *from_snapshot, *workspace, *setup_key;
        unsigned long long vcpu, memory_mib, disk_bytes;
        bool nat, no_start, cold, new_host_keys;
        int vmm;
        json_t *ports;
        int64_t idle_timeout_sec;
        int idle_action;
} CreateArgs;

#define VM_MAX_PORTS 64

static int parse_vmm(json_t *v, void *field) {
        int k = json_is_string(v) ? (int) vmm_kind_from_string(json_string_value(v)) : -EINVAL;
        if (k < 0)
                return -EINVAL;
        *(int *) field = k;
        return 0;
}

static const RpcParam create_params[] = {
        { "name", RPC_PARAM_NAME, RPC_ARG(CreateArgs, name), .what = "a name of " NAME_RULE },
        { "image", RPC_PARAM_STRING, RPC_ARG(CreateArgs, image) },
        { "vcpu", RPC_PARAM_UINT, RPC_ARG(CreateArgs, vcpu), .min = 1, .max = 64 },
        { "memory_mib", RPC_PARAM_UINT, RPC_ARG(CreateArgs, memory_mib), .min = 64, .max = 1ULL << 20,
          .what = VM_MEMORY_WORDS },
        { "disk_bytes", RPC_PARAM_UINT, RPC_ARG(CreateArgs, disk_bytes), .min = 16ULL << 20, .max = 1ULL << 44,
          .what = "at least 16 MiB and at most 16 TiB" },
        { "nat", RPC_PARAM_BOOL, RPC_ARG(CreateArgs, nat) },
        { "vmm", RPC_PARAM_CUSTOM, RPC_ARG(CreateArgs, vmm), .what = "\"firecracker\" or \"qemu\"",
          .parse = parse_vmm },
        { "no_start", RPC_PARAM_BOOL, RPC_ARG(CreateArgs, no_start) },
        { "from_snapshot", RPC_PARAM_STRING, RPC_ARG(CreateArgs, from_snapshot),
          .what = "a snapshot name, id or id prefix" },
        { "cold", RPC_PARAM_BOOL, RPC_ARG(CreateArgs, cold) },
        { "workspace", RPC_PARAM_PATH, RPC_ARG(CreateArgs, workspace), .what = "the absolute path of a work tree" },
        { "setup_key", RPC_PARAM_CUSTOM, RPC_ARG(CreateArgs, setup_key), .what = SETUP_KEY_WORDS,
          .parse = rpc_parse_setup_key },
        { "new_host_keys", RPC_PARAM_BOOL, RPC_ARG(CreateArgs, new_host_keys) },
        { "ports", RPC_PARAM_STRINGS, RPC_ARG(CreateArgs, ports), .max = VM_MAX_PORTS,
          .what = "a port forward, [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp]" },
        { "idle_timeout", RPC_PARAM_CUSTOM, RPC_ARG(CreateArgs, idle_timeout_sec), .what = VM_IDLE_TIMEOUT_WORDS,
          .parse = vm_idle_timeout_param },
        { "idle_action", RPC_PARAM_CUSTOM, RPC_ARG(CreateArgs, idle_action), .what = VM_IDLE_ACTION_WORDS,
          .parse = vm_idle_action_param },
        {},
};

/* What the client leaves out: config [vm_defaults], whose unset keys are
 * config_init()'s constants (2 vCPUs, 1 GiB, an 8 GiB work disk). */
static void create_defaults(Daemon *d, void *args) {
        CreateArgs *a = args;
        const BangerConfig *c = &d->config;
        a->vcpu = c->vm_defaults.vcpu;
        a->memory_mib = c->vm_defaults.memory_mib;
        a->disk_bytes = c->vm_defaults.disk_size;
        a->nat = c->vm_defaults.nat;
        a->vmm = d->default_vmm;
}

/* A clone takes its shape, image and VMM from the snapshot. */
static int create_from_snapshot(Store *s, const char *ref, VmCreateRequest *req, SnapshotRecord *ret) {
        int r = snapshot_resolve(s, ref, ret);
        if (r < 0)
                return r;
        if (ret->state != SNAPSHOT_READY)
                return error_setf(-EBUSY, "snapshot %s is still being written", ret->name);
        /* What snapshot prune ages workspace snapshots by. */
        (void) store_snapshot_touch(s, ret->id, now_realtime());
        if (req->no_start)
                return error_setf(-EINVAL, "a VM made from a snapshot starts where the snapshot was taken: "
                                           "no_start does not apply");
        *req = (VmCreateRequest){ .name = req->name,
                                  .nat = req->nat,
                                  .vcpu = ret->vcpus,
                                  .memory_mib = ret->mem_mib,
                                  .disk_bytes = ret->disk_bytes,
                                  .vmm = ret->vmm,
                                  .new_host_keys = req->new_host_keys,
                                  .snapshot = ret };
        return 0;
}

int vm_check_size_params(RpcCall *call, unsigned long long vcpu, unsigned long long memory_mib) {
        VmHostLimits h;
        char what[128], have[VM_MIB_STRLEN];
        vm_host_limits(&h);
        if (vcpu > h.vcpu) {
                snprintf(what, sizeof(what), "at most %u, the CPUs this host has online", h.vcpu);
                rpc_call_reply_invalid_param(call, "vcpu", what, NULL);
                return -EINVAL;
        }
        if (memory_mib > h.memory_mib) {
                snprintf(what, sizeof(what), "at most %s, the memory this host has", vm_format_mib(have, h.memory_mib));
                rpc_call_reply_invalid_param(call, "memory_mib", what, NULL);
                return -EINVAL;
        }
        return 0;
}

static int create_check(Daemon *d, RpcCall *call, void *args) {
        CreateArgs *a = args;
        return vm_check_size_params(call, a->vcpu, a->memory_mib);
}

/* With a work tree and the hash of its setup's inputs: the workspace
 * snapshot a run of the same tree, image and shape prepared, if any (its
 * id in ret); 0 when there is none. */
static int create_find_prepared(Daemon *d, Store *s, const CreateArgs *a, char ret[static 40]) {
        if (!a->workspace || !a->setup_key || a->from_snapshot || a->cold || a->no_start)
                return 0;
        SnapshotWorkspaceKey k = { .repository = a->workspace,
                                   .fingerprint = a->setup_key,
                                   .vcpus = (unsigned) a->vcpu,
                                   .mem_mib = a->memory_mib,
                                   .disk_bytes = a->disk_bytes,
                                   .vmm = (VmmKind) a->vmm };
        _cleanup_(snapshot_record_done) SnapshotRecord n = {};
        const char *image = a->image ? a->image : config_vm_image(&d->config);
        int r = image ? workspace_snapshot_find(s, image, &k, &n) : -ENOENT;
        if (r == -ENOENT) {
                error_clear();
                return 0;
        }
        if (r < 0)
                return r;
        snprintf(ret, 40, "%s", n.id);
        return 1;
}

static int work_create(RpcCall *call, Store *s, void *args, json_t **ret) {
        CreateArgs *a = args;
        Daemon *d = rpc_call_daemon(call);
        VmCreateRequest req = { .name = a->name,
                                .image = a->image,
                                .vcpu = (unsigned) a->vcpu,
                                .memory_mib = a->memory_mib,
                                .disk_bytes = a->disk_bytes,
                                .nat = a->nat,
                                .vmm = a->vmm,
                                .no_start = a->no_start,
                                .cold = a->cold,
                                .new_host_keys = a->new_host_keys };
        VmProgress p = { .call = call, .started = now_monotonic() };
        _cleanup_(vm_record_done) VmRecord vm = {};
        _cleanup_(snapshot_record_done) SnapshotRecord from = {};
        PortSpec ports[VM_MAX_PORTS];
        size_t n_ports = 0;
        char prepared[40] = "";
        int r = create_find_prepared(d, s, a, prepared);
        if (r > 0)
                r = create_from_snapshot(s, prepared, &req, &from);
        else if (r >= 0 && a->from_snapshot)
                r = create_from_snapshot(s, a->from_snapshot, &req, &from);
        if (r >= 0 && a->new_host_keys && !a->from_snapshot)
                r = error_setf(-EINVAL, "new host keys are for a VM made from a snapshot (from_snapshot): a VM that "
                                        "boots makes its own");
        for (size_t i = 0; r >= 0 && a->ports && i < json_array_size(a->ports); i++)
                r = port_spec_parse(json_string_value(json_array_get(a->ports, i)), &ports[n_ports++]);
        req.ports = ports;
        req.n_ports = n_ports;
        req.idle_timeout_sec = a->idle_timeout_sec;
        req.idle_action = (VmIdleAction) a->idle_action;
        if (r >= 0)
                r = vm_op_create(d->vms, s, &req, &p, &vm);
        if (r >= 0) {
                *ret = vm_to_json(d->vms, s, &vm);
                if (prepared[0])
                        json_object_set_new(*ret, "workspace_snapshot",
                                            json_pack("{s:s, s:s}", "id", from.id, "name", from.name));
                return 0;
        }
        if (p.vm_id[0]) {
                /* The VM stays, in state error: say which, and what its console said. */
                char why[1024];
                snprintf(why, sizeof(why), "%s", error_last_message() ? error_last_message() : strerror(-r));
                _cleanup_free_ char *tail = vm_log_tail(d->vms, p.vm_id, 3000);
                rpc_call_set_error_data(call, json_pack("{s:s, s:s?}", "vm", p.vm_id, "log_tail", tail));
                error_setf(r, "%s", why);
        }
        return r;
}

/* ---- operations on many VMs: start, stop, restart, kill, delete ---- */

typedef struct RefsArgs {
        json_t *vms;
        unsigned long long timeout_sec;
        int signal;
        bool force;
} RefsArgs;

typedef struct VmOp {
        int (*fn)(VmManager *m, Store *s, const char *id, const RefsArgs *a, char **ret_warning);
        bool returns_vm; /* the result names the VM as it is after (not after a delete) */
} VmOp;

static int op_start(VmManager *m, Store *s, const char *id, const RefsArgs *a, char **ret_warning) {
        return vm_op_start(m, s, id, NULL);
}

static int op_stop(VmManager *m, Store *s, const char *id, const RefsArgs *a, char **ret_warning) {
        return vm_op_stop(m, s, id, a->timeout_sec * USEC_PER_SEC);
}

static int op_restart(VmManager *m, Store *s, const char *id, const RefsArgs *a, char **ret_warning) {
        int r = vm_op_stop(m, s, id, a->timeout_sec * USEC_PER_SEC);
        return r < 0 ? r : vm_op_start(m, s, id, NULL);
}

static int op_kill(VmManager *m, Store *s, const char *id, const RefsArgs *a, char **ret_warning) {
        return vm_op_kill(m, s, id, a->signal);
}

static int op_pause(VmManager *m, Store *s, const char *id, const RefsArgs *a, char **ret_warning) {
        return vm_op_pause(m, s, id, true);
}

static int op_resume(VmManager *m, Store *s, const char *id, const RefsArgs *a, char **ret_warning) {
        return vm_op_pause(m, s, id, false);
}

static int op_suspend(VmManager *m, Store *s, const char *id, const RefsArgs *a, char **ret_warning) {
        return vm_op_suspend(m, s, id, NULL);
}

static int op_delete(VmManager *m, Store *s, const char *id, const RefsArgs *a, char **ret_warning) {
        return vm_op_delete(m, s, id, a->force ? VM_DELETE_FORCE : 0, ret_warning);
}

static int parse_signal(json_t *v, void *field) {
        static const struct {
                const char *name;
                int sig;
        } table[] = { { "KILL", SIGKILL }, { "TERM", SIGTERM }, { "INT", SIGINT },
                      { "HUP", SIGHUP },   { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 },
                      { "USR2", SIGUSR2 }, { "STOP", SIGSTOP }, { "CONT", SIGCONT } };
        int sig = -EINVAL;
        if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < 65)
                sig = (int) json_integer_value(v);
        else if (json_is_string(v)) {
                const char *s = json_string_value(v);
                const char *n = startswith(s, "SIG") ? s + 3 : s;
                for (size_t i = 0; i < ELEMENTSOF(table); i++)
                        if (streq(n, table[i].name))
                                sig = table[i].sig;
                int k;
                if (sig < 0 && safe_atoi(s, &k) == 0 && k > 0 && k < 65)
                        sig = k;
        }
        if (sig < 0)
                return -EINVAL;
        *(int *) field = sig;
        return 0;
}

#define REFS_PARAM \
        { "vms", RPC_PARAM_STRINGS, RPC_ARG(RefsArgs, vms), true, .max = VM_MAX_REFS, .what = VM_REF_WORDS }

static const RpcParam refs_params[] = { REFS_PARAM, {} };
static const RpcParam delete_params[] = {
        REFS_PARAM,
        { "force", RPC_PARAM_BOOL, RPC_ARG(RefsArgs, force) },
        {},
};
static const RpcParam stop_params[] = {
        REFS_PARAM,
        { "timeout_sec", RPC_PARAM_UINT, RPC_ARG(RefsArgs, timeout_sec), .min = 1, .max = 3600 },
        {},
};
static const RpcParam kill_params[] = {
        REFS_PARAM,
        { "signal", RPC_PARAM_CUSTOM, RPC_ARG(RefsArgs, signal), .what = "a signal name (KILL, TERM, ...) or number",
          .parse = parse_signal },
        {},
};

static void refs_defaults(Daemon *d, void *args) {
        RefsArgs *a = args;
        a->timeout_sec = d->config.stop_timeout_sec;
        a->signal = SIGKILL;
}

typedef struct OneOp {
        Daemon *d;
        const VmOp *op;
        const RefsArgs *args;
        char *id;
        int r;
        bool unchanged; /* already in the state asked for */
        bool discarded; /* it was suspended: its saved state was dropped */
        char err[1024];
        char *warning; /* what the user must know of a success */
        json_t *vm;
        Operation *operation; /* the call's: each VM's thread works for it */
} OneOp;

static void *one_main(void *p) {
        OneOp *o = p;
        _cleanup_store_close_ Store *s = NULL;
        error_clear();
        operation_set_current(o->operation);
        o->r = daemon_open_store(o->d, &s);
        if (o->r >= 0)
                o->r = o->op->fn(o->d->vms, s, o->id, o->args, &o->warning);
        o->unchanged = o->r == 1;
        o->discarded = o->r == VM_OP_DISCARDED_SUSPEND;
        if (o->r < 0)
                snprintf(o->err, sizeof(o->err), "%s", error_last_message() ? error_last_message() : strerror(-o->r));
        else if (o->op->returns_vm) {
                _cleanup_(vm_record_done) VmRecord vm = {};
                if (store_vm_get_by_id(s, o->id, &vm) >= 0)
                        o->vm = vm_to_json(o->d->vms, s, &vm);
        }
        return NULL;
}

#define NO_SLOT SIZE_MAX

/* Resolve every reference first, from one listing: slot[i] is the op of
 * reference i (duplicates share one), or NO_SLOT with the reason in
 * errs[i] when it names no VM; the others still run, as docker rm does. */
static int resolve_refs(Store *s, json_t *refs, OneOp *ops, size_t *slot, char **errs, size_t *ret_n) {
        size_t n = 0, i;
        json_t *e;
        json_array_foreach (refs, i, e) {
                _cleanup_(vm_record_done) VmRecord vm = {};
                error_clear();
                int r = vm_resolve(s, json_string_value(e), &vm);
                if (r < 0) {
                        if (r != -ENOENT && r != -ENOTUNIQ && r != -EINVAL)
                                return r; /* the store failed: nothing can run */
                        slot[i] = NO_SLOT;
                        errs[i] = strdup(error_last_message() ? error_last_message() : strerror(-r));
                        if (!errs[i])
                                return -ENOMEM;
                        continue;
                }
                size_t k = 0;
                while (k < n && !streq(ops[k].id, vm.id))
                        k++;
                if (k == n && !(ops[n++].id = strdup(vm.id)))
                        return -ENOMEM;
                slot[i] = k;
        }
        *ret_n = n;
        return 0;
}

/* Every VM's operation in a thread of its own, so one slow stop does not
 * hold up the others. */
static void run_ops(OneOp *ops, size_t n) {
        _cleanup_free_ pthread_t *t = calloc(n, sizeof(pthread_t));
        _cleanup_free_ bool *started = calloc(n, sizeof(bool));
        for (size_t k = 0; k < n; k++)
                if (t && started)
                        started[k] = pthread_create(&t[k], NULL, one_main, &ops[k]) == 0;
        for (size_t k = 0; k < n; k++) {
                if (t && started && started[k])
                        pthread_join(t[k], NULL);
                else
                        one_main(&ops[k]);
        }
}

static json_t *ref_result(const char *ref, const OneOp *o, const char *resolve_err) {
        /* An error as clean as a whole call's (it may quote the reference). */
        _cleanup_free_ char *err = resolve_err || o->r < 0 ? jsonrpc_error_message_clean(resolve_err ?: o->err) : NULL;
        if (resolve_err)
                return json_pack("{s:s, s:b, s:s}", "ref", ref, "ok", 0, "error", err ?: "error");
        if (o->r < 0)
                return json_pack("{s:s, s:b, s:s, s:s}", "ref", ref, "ok", 0, "error", err ?: "error", "id", o->id);
        json_t *j = json_pack("{s:s, s:b, s:s, s:b, s:b, s:O?}", "ref", ref, "ok", 1, "id", o->id, "unchanged",
                              o->unchanged, "discarded_suspended_state", o->discarded, "vm", o->vm);
        _cleanup_free_ char *warning = o->warning ? jsonrpc_error_message_clean(o->warning) : NULL;
        if (j && warning)
                json_object_set_new(j, "warning", json_string(warning));
        return j;
}

/* A cancelled call (vm.start, vm.restart, vm.suspend) answers as a whole:
 * cancelled, when any of its VMs stopped for it (each rolled back: a start
 * to stopped, a suspend to running). */
static int refs_cancelled(const OneOp *ops, size_t n) {
        if (!operation_cancelled(operation_current()))
                return 0;
        for (size_t k = 0; k < n; k++)
                if (ops[k].r == -ECANCELED)
                        return -ECANCELED;
        return 0;
}

static int work_refs(RpcCall *call, Store *s, void *args, json_t **ret) {
        RefsArgs *a = args;
        Daemon *d = rpc_call_daemon(call);
        size_t n_refs = json_array_size(a->vms), n_ops = 0;
        OneOp *ops = calloc(n_refs, sizeof(OneOp));
        _cleanup_free_ size_t *slot = calloc(n_refs, sizeof(size_t));
        char **errs = calloc(n_refs, sizeof(char *));
        int r = ops && slot && errs ? resolve_refs(s, a->vms, ops, slot, errs, &n_ops) : -ENOMEM;
        if (r >= 0) {
                for (size_t k = 0; k < n_ops; k++)
                        ops[k] = (OneOp){ .d = d,
                                          .op = rpc_call_method_data(call),
                                          .args = a,
                                          .id = ops[k].id,
                                          .operation = operation_current() };
                run_ops(ops, n_ops);
                r = refs_cancelled(ops, n_ops);
        }
        if (r >= 0) {
                json_t *results = json_array();
                for (size_t i = 0; i < n_refs; i++)
                        json_array_append_new(results, ref_result(json_string_value(json_array_get(a->vms, i)),
                                                                  slot[i] == NO_SLOT ? NULL : &ops[slot[i]], errs[i]));
                *ret = json_pack("{s:o}", "results", results);
        }
        for (size_t k = 0; k < n_refs; k++) {
                if (ops) {
                        free(ops[k].id);
                        free(ops[k].warning);
                        json_decref(ops[k].vm);
                }
                if (errs)
                        free(errs[k]);
        }
        free(errs);
        free(ops);
        return r;
}

#define REFS_METHOD(params_, fn_, returns_vm_)                                                          \
        .params = params_, .args_size = sizeof(RefsArgs), .defaults = refs_defaults, .work = work_refs, \
        .data = &(const VmOp) {                                                                         \
                fn_, returns_vm_                                                                        \
        }

/* ---- vm.list, vm.prune ---- */

/* The table's columns only (docs/protocol.md: vm.list "brief"): the
 * records' JSON text as SQLite writes it in one query, sent as it is, with
 * no JSON tree per VM on the loop. */
static int list_brief(Daemon *d, RpcCall *call) {
        static const char head[] = "{\"vms\":";
        _cleanup_free_ char *vms = NULL;
        int r = store_vm_list_brief_json(d->store, &vms);
        if (r < 0)
                return r;
        size_t l = strlen(vms);
        _cleanup_free_ char *res = malloc(sizeof(head) - 1 + l + 2);
        if (!res)
                return -ENOMEM;
        memcpy(mempcpy(mempcpy(res, head, sizeof(head) - 1), vms, l), "}", 2);
        return rpc_call_reply_text(call, res, sizeof(head) + l);
}

typedef struct ListArgs {
        bool brief;
} ListArgs;

static const RpcParam list_params[] = {
        { "brief", RPC_PARAM_BOOL, RPC_ARG(ListArgs, brief) },
        {},
};

/* The listing's text: grown by doubling (realloc), where a memstream's
 * growth copied and zeroed the whole text at every step (perf: a quarter
 * of a 1,000-record call in its memcpy, memset and page faults). */
typedef struct ListText {
        char *data;
        size_t len, cap;
} ListText;

static int list_text_reserve(ListText *t, size_t more) {
        if (t->cap - t->len >= more)
                return 0;
        size_t cap = MAX(MAX(t->cap * 2, t->len + more), (size_t) 64 * 1024);
        char *b = realloc(t->data, cap);
        if (!b)
                return -ENOMEM;
        t->data = b;
        t->cap = cap;
        return 0;
}

static int list_text_put(ListText *t, const char *s) {
        size_t n = strlen(s);
        int r = list_text_reserve(t, n);
        if (r < 0)
                return r;
        memcpy(t->data + t->len, s, n);
        t->len += n;
        return 0;
}

/* One VM's record, compact, dumped straight into the text as soon as it is
 * built and freed at once, so that a listing of a thousand VMs reuses one
 * record's memory instead of growing the heap by all their trees. jansson
 * writes each element as it would inside the whole array. */
static int list_append_vm(Daemon *d, const VmRecord *vm, const char *image, bool first, ListText *t) {
        int r = first ? 0 : list_text_put(t, ",");
        if (r < 0)
                return r;
        json_t *j = vm_to_json_image(d->vms, vm, image);
        if (!j)
                return -ENOMEM;
        size_t n = json_dumpb(j, t->data + t->len, t->cap - t->len, JSON_COMPACT);
        if (n > t->cap - t->len && list_text_reserve(t, n) >= 0)
                n = json_dumpb(j, t->data + t->len, t->cap - t->len, JSON_COMPACT);
        json_decref(j);
        if (n == 0 || n > t->cap - t->len)
                return -ENOMEM;
        t->len += n;
        return 0;
}

/* {"vms": [whole records]} as text, in creation order. */
static int list_text(Daemon *d, const VmRecord *list, size_t n, const ImageRecord *imgs, size_t n_imgs, char **ret,
                     size_t *ret_len) {
        ListText t = {};
        int r = list_text_put(&t, "{\"vms\":[");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const char *image = list[i].image_id;
                for (size_t k = 0; k < n_imgs; k++)
                        if (streq_ptr(imgs[k].id, list[i].image_id))
                                image = imgs[k].name;
                r = list_append_vm(d, &list[i], image, i == 0, &t);
        }
        if (r >= 0)
                r = list_text_put(&t, "]}");
        if (r < 0) {
                free(t.data);
                return r;
        }
        *ret = t.data;
        *ret_len = t.len;
        return 0;
}

static int method_list(Daemon *d, RpcCall *call, void *args) {
        if (((ListArgs *) args)->brief)
                return list_brief(d, call);
        VmRecord *list = NULL;
        size_t n = 0;
        int r = store_vm_list(d->store, &list, &n);
        if (r < 0)
                return r;
        /* The images once, not a query per VM. */
        ImageRecord *imgs = NULL;
        size_t n_imgs = 0;
        if (store_image_list(d->store, &imgs, &n_imgs) < 0)
                n_imgs = 0;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        r = list_text(d, list, n, imgs, n_imgs, &text, &len);
        image_record_array_free(imgs, n_imgs);
        vm_record_array_free(list, n);
        return r < 0 ? r : rpc_call_reply_text(call, text, len);
}

static int work_prune(RpcCall *call, Store *s, void *args, json_t **ret) {
        Daemon *d = rpc_call_daemon(call);
        VmRecord *list = NULL;
        size_t n = 0;
        int r = store_vm_list(s, &list, &n);
        if (r < 0)
                return r;
        json_t *deleted = json_array();
        for (size_t i = 0; i < n; i++) {
                VmState st = list[i].state;
                if (st != VM_STATE_STOPPED && st != VM_STATE_CREATED && st != VM_STATE_ERROR)
                        continue;
                if (vm_op_delete(d->vms, s, list[i].id, VM_DELETE_ONLY_IDLE, NULL) >= 0)
                        json_array_append_new(deleted, json_string(list[i].name));
        }
        vm_record_array_free(list, n);
        *ret = json_pack("{s:o}", "deleted", deleted);
        return 0;
}

const RpcMethod vm_methods[] = {
        { "vm.create", create_params, sizeof(CreateArgs), create_defaults, create_check, .work = work_create,
          .operation = true, .operation_target = "name", .cancellable = true },
        { "vm.start", REFS_METHOD(refs_params, op_start, true), .operation = true, .operation_target = "vms",
          .cancellable = true },
        { "vm.stop", REFS_METHOD(stop_params, op_stop, true) },
        { "vm.restart", REFS_METHOD(stop_params, op_restart, true), .operation = true, .operation_target = "vms",
          .cancellable = true },
        { "vm.kill", REFS_METHOD(kill_params, op_kill, true) },
        { "vm.pause", REFS_METHOD(refs_params, op_pause, true) },
        { "vm.resume", REFS_METHOD(refs_params, op_resume, true) },
        { "vm.suspend", REFS_METHOD(refs_params, op_suspend, true), .operation = true, .operation_target = "vms",
          .cancellable = true },
        { "vm.delete", REFS_METHOD(delete_params, op_delete, false) },
        { "vm.list", .params = list_params, .args_size = sizeof(ListArgs), .run = method_list },
        { "vm.prune", .work = work_prune },
        {},
};
