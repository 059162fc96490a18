/* SPDX-License-Identifier: MIT */
#include "vmm-kind.h"

#include "string-util.h"

static const char *const kind_names[_VMM_KIND_MAX] = {
        [VMM_FIRECRACKER] = "firecracker",
        [VMM_QEMU] = "qemu",
};

const char *vmm_kind_to_string(VmmKind k) {
        return k >= 0 && k < _VMM_KIND_MAX ? kind_names[k] : NULL;
}

VmmKind vmm_kind_from_string(const char *s) {
        for (int k = 0; s && k < _VMM_KIND_MAX; k++)
                if (streq(s, kind_names[k]))
                        return (VmmKind) k;
        return _VMM_KIND_INVALID;
}
