/* SPDX-License-Identifier: MIT */
#include "firecracker-api.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "macro.h"
#include "string-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all);

typedef struct ReplyBuffer {
        char *data;
        size_t len;
        bool overflow;
} ReplyBuffer;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* curl_global_init() is not thread-safe; do it exactly once. */
static void curl_init_once(void) {
        (void) curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t reply_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        ReplyBuffer *b = userdata;
        size_t n = size * nmemb;
        if (b->len + n > FC_API_REPLY_MAX) {
                b->overflow = true;
                return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        char *p = realloc(b->data, b->len + n + 1);
        if (!p)
                return 0;
        memcpy(p + b->len, ptr, n);
        b->len += n;
        p[b->len] = '\0';
        b->data = p;
        return n;
}

static int curl_code_to_errno(CURLcode c, const ReplyBuffer *b) {
        switch (c) {
        case CURLE_OK:
                return 0;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_WRITE_ERROR:
                return b->overflow ? -EFBIG : -ENOMEM;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

static int setup_handle(CURL *h, const char *socket_path, const char *method, const char *path, const char *body,
                        usec_t timeout, struct curl_slist *headers, ReplyBuffer *b, char *errbuf) {
        char url[512];
        if ((size_t) snprintf(url, sizeof(url), "http://localhost%s", path) >= sizeof(url))
                return -ENAMETOOLONG;
        long ms = (long) MIN(MAX(timeout / USEC_PER_MSEC, (usec_t) 1), (usec_t) LONG_MAX);
        if (curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket_path) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, reply_write) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_WRITEDATA, b) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http") != CURLE_OK)
                return -ENOMEM;
        if (body) {
                /* POSTFIELDS + POSTFIELDSIZE makes curl send Content-Length;
                 * CUSTOMREQUEST then turns the POST into PUT/PATCH. */
                if (curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
                    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body)) != CURLE_OK)
                        return -ENOMEM;
        }
        if (!streq(method, body ? "POST" : "GET") && curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
                return -ENOMEM;
        return 0;
}

int fc_api_request(const char *socket_path, const char *method, const char *path, const char *body, usec_t timeout,
                   long *ret_status, char **ret_body) {
        (void) pthread_once(&curl_once, curl_init_once);
        _cleanup_(curl_easy_cleanupp) CURL *h = curl_easy_init();
        if (!h)
                return -ENOMEM;
        _cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
        const char *hdrs[] = { "Accept: application/json", "Content-Type: application/json", "Expect:" };
        for (size_t i = 0; i < ELEMENTSOF(hdrs); i++) {
                struct curl_slist *n = curl_slist_append(headers, hdrs[i]);
                if (!n)
                        return -ENOMEM;
                headers = n;
        }
        ReplyBuffer b = {};
        char errbuf[CURL_ERROR_SIZE] = "";
        int r = setup_handle(h, socket_path, method, path, body, timeout, headers, &b, errbuf);
        if (r < 0)
                return r;
        CURLcode c = curl_easy_perform(h);
        _cleanup_free_ char *reply = b.data;
        r = curl_code_to_errno(c, &b);
        if (r < 0) {
                log_debug("%s %s on %s: %s", method, path, socket_path, errbuf[0] ? errbuf : curl_easy_strerror(c));
                if (r == -EFBIG)
                        return error_setf(r, "Firecracker's reply to %s %s exceeds %u bytes", method, path,
                                          FC_API_REPLY_MAX);
                return error_setf(r, "Firecracker API %s %s failed: %s", method, path,
                                  errbuf[0] ? errbuf : curl_easy_strerror(c));
        }
        long status = 0;
        (void) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        *ret_status = status;
        if (ret_body)
                *ret_body = reply ? TAKE_PTR(reply) : strdup("");
        return ret_body && !*ret_body ? -ENOMEM : 0;
}

int fc_api_reply_error(long status, const char *method, const char *path, const char *reply) {
        _cleanup_(json_decrefp) json_t *j = json_loads(reply ? reply : "", JSON_DECODE_ANY, NULL);
        const char *fault = json_string_value(json_object_get(j, "fault_message"));
        if (fault && *fault)
                return error_setf(-EREMOTEIO, "%s", fault);
        return error_setf(-EREMOTEIO, "Firecracker answered HTTP %ld to %s %s", status, method, path);
}

int fc_api_send(const char *socket_path, const char *method, const char *path, json_t *body, usec_t timeout) {
        _cleanup_(json_decrefp) json_t *j = body;
        if (!j)
                return -ENOMEM;
        _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s)
                return -ENOMEM;
        _cleanup_free_ char *reply = NULL;
        long status = 0;
        int r = fc_api_request(socket_path, method, path, s, timeout, &status, &reply);
        if (r < 0)
                return r;
        if (status != 204 && status != 200)
                return fc_api_reply_error(status, method, path, reply);
        return 0;
}

