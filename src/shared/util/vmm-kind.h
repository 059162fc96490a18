/* SPDX-License-Identifier: MIT */
#pragma once

/* The VMM kinds and their names. Here, below both the store and the
 * drivers, so that a VM record can name its VMM without the store depending
 * on the drivers. */

#include <errno.h>

typedef enum VmmKind {
        VMM_FIRECRACKER,
        VMM_QEMU,
        _VMM_KIND_MAX,
        _VMM_KIND_INVALID = -EINVAL,
} VmmKind;

const char *vmm_kind_to_string(VmmKind k);
VmmKind vmm_kind_from_string(const char *s);
