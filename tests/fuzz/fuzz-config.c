/* SPDX-License-Identifier: MIT */
/* Fuzz the config parser (and the TOML subset parser beneath it). Besides
 * memory errors, a parse that succeeds must satisfy the documented ranges. */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_invariants(const BangerConfig *c) {
        if (c->vm_defaults.vcpu < 1 || c->vm_defaults.vcpu > 64 || c->vm_defaults.memory_mib < 1 ||
            c->vm_defaults.disk_size == 0 || c->vm_defaults.disk_size % (1024 * 1024) != 0)
                abort();
        if (c->tap_pool_size > 64 || c->dns_port == 0 || c->stop_timeout_sec < 1 || c->cidr_prefix < 8 ||
            c->cidr_prefix > 30)
                abort();
        if (c->jailer_enabled && (c->jailer_uid == 0 || c->jailer_gid == 0))
                abort();
        for (size_t i = 0; i < c->n_files; i++)
                if (!c->files[i].host || !c->files[i].guest || c->files[i].guest[0] != '/' ||
                    c->files[i].mode > 0777)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        BangerConfig c;
        error_clear();
        if (config_parse_string((const char *) data, size, "fuzz.toml", &c) < 0)
                return 0;
        check_invariants(&c);
        config_done(&c);
        return 0;
}
