/* SPDX-License-Identifier: MIT */
/* The agent's reports as C structures, and Firecracker's vsock handshake. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-client-internal.h"
#include "error.h"

static char *json_strdup(json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return strdup(s ? s : "");
}

void agent_health_done(AgentHealth *h) {
        free(h->agent_version);
        free(h->boot_id);
        free(h->hostname);
        free(h->kernel);
        free(h->work_disk_device);
        free(h->work_disk_mount);
        *h = (AgentHealth){};
}

int agent_health_from_json(json_t *j, AgentHealth *ret) {
        AgentHealth h = {
                .agent_version = json_strdup(j, "agent_version"),
                .boot_id = json_strdup(j, "boot_id"),
                .hostname = json_strdup(j, "hostname"),
                .kernel = json_strdup(j, "kernel"),
                .uptime_sec = json_number_value(json_object_get(j, "uptime_sec")),
                .protocol = (unsigned) json_integer_value(json_object_get(j, "protocol")),
        };
        json_t *w = json_object_get(j, "work_disk");
        if (json_is_object(w)) {
                h.work_disk_device = json_strdup(w, "device");
                h.work_disk_mount = json_strdup(w, "mount");
                h.work_disk_mounted = json_is_true(json_object_get(w, "mounted"));
        }
        if (!h.agent_version || !h.boot_id || !h.hostname || !h.kernel ||
            (json_is_object(w) && (!h.work_disk_device || !h.work_disk_mount))) {
                agent_health_done(&h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

int agent_client_health(AgentClient *c, usec_t timeout, AgentHealth *ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r = agent_client_query_json(c, AGENT_STREAM_HEALTH, timeout, &j);
        return r < 0 ? r : agent_health_from_json(j, ret);
}

static uint64_t json_u64(json_t *o, const char *key) {
        json_int_t v = json_integer_value(json_object_get(o, key));
        return v < 0 ? 0 : (uint64_t) v;
}

int agent_stats_from_json(json_t *j, AgentStats *ret) {
        if (!json_is_integer(json_object_get(j, "mem_total_kib")) || !json_is_number(json_object_get(j, "load1")))
                return error_setf(-EBADMSG, "guest agent stats lack mem_total_kib/load1");
        *ret = (AgentStats){
                .mem_total_kib = json_u64(j, "mem_total_kib"),
                .mem_free_kib = json_u64(j, "mem_free_kib"),
                .mem_available_kib = json_u64(j, "mem_available_kib"),
                .buffers_kib = json_u64(j, "buffers_kib"),
                .cached_kib = json_u64(j, "cached_kib"),
                .swap_total_kib = json_u64(j, "swap_total_kib"),
                .swap_free_kib = json_u64(j, "swap_free_kib"),
                .load1 = json_number_value(json_object_get(j, "load1")),
                .load5 = json_number_value(json_object_get(j, "load5")),
                .load15 = json_number_value(json_object_get(j, "load15")),
                .procs_running = (unsigned) json_u64(j, "procs_running"),
                .procs_total = (unsigned) json_u64(j, "procs_total"),
        };
        return 0;
}

int agent_client_stats(AgentClient *c, usec_t timeout, AgentStats *ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r = agent_client_query_json(c, AGENT_STREAM_STATS, timeout, &j);
        return r < 0 ? r : agent_stats_from_json(j, ret);
}

void agent_ports_free(AgentPort *p, size_t n) {
        for (size_t i = 0; p && i < n; i++)
                free(p[i].process);
        free(p);
}

static int port_from_json(json_t *e, AgentPort *p) {
        const char *proto = json_string_value(json_object_get(e, "proto"));
        const char *addr = json_string_value(json_object_get(e, "address"));
        json_int_t port = json_integer_value(json_object_get(e, "port"));
        if (!proto || !addr || strlen(proto) >= sizeof(p->proto) || strlen(addr) >= sizeof(p->address) || port <= 0 ||
            port > 65535)
                return error_setf(-EBADMSG, "guest agent sent a malformed port entry");
        snprintf(p->proto, sizeof(p->proto), "%s", proto);
        snprintf(p->address, sizeof(p->address), "%s", addr);
        p->port = (unsigned) port;
        p->pid = (int) json_integer_value(json_object_get(e, "pid"));
        p->process = json_strdup(e, "process");
        return p->process ? 0 : -ENOMEM;
}

int agent_ports_from_json(json_t *j, AgentPort **ret, size_t *ret_n) {
        json_t *arr = json_object_get(j, "ports");
        if (!json_is_array(arr))
                return error_setf(-EBADMSG, "guest agent ports reply has no ports array");
        size_t n = json_array_size(arr);
        AgentPort *v = calloc(n ? n : 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int r = port_from_json(json_array_get(arr, i), &v[i]);
                if (r < 0) {
                        agent_ports_free(v, n);
                        return r;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int agent_client_ports(AgentClient *c, usec_t timeout, AgentPort **ret, size_t *ret_n) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r = agent_client_query_json(c, AGENT_STREAM_PORTS, timeout, &j);
        return r < 0 ? r : agent_ports_from_json(j, ret, ret_n);
}

/* Poll first: the fd may be blocking, and the deadline must hold anyway. */
static int read_byte(int fd, usec_t deadline, char *ret) {
        for (;;) {
                int r = agent_wait_fd(fd, POLLIN, deadline);
                if (r < 0)
                        return r;
                ssize_t n = read(fd, ret, 1);
                if (n == 1)
                        return 0;
                if (n == 0)
                        return -ECONNRESET;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
        }
}

int agent_vsock_handshake(int fd, unsigned port, usec_t timeout) {
        usec_t deadline = deadline_from_timeout(timeout);
        char line[64];
        int len = snprintf(line, sizeof(line), "CONNECT %u\n", port);
        size_t done = 0;
        while (done < (size_t) len) {
                ssize_t n = send(fd, line + done, (size_t) len - done, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        int r = agent_wait_fd(fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0)
                        return error_setf(-errno, "vsock handshake: %s", strerror(errno));
                done += (size_t) n;
        }
        size_t n = 0;
        for (;;) {
                int r = read_byte(fd, deadline, &line[n]);
                if (r == -ECONNRESET || r == -EPIPE)
                        return error_setf(-ECONNREFUSED, "nothing listens on guest vsock port %u", port);
                if (r < 0)
                        return r == -ETIMEDOUT ? r : error_setf(r, "vsock handshake: %s", strerror(-r));
                if (line[n] == '\n')
                        break;
                if (++n >= sizeof(line) - 1)
                        return error_setf(-EPROTO, "vsock handshake: reply line too long");
        }
        line[n] = 0;
        unsigned host_port;
        char extra;
        if (sscanf(line, "OK %u%c", &host_port, &extra) != 1)
                return error_setf(-EPROTO, "vsock handshake: unexpected reply \"%s\"", line);
        return 0;
}
