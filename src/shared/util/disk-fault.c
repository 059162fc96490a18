/* SPDX-License-Identifier: MIT */
#include "disk-fault.h"

#include <stddef.h>

#include "error.h"

int (*disk_fault_hook)(const char *step) = NULL;

int disk_fault_point(const char *step) {
        if (!disk_fault_hook)
                return 0;
        int r = disk_fault_hook(step);
        if (r < 0)
                return error_setf(r, "injected fault at step '%s'", step);
        return 0;
}