int fc_api_reply_state(const char *reply, char **ret_state) {
        _cleanup_(json_decrefp) json_t *j = json_loads(reply ? reply : "", 0, NULL);
        const char *state = json_string_value(json_object_get(j, "state"));
        if (!state)
                return error_setf(-EBADMSG, "Firecracker's GET / reply has no state");
        char *s = strdup(state);
        if (!s)
                return -ENOMEM;
        *ret_state = s;
        return 0;
}

int fc_api_get_state(const char *socket_path, usec_t timeout, char **ret_state) {
        _cleanup_free_ char *reply = NULL;
        long status = 0;
        int r = fc_api_request(socket_path, "GET", "/", NULL, timeout, &status, &reply);
        if (r < 0)
                return r;
        if (status != 200)
                return fc_api_reply_error(status, "GET", "/", reply);
        return fc_api_reply_state(reply, ret_state);
}

int fc_api_wait_ready(const char *socket_path, int pidfd, usec_t timeout) {
        usec_t deadline = now_monotonic() + timeout;
        int backoff_ms = 1;
        for (;;) {
                usec_t now = now_monotonic();
                if (now >= deadline)
                        return error_setf(-ETIMEDOUT, "Firecracker's API socket %s did not answer in time",
                                          socket_path);
                long status = 0;
                int r = fc_api_request(socket_path, "GET", "/", NULL, MIN(deadline - now, FC_API_TIMEOUT), &status,
                                       NULL);
                if (r >= 0 && status == 200)
                        return 0;
                if (r < 0 && r != -ECONNREFUSED && r != -ETIMEDOUT)
                        return r;
                /* Not there yet (socket not bound or not listening): wait on the
                 * pidfd, so a VMM that dies during startup is noticed at once. */
                struct pollfd p = { .fd = pidfd, .events = POLLIN };
                if (pidfd >= 0 && poll(&p, 1, backoff_ms) > 0)
                        return error_setf(-ECHILD, "Firecracker exited during startup; see its log");
                if (pidfd < 0)
                        (void) poll(NULL, 0, backoff_ms);
                backoff_ms = MIN(backoff_ms * 2, 50);
        }
}

static bool api_id_is_valid(const char *id) {
        if (!id || !*id || strlen(id) > 64)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                      *p == '-'))
                        return false;
        return true;
}

json_t *fc_json_boot_source(const char *kernel, const char *initrd, const char *cmdline) {
        json_t *j = json_pack("{s:s}", "kernel_image_path", kernel);
        if (j && cmdline && json_object_set_new(j, "boot_args", json_string(cmdline)) < 0)
                return json_decref(j), NULL;
        if (j && initrd && json_object_set_new(j, "initrd_path", json_string(initrd)) < 0)
                return json_decref(j), NULL;
        return j;
}

json_t *fc_json_machine_config(unsigned vcpus, unsigned long long mem_mib) {
        return json_pack("{s:I,s:I,s:b}", "vcpu_count", (json_int_t) vcpus, "mem_size_mib", (json_int_t) mem_mib, "smt",
                         0);
}

json_t *fc_json_drive(const char *id, const char *path, bool is_root, bool read_only) {
        return json_pack("{s:s,s:s,s:b,s:b}", "drive_id", id, "path_on_host", path, "is_root_device", is_root,
                         "is_read_only", read_only);
}

json_t *fc_json_network_interface(const char *id, const char *tap, const char *mac) {
        json_t *j = json_pack("{s:s,s:s}", "iface_id", id, "host_dev_name", tap);
        if (j && mac && json_object_set_new(j, "guest_mac", json_string(mac)) < 0)
                return json_decref(j), NULL;
        return j;
}

json_t *fc_json_vsock(unsigned guest_cid, const char *uds_path) {
        return json_pack("{s:I,s:s}", "guest_cid", (json_int_t) guest_cid, "uds_path", uds_path);
}

json_t *fc_json_logger(const char *log_path, const char *level) {
        return json_pack("{s:s,s:s,s:b}", "log_path", log_path, "level", level, "show_level", 1);
}

json_t *fc_json_metrics(const char *metrics_path) {
        return json_pack("{s:s}", "metrics_path", metrics_path);
}

json_t *fc_json_action(const char *action_type) {
        return json_pack("{s:s}", "action_type", action_type);
}

json_t *fc_json_vm_state(const char *state) {
        return json_pack("{s:s}", "state", state);
}

