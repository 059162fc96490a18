/* SPDX-License-Identifier: MIT */
#pragma once

/* Identify a Linux kernel file and turn it into what each VMM boots.
 *
 * Firecracker on x86_64 boots only an uncompressed ELF vmlinux; distributions
 * ship a bzImage (a real-mode setup stub followed by a compressed vmlinux).
 * kernel_image_identify() reads either from memory, bounds-checking every
 * header field (the parser is fuzzed); kernel_image_extract_elf() unpacks a
 * bzImage's payload with libarchive (no hand-written decompressor, no
 * external program) and checks that the result is an x86_64 ELF.
 *
 * Errors: -EBADMSG (not a kernel, or a header field points outside the
 * file), -EPROTONOSUPPORT (a bzImage too old to say where its payload is, or
 * an unsupported compression), -EFBIG (over the size limits); a sentence is
 * recorded with error_setf(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Largest kernel file read (bzImage or vmlinux) and largest decompressed ELF. */
#define KERNEL_IMAGE_MAX (512ULL << 20)
#define KERNEL_RELEASE_MAX 65 /* struct utsname.release */
#define KERNEL_BANNER_MAX 256

typedef enum KernelFormat {
        KERNEL_FORMAT_ELF,     /* x86_64 ET_EXEC vmlinux */
        KERNEL_FORMAT_BZIMAGE, /* boot protocol "HdrS" image with a compressed payload */
        _KERNEL_FORMAT_MAX,
} KernelFormat;

typedef enum KernelCompression {
        KERNEL_COMPRESSION_NONE,
        KERNEL_COMPRESSION_GZIP,
        KERNEL_COMPRESSION_XZ,
        KERNEL_COMPRESSION_ZSTD,
        KERNEL_COMPRESSION_LZMA,
        KERNEL_COMPRESSION_BZIP2,
        KERNEL_COMPRESSION_LZ4,
        KERNEL_COMPRESSION_LZO,
        _KERNEL_COMPRESSION_MAX,
} KernelCompression;

typedef struct KernelImageInfo {
        KernelFormat format;
        KernelCompression compression; /* NONE for an ELF */
        uint16_t boot_protocol;        /* bzImage only, e.g. 0x020f */
        uint64_t payload_offset;       /* bzImage only: file offset of the compressed vmlinux */
        uint64_t payload_length;
        /* Uncompressed size the payload announces in its last 4 bytes (every
         * kernel compressor appends it; gzip's ISIZE is the same field), 0
         * if unknown. Checked against the decompressed result. */
        uint64_t payload_uncompressed_size;
        char release[KERNEL_RELEASE_MAX]; /* "6.1.0-18-amd64"; empty when not found */
        char banner[KERNEL_BANNER_MAX];   /* the whole version line, truncated */
} KernelImageInfo;

const char *kernel_format_to_string(KernelFormat f);
const char *kernel_compression_to_string(KernelCompression c);

/* Identify data[0..len): a bzImage or an x86_64 ET_EXEC ELF. The release is
 * taken from the bzImage header's kernel_version string, or from the first
 * "Linux version <release>" in an ELF. */
int kernel_image_identify(const void *data, size_t len, KernelImageInfo *ret);

/* The same checks for an ELF only: ELF64, little-endian, EM_X86_64,
 * ET_EXEC, program headers and PT_LOAD segments inside the file. */
int kernel_elf_check(const void *data, size_t len);

/* Does this ELF (kernel_elf_check() passes) carry a PVH entry point (an
 * XEN_ELFNOTE_PHYS32_ENTRY note, Linux's CONFIG_PVH), so QEMU can boot it
 * directly, without firmware or the bzImage's self-decompression? Errors
 * and a malformed ELF are false (error_setf() may have been called). */
bool kernel_elf_has_pvh_entry(const void *data, size_t len);

/* Find "Linux version <release>" in data (ELF or decompressed payload). */
int kernel_find_linux_version(const void *data, size_t len, char release[static KERNEL_RELEASE_MAX],
                              char banner[static KERNEL_BANNER_MAX]);

/* Map a regular file read-only (<= KERNEL_IMAGE_MAX). Unmap with
 * kernel_image_unmap(). An empty file is -EBADMSG. */
int kernel_image_map_fd(int fd, const void **ret_data, size_t *ret_len);
void kernel_image_unmap(const void *data, size_t len);

/* Decompress the payload of an identified bzImage held in data into a newly
 * allocated buffer (free()). Verifies the result with kernel_elf_check()
 * and, when known, against info->payload_uncompressed_size: decompression
 * stops the moment it passes that size (-EFBIG), or KERNEL_IMAGE_MAX. */
int kernel_image_extract_elf(const void *data, size_t len, const KernelImageInfo *info, void **ret_elf,
                             size_t *ret_elf_len);
