/* SPDX-License-Identifier: MIT */
/* Fuzz kernel identification (bzImage boot header, ELF headers, version
 * strings), the PVH note search in an ELF and, for inputs that identify as a
 * bzImage, the payload decompression and ELF check. A successful
 * identification must describe ranges inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernel-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        KernelImageInfo info;
        error_clear();
        if (kernel_image_identify(data, size, &info) < 0)
                return 0;
        if (strlen(info.release) >= KERNEL_RELEASE_MAX || strlen(info.banner) >= KERNEL_BANNER_MAX)
                abort();
        if (info.format == KERNEL_FORMAT_ELF) {
                if (kernel_elf_check(data, size) < 0)
                        abort();
                (void) kernel_elf_has_pvh_entry(data, size);
                return 0;
        }
        if (info.payload_offset > size || info.payload_length > size - info.payload_offset)
                abort();
        void *elf = NULL;
        size_t elf_len = 0;
        if (kernel_image_extract_elf(data, size, &info, &elf, &elf_len) >= 0) {
                if (kernel_elf_check(elf, elf_len) < 0)
                        abort();
                (void) kernel_elf_has_pvh_entry(elf, elf_len);
                free(elf);
        }
        return 0;
}