json_t *fc_json_snapshot_create(const char *snapshot_path, const char *mem_path) {
        return json_pack("{s:s,s:s,s:s}", "snapshot_type", "Full", "snapshot_path", snapshot_path, "mem_file_path",
                         mem_path);
}

static json_t *network_overrides(const VmmNic *nics, size_t n_nics) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n_nics; i++)
                if (json_array_append_new(
                            a, json_pack("{s:s,s:s}", "iface_id", nics[i].id, "host_dev_name", nics[i].tap)) < 0)
                        return json_decref(a), NULL;
        return a;
}

json_t *fc_json_snapshot_load(const char *snapshot_path, const char *mem_path, bool resume, const VmmNic *nics,
                              size_t n_nics, const char *vsock_uds) {
        json_t *j = json_pack("{s:s,s:{s:s,s:s},s:b}", "snapshot_path", snapshot_path, "mem_backend", "backend_type",
                              "File", "backend_path", mem_path, "resume_vm", resume);
        if (j && n_nics > 0 && json_object_set_new(j, "network_overrides", network_overrides(nics, n_nics)) < 0)
                return json_decref(j), NULL;
        if (j && vsock_uds && json_object_set_new(j, "vsock_override", json_pack("{s:s}", "uds_path", vsock_uds)) < 0)
                return json_decref(j), NULL;
        return j;
}

int fc_api_put_boot_source(const char *sock, const char *kernel, const char *initrd, const char *cmdline) {
        return fc_api_send(sock, "PUT", "/boot-source", fc_json_boot_source(kernel, initrd, cmdline), FC_API_TIMEOUT);
}

int fc_api_put_machine_config(const char *sock, unsigned vcpus, unsigned long long mem_mib) {
        return fc_api_send(sock, "PUT", "/machine-config", fc_json_machine_config(vcpus, mem_mib), FC_API_TIMEOUT);
}

/* Ids become URL path segments: keep them to what Firecracker accepts. */
static int put_with_id(const char *sock, const char *prefix, const char *id, json_t *body) {
        char path[128];
        if (!api_id_is_valid(id)) {
                json_decref(body);
                return error_setf(-EINVAL, "invalid Firecracker device id \"%s\"", id ? id : "");
        }
        snprintf(path, sizeof(path), "%s/%s", prefix, id);
        return fc_api_send(sock, "PUT", path, body, FC_API_TIMEOUT);
}

int fc_api_put_drive(const char *sock, const char *id, const char *path, bool is_root, bool read_only) {
        return put_with_id(sock, "/drives", id, fc_json_drive(id, path, is_root, read_only));
}

int fc_api_put_network_interface(const char *sock, const char *id, const char *tap, const char *mac) {
        return put_with_id(sock, "/network-interfaces", id, fc_json_network_interface(id, tap, mac));
}

int fc_api_put_vsock(const char *sock, unsigned guest_cid, const char *uds_path) {
        return fc_api_send(sock, "PUT", "/vsock", fc_json_vsock(guest_cid, uds_path), FC_API_TIMEOUT);
}

int fc_api_put_logger(const char *sock, const char *log_path, const char *level) {
        return fc_api_send(sock, "PUT", "/logger", fc_json_logger(log_path, level), FC_API_TIMEOUT);
}

int fc_api_put_metrics(const char *sock, const char *metrics_path) {
        return fc_api_send(sock, "PUT", "/metrics", fc_json_metrics(metrics_path), FC_API_TIMEOUT);
}

int fc_api_action(const char *sock, const char *action_type) {
        return fc_api_send(sock, "PUT", "/actions", fc_json_action(action_type), FC_API_TIMEOUT);
}

int fc_api_patch_vm(const char *sock, const char *state) {
        return fc_api_send(sock, "PATCH", "/vm", fc_json_vm_state(state), FC_API_TIMEOUT);
}

/* Writing guest memory to disk takes longer than a configuration call. */
#define FC_SNAPSHOT_TIMEOUT (120 * USEC_PER_SEC)

int fc_api_snapshot_create(const char *sock, const char *snapshot_path, const char *mem_path) {
        return fc_api_send(sock, "PUT", "/snapshot/create", fc_json_snapshot_create(snapshot_path, mem_path),
                           FC_SNAPSHOT_TIMEOUT);
}

int fc_api_snapshot_load(const char *sock, const char *snapshot_path, const char *mem_path, bool resume,
                         const VmmNic *nics, size_t n_nics, const char *vsock_uds) {
        return fc_api_send(sock, "PUT", "/snapshot/load",
                           fc_json_snapshot_load(snapshot_path, mem_path, resume, nics, n_nics, vsock_uds),
                           FC_SNAPSHOT_TIMEOUT);
}
