/* SPDX-License-Identifier: MIT */
#pragma once

/* The identity request of a restored clone (docs/agent-protocol.md): the
 * network.conf format (docs/guest-config.md: HOSTNAME, ADDRESS, GATEWAY,
 * MAC, DNS) plus keys that are not written to the file:
 *   FROM_MAC       the NIC's MAC as the snapshot left it (to find the NIC)
 *   TIME_NS        the host's CLOCK_REALTIME in nanoseconds (the clock is stepped)
 *   ENTROPY        hex bytes from the host's getrandom(), at most 64
 *   NEW_HOST_KEYS  1: new SSH host keys and machine id (agent-hostkeys.h) */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent-net.h"

#define AGENT_IDENTITY_MAX 4096
#define AGENT_IDENTITY_ENTROPY_MAX 64

typedef struct AgentIdentity {
        NetworkConfig net;
        char *conf; /* the request without the transient keys: the new network.conf */
        char from_mac[18];
        uint64_t time_ns; /* 0: leave the clock */
        uint8_t entropy[AGENT_IDENTITY_ENTROPY_MAX];
        size_t n_entropy;
        bool new_host_keys;
        bool resumed; /* RESUMED=1: the same VM resumed, only the clock and the entropy */
} AgentIdentity;

/* HOSTNAME, ADDRESS and MAC are required, except with RESUMED=1 (then
 * only TIME_NS and ENTROPY are read); -EINVAL for anything malformed. */
int agent_identity_parse(const char *text, AgentIdentity *ret);
void agent_identity_done(AgentIdentity *id);

/* Apply it, each part even when an earlier one failed; returns the last
 * failure (logged) or 0. root is "/" except in tests. Without guest (an
 * agent in --listen-unix mode runs on a host's clock and files), the clock
 * and the files are left alone. */
int agent_identity_apply(const char *root, const AgentIdentity *id, bool guest);

/* The identity stream's built-in (agent-exec.h): arg is an
 * AgentIdentityJob; the log goes to stderr, the exit status is 0 when every
 * part was applied. */
typedef struct AgentIdentityJob {
        const char *root;
        bool guest;
        /* CLOCK_MONOTONIC when the request arrived: the time the child took
         * to start is added to TIME_NS (a busy TCG guest took a second). */
        uint64_t received_ns;
        char text[AGENT_IDENTITY_MAX + 1]; /* NUL-terminated */
} AgentIdentityJob;
int agent_identity_builtin(const void *arg);
