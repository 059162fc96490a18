/* SPDX-License-Identifier: MIT */
#pragma once

/* Firecracker's REST API: HTTP/1.1 over its Unix API socket, through libcurl.
 * Every request carries Content-Length (Firecracker's server insists), an
 * empty Expect: header (so curl never waits for "100 Continue", which
 * Firecracker does not send) and a per-request timeout. Replies are capped.
 * On a 4xx/5xx reply the call returns -EREMOTEIO and records Firecracker's
 * fault_message word for word with error_setf(). */

#include <jansson.h>

#include "time-util.h"
#include "vmm-driver.h"

#define FC_API_TIMEOUT (5 * USEC_PER_SEC)
#define FC_API_REPLY_MAX (64U * 1024U)

/* One raw request. body may be NULL (no body). *ret_status gets the HTTP
 * status; *ret_body (optional) the reply body, NUL-terminated. */
int fc_api_request(const char *socket_path, const char *method, const char *path, const char *body, usec_t timeout,
                   long *ret_status, char **ret_body);

/* PUT/PATCH a JSON body and expect 204. The body reference is stolen. */
int fc_api_send(const char *socket_path, const char *method, const char *path, json_t *body, usec_t timeout);

/* GET / and return the "state" field ("Not started", "Running", "Paused"). */
int fc_api_get_state(const char *socket_path, usec_t timeout, char **ret_state);

/* The parts of a reply (NUL-terminated, may be NULL), apart from the
 * socket, so they can be fuzzed. fc_api_reply_error: -EREMOTEIO with
 * Firecracker's fault_message (or, when it gave none, the status, method and
 * path) as the error message. fc_api_reply_state: the "state" of GET /. */
int fc_api_reply_error(long status, const char *method, const char *path, const char *reply);
int fc_api_reply_state(const char *reply, char **ret_state);

/* Poll the socket until GET / answers, until the deadline. While waiting,
 * a readable pidfd (>= 0) means the VMM died: -ECHILD. */
int fc_api_wait_ready(const char *socket_path, int pidfd, usec_t timeout);

/* Request bodies, exactly as sent (golden-tested). Return NULL on OOM. */
json_t *fc_json_boot_source(const char *kernel, const char *initrd, const char *cmdline);
json_t *fc_json_machine_config(unsigned vcpus, unsigned long long mem_mib);
json_t *fc_json_drive(const char *id, const char *path, bool is_root, bool read_only);
json_t *fc_json_network_interface(const char *id, const char *tap, const char *mac);
json_t *fc_json_vsock(unsigned guest_cid, const char *uds_path);
json_t *fc_json_logger(const char *log_path, const char *level);
json_t *fc_json_metrics(const char *metrics_path);
json_t *fc_json_action(const char *action_type);
json_t *fc_json_vm_state(const char *state);
json_t *fc_json_snapshot_create(const char *snapshot_path, const char *mem_path);
/* network_overrides (one per NIC: its new TAP) and vsock_override (when
 * vsock_uds is given) point a loaded VM at the new VM's own host devices. */
json_t *fc_json_snapshot_load(const char *snapshot_path, const char *mem_path, bool resume, const VmmNic *nics,
                              size_t n_nics, const char *vsock_uds);

/* Convenience wrappers over fc_api_send(). */
int fc_api_put_boot_source(const char *sock, const char *kernel, const char *initrd, const char *cmdline);
int fc_api_put_machine_config(const char *sock, unsigned vcpus, unsigned long long mem_mib);
int fc_api_put_drive(const char *sock, const char *id, const char *path, bool is_root, bool read_only);
int fc_api_put_network_interface(const char *sock, const char *id, const char *tap, const char *mac);
int fc_api_put_vsock(const char *sock, unsigned guest_cid, const char *uds_path);
int fc_api_put_logger(const char *sock, const char *log_path, const char *level);
int fc_api_put_metrics(const char *sock, const char *metrics_path);
int fc_api_action(const char *sock, const char *action_type);
int fc_api_patch_vm(const char *sock, const char *state);
int fc_api_snapshot_create(const char *sock, const char *snapshot_path, const char *mem_path);
int fc_api_snapshot_load(const char *sock, const char *snapshot_path, const char *mem_path, bool resume,
                         const VmmNic *nics, size_t n_nics, const char *vsock_uds);
