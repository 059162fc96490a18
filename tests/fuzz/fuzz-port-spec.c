/* SPDX-License-Identifier: MIT */
/* The port forward specs users and RPC clients write (vm create -p, vm port
 * add and rm): whatever parses has ports in range, a canonical address that
 * parses again to itself, and only tcp. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "port-spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const PortSpec *p, bool guest) {
        assert(p->host_port > 0 && (!guest || p->guest_port > 0));
        assert(strcmp(p->proto, "tcp") == 0);
        PortSpec again;
        assert(port_spec_from_fields(p->host_ip, p->host_port, guest ? p->guest_port : 1, p->proto, &again) == 0);
        assert(strcmp(again.host_ip, p->host_ip) == 0);
        char host[64];
        port_spec_host_format(p, host, sizeof(host));
        assert(port_spec_parse_host(host, &again) == 0 && again.host_port == p->host_port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 256)
                return 0;
        char *text = malloc(size + 1);
        assert(text);
        memcpy(text, data, size);
        text[size] = 0;
        PortSpec p;
        if (port_spec_parse(text, &p) == 0)
                check(&p, true);
        if (port_spec_parse_host(text, &p) == 0)
                check(&p, false);
        free(text);
        return 0;
}
