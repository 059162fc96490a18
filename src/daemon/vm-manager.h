/* SPDX-License-Identifier: MIT */
#pragma once

/* The VM service: everything the vm.* methods do. Operations block (disk
 * clones, VMM API calls, waiting for the guest agent) and run in worker
 * threads, each with its own Store connection. Operations on one VM are
 * serialised by a per-VM lock; different VMs proceed in parallel. */

#include <jansson.h>
#include <stdbool.h>

#include "agent-client.h"
#include "store.h"
#include "vmm-driver.h"

typedef struct Daemon Daemon;
typedef struct VmManager VmManager;
typedef struct RpcCall RpcCall;

/* Progress reporting to the caller (may be NULL). */
typedef struct VmProgress {
        RpcCall *call;
        usec_t started;
        char vm_id[40]; /* set once the VM is recorded, so a failure can name it */
} VmProgress;

void vm_progress(VmProgress *p, const char *vm_id, const char *stage, const char *fmt, ...) _printf_(4, 5);

typedef struct VmCreateRequest {
        const char *name;  /* NULL: generated */
        const char *image; /* NULL: config default */
        unsigned vcpu;
        unsigned long long memory_mib;
        unsigned long long disk_bytes;
        bool nat;
        int vmm; /* VmmKind, or -1: config default */
        bool no_start;
} VmCreateRequest;

int vm_manager_new(Daemon *d, VmManager **ret);
VmManager *vm_manager_free(VmManager *m);
/* At daemon exit: stop the helper we started; leave VMs running. */
void vm_manager_shutdown(VmManager *m);

/* At daemon start: re-attach to every VM recorded as running (PID verified
 * by the driver), mark the others stopped and release their host resources,
 * then reconcile host resources nobody owns. */
int vm_manager_recover(VmManager *m);

/* Default VMM for new VMs: Firecracker when its binary and /dev/kvm are
 * usable, else QEMU (config default_vmm may force one). */
VmmKind vm_manager_default_vmm(VmManager *m);

/* Resolve a reference (name, full id, unique id prefix). -ENOENT or
 * -ENOTUNIQ (message lists the matches) with error_setf(). */
int vm_resolve(Store *s, const char *ref, VmRecord *ret);

/* The VM object of docs/protocol.md. */
json_t *vm_to_json(VmManager *m, Store *s, const VmRecord *vm);

int vm_op_create(VmManager *m, Store *s, const VmCreateRequest *req, VmProgress *p, VmRecord *ret);
int vm_op_start(VmManager *m, Store *s, const char *id, VmProgress *p);
int vm_op_stop(VmManager *m, Store *s, const char *id, usec_t timeout);
int vm_op_kill(VmManager *m, Store *s, const char *id, int sig);
/* VM_DELETE_ONLY_IDLE: only when, under the VM's lock, it is still stopped,
 * created or in error (prune); -EBUSY otherwise. */
#define VM_DELETE_ONLY_IDLE 1
int vm_op_delete(VmManager *m, Store *s, const char *id, int flags);
int vm_op_set(VmManager *m, Store *s, const char *id, unsigned vcpu, unsigned long long memory_mib);

/* A session with the guest agent of a running VM (hello done), each step
 * within timeout. */
int vm_agent_open(VmManager *m, Store *s, const char *id, usec_t timeout, AgentClient **ret);

/* Where a client connects to the agent itself (vm.agent). */
int vm_agent_endpoint(VmManager *m, Store *s, const char *id, char **ret_socket, unsigned *ret_handshake_port);

/* Paths. */
char *vm_state_dir(VmManager *m, const char *id);
char *vm_console_log(VmManager *m, const char *id);
/* The console log opened read-only through the state directory, or -errno. */
int vm_console_log_open(VmManager *m, const char *id);
/* Its last lines (at most max bytes, from a line start, made printable),
 * for error replies; NULL when there is none. */
char *vm_log_tail(VmManager *m, const char *id, size_t max);
const char *vm_manager_ssh_key(VmManager *m);
const char *vm_manager_known_hosts(VmManager *m);

/* Generate an adjective-noun name not yet used. */
int vm_name_generate(Store *s, char **ret);
