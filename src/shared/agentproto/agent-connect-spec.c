/* SPDX-License-Identifier: MIT */
/* The request payload of a CONNECT stream: u32 flags, u16 port. */
#include <errno.h>

#include "agent-protocol.h"

void agent_connect_spec_encode(const AgentConnectSpec *spec, uint8_t out[AGENT_CONNECT_REQUEST_SIZE]) {
        agent_put_u32(out, spec->flags);
        agent_put_u16(out + 4, spec->port);
}

int agent_connect_spec_parse(const uint8_t *payload, size_t len, AgentConnectSpec *ret) {
        if (len != AGENT_CONNECT_REQUEST_SIZE)
                return -EBADMSG;
        AgentConnectSpec spec = { .flags = agent_get_u32(payload), .port = agent_get_u16(payload + 4) };
        /* No flags are defined yet: a later version that sets one must not
         * be taken for something else. */
        if (spec.flags != 0 || spec.port == 0)
                return -EBADMSG;
        *ret = spec;
        return 0;
}
