/* SPDX-License-Identifier: MIT */
/* Daemon errors as the user reads them: refused params under the names of
 * the options that set them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call-error.h"
#include "jsonrpc.h"
#include "macro.h"
#include "string-util.h"

static const struct {
        const char *method, *param, *flag;
} param_flags[] = {
        { "vm.create", "name", "--name" },
        { "vm.create", "image", "--image" },
        { "vm.create", "vcpu", "--vcpu" },
        { "vm.create", "memory_mib", "--memory" },
        { "vm.create", "disk_bytes", "--disk-size" },
        { "vm.create", "vmm", "--vmm" },
        { "vm.set", "vcpu", "--vcpu" },
        { "vm.set", "memory_mib", "--memory" },
        { "vm.set", "idle_timeout", "--idle-timeout" },
        { "vm.set", "idle_action", "--idle-action" },
        { "vm.create", "idle_timeout", "--idle-timeout" },
        { "vm.create", "idle_action", "--idle-action" },
        { "vm.stop", "timeout_sec", "--timeout" },
        { "vm.restart", "timeout_sec", "--timeout" },
        { "vm.kill", "signal", "--signal" },
        { "vm.logs", "tail_bytes", "--tail" },
        { "image.register", "name", "--name" },
        { "image.register", "rootfs", "--rootfs" },
        { "image.register", "kernel", "--kernel-ref" },
        { "image.register", "work_seed", "--work-seed" },
        { "image.import", "name", "--name" },
        { "image.import", "kernel", "--kernel-ref" },
        { "image.build", "suite", "--debootstrap" },
        { "image.build", "mirror", "--mirror" },
        { "kernel.import", "from", "--from" },
        { "kernel.import", "initrd", "--initrd" },
};

const char *cli_param_flag(const char *method, const char *param) {
        for (size_t i = 0; method && param && i < ELEMENTSOF(param_flags); i++)
                if (streq(param_flags[i].method, method) && streq(param_flags[i].param, param))
                        return param_flags[i].flag;
        return NULL;
}

/* A refused param: "banger vm create: invalid --memory: it must be ...". */
static bool print_param_error(Cli *cli, const char *method, const RpcError *err) {
        const char *param = json_string_value(json_object_get(err->data, "param"));
        const char *expected = json_string_value(json_object_get(err->data, "expected"));
        if (err->code != JSONRPC_INVALID_PARAMS || !param || !expected)
                return false;
        const char *flag = cli_param_flag(method, param);
        const char *cmd = cli->command ? cli->command : "";
        if (flag)
                fprintf(stderr, "banger%s%s: invalid %s: it must be %s\n", *cmd ? " " : "", cmd, flag, expected);
        else
                fprintf(stderr, "banger%s%s: %s\n", *cmd ? " " : "", cmd, err->message ? err->message : "invalid");
        fprintf(stderr, "Try 'banger%s%s --help'.\n", *cmd ? " " : "", cmd);
        cli->usage_failed = true;
        return true;
}

void cli_print_call_error(Cli *cli, const char *method, int r, const RpcError *err) {
        if (r == -EREMOTEIO && print_param_error(cli, method, err))
                return;
        if (r == -EREMOTEIO) {
                /* The message may quote a guest, an image or a registry. */
                _cleanup_free_ char *m = err->message ? strdup(err->message) : NULL;
                fprintf(stderr, "banger: %s\n", m ? string_make_printable(m, false) : "the daemon reported an error");
        } else if (r == -ECONNRESET)
                fprintf(stderr, "banger: the daemon closed the connection\n");
        else if (r < 0)
                fprintf(stderr, "banger: %s: %s\n", method, strerror(-r));
}
