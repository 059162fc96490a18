/* SPDX-License-Identifier: MIT */
/* Fuzz what a guest reports about itself: the JSON replies of the health,
 * stats and ports streams, read as the daemon and the CLI read them. The
 * first byte picks the reader; the rest is the reply. Besides memory errors:
 * everything read has the promised shape (strings present, ports in range,
 * fixed fields terminated inside their arrays). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent-client.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_health(json_t *j) {
        AgentHealth h;
        if (agent_health_from_json(j, &h) < 0)
                return;
        if (!h.agent_version || !h.boot_id || !h.hostname || !h.kernel || !h.work_disk_device != !h.work_disk_mount)
                abort();
        agent_health_done(&h);
}

static void check_ports(json_t *j) {
        AgentPort *p = NULL;
        size_t n = 0;
        if (agent_ports_from_json(j, &p, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++)
                if (p[i].port < 1 || p[i].port > 65535 || !memchr(p[i].proto, 0, sizeof(p[i].proto)) ||
                    !memchr(p[i].address, 0, sizeof(p[i].address)) || !p[i].process)
                        abort();
        agent_ports_free(p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > (1U << 20))
                return 0;
        error_clear();
        json_t *j = NULL;
        if (agent_query_reply_parse((const char *) data + 1, size - 1, &j) < 0) {
                if (!error_last_message())
                        abort();
                return 0;
        }
        if (!json_is_object(j))
                abort();
        AgentStats st;
        switch (data[0] % 3) {
        case 0:
                check_health(j);
                break;
        case 1:
                (void) agent_stats_from_json(j, &st);
                break;
        default:
                check_ports(j);
        }
        json_decref(j);
        return 0;
}
