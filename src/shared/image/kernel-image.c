/* SPDX-License-Identifier: MIT */
#include "kernel-image.h"

#include <archive.h>
#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "error.h"
#include "log.h"
#include "string-util.h"

/* Linux boot protocol (Documentation/arch/x86/boot.rst): offsets in the file. */
#define BZ_SETUP_SECTS 0x1f1
#define BZ_BOOT_FLAG 0x1fe
#define BZ_HEADER 0x202
#define BZ_VERSION 0x206
#define BZ_KERNEL_VERSION 0x20e
#define BZ_PAYLOAD_OFFSET 0x248
#define BZ_PAYLOAD_LENGTH 0x24c
#define BZ_MIN_LEN 0x250
/* payload_offset/payload_length exist from protocol 2.08 on. */
#define BZ_PROTOCOL_PAYLOAD 0x0208

static const char *const format_names[_KERNEL_FORMAT_MAX] = {
        [KERNEL_FORMAT_ELF] = "elf",
        [KERNEL_FORMAT_BZIMAGE] = "bzimage",
};

static const char *const compression_names[_KERNEL_COMPRESSION_MAX] = {
        [KERNEL_COMPRESSION_NONE] = "none", [KERNEL_COMPRESSION_GZIP] = "gzip", [KERNEL_COMPRESSION_XZ] = "xz",
        [KERNEL_COMPRESSION_ZSTD] = "zstd", [KERNEL_COMPRESSION_LZMA] = "lzma", [KERNEL_COMPRESSION_BZIP2] = "bzip2",
        [KERNEL_COMPRESSION_LZ4] = "lz4",   [KERNEL_COMPRESSION_LZO] = "lzo",
};

const char *kernel_format_to_string(KernelFormat f) {
        return f >= 0 && f < _KERNEL_FORMAT_MAX ? format_names[f] : NULL;
}

const char *kernel_compression_to_string(KernelCompression c) {
        return c >= 0 && c < _KERNEL_COMPRESSION_MAX ? compression_names[c] : NULL;
}

static uint16_t get_le16(const uint8_t *p) {
        uint16_t v;
        memcpy(&v, p, sizeof(v));
        return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

static bool release_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._+~-", c);
}

/* Split "<release> (...) #1 SMP ..." at s[0..max): copy the first token
 * into release and the printable prefix into banner. Returns 0 when the
 * release token looks like one (starts with a digit, ends at a space or
 * the end of the string). */
static int parse_version_text(const char *s, size_t max, char release[static KERNEL_RELEASE_MAX],
                              char banner[static KERNEL_BANNER_MAX]) {
        size_t n = 0;
        while (n < max && n < KERNEL_RELEASE_MAX - 1 && release_char_ok(s[n]))
                n++;
        if (n == 0 || s[0] < '0' || s[0] > '9')
                return -EBADMSG;
        if (n < max && s[n] != ' ' && s[n] != '\0' && s[n] != '\n')
                return -EBADMSG;
        memcpy(release, s, n);
        release[n] = '\0';
        size_t b = 0;
        while (b < max && b < KERNEL_BANNER_MAX - 1 && s[b] >= 0x20 && s[b] < 0x7f)
                b++;
        memcpy(banner, s, b);
        banner[b] = '\0';
        return 0;
}

int kernel_find_linux_version(const void *data, size_t len, char release[static KERNEL_RELEASE_MAX],
                              char banner[static KERNEL_BANNER_MAX]) {
        static const char needle[] = "Linux version ";
        const char *p = data, *end = p + len;

        /* The first hit with a plausible release: format strings like
         * "Linux version %s" elsewhere in the image are skipped. */
        while (p < end) {
                const char *hit = memmem(p, (size_t) (end - p), needle, sizeof(needle) - 1);
                if (!hit)
                        break;
                const char *v = hit + sizeof(needle) - 1;
                char r[KERNEL_RELEASE_MAX], b[KERNEL_BANNER_MAX];
                /* The banner includes the "Linux version " prefix. */
                if (parse_version_text(v, (size_t) (end - v), r, b) >= 0) {
                        memcpy(release, r, sizeof(r));
                        size_t blen = MIN((size_t) (end - hit), (size_t) KERNEL_BANNER_MAX - 1), i = 0;
                        while (i < blen && hit[i] >= 0x20 && hit[i] < 0x7f)
                                i++;
                        memcpy(banner, hit, i);
                        banner[i] = '\0';
                        return 0;
                }
                p = hit + 1;
        }
        return error_setf(-ENOENT, "no \"Linux version\" string in the kernel image");
}

/* [off, off+size) inside [0, len), without overflow. */
static bool range_ok(uint64_t off, uint64_t size, uint64_t len) {
        return off <= len && size <= len - off;
}

static int elf_check_phdrs(const uint8_t *d, size_t len, const Elf64_Ehdr *eh) {
        if (eh->e_phnum == 0 || eh->e_phnum == PN_XNUM || eh->e_phentsize != sizeof(Elf64_Phdr))
                return error_setf(-EBADMSG, "kernel ELF: bad program header table");
        if (!range_ok(eh->e_phoff, (uint64_t) eh->e_phnum * sizeof(Elf64_Phdr), len))
                return error_setf(-EBADMSG, "kernel ELF: program headers outside the file");
        unsigned loads = 0;
        for (unsigned i = 0; i < eh->e_phnum; i++) {
                Elf64_Phdr ph;
                memcpy(&ph, d + eh->e_phoff + (uint64_t) i * sizeof(ph), sizeof(ph));
                if (ph.p_type != PT_LOAD)
                        continue;
                loads++;
                if (!range_ok(ph.p_offset, ph.p_filesz, len) || ph.p_filesz > ph.p_memsz)
                        return error_setf(-EBADMSG, "kernel ELF: segment %u outside the file", i);
        }
        if (loads == 0)
                return error_setf(-EBADMSG, "kernel ELF: no loadable segment");
        return 0;
}

static int elf_read_header(const void *data, size_t len, Elf64_Ehdr *ret) {
        Elf64_Ehdr eh;
        if (len < sizeof(eh))
                return error_setf(-EBADMSG, "not a kernel: too short for an ELF header");
        memcpy(&eh, data, sizeof(eh));
        if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
                return error_setf(-EBADMSG, "not an ELF file");
        if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
                return error_setf(-EBADMSG, "kernel ELF: not 64-bit little-endian");
        if (eh.e_machine != EM_X86_64)
                return error_setf(-EBADMSG, "kernel ELF: not x86_64 (machine %u)", eh.e_machine);
        if (eh.e_type != ET_EXEC)
                return error_setf(-EBADMSG, "kernel ELF: not an executable (type %u)", eh.e_type);
        *ret = eh;
        return 0;
}

int kernel_elf_check(const void *data, size_t len) {
        Elf64_Ehdr eh = {};
        int r = elf_read_header(data, len, &eh);
        if (r < 0)
                return r;
        return elf_check_phdrs(data, len, &eh);
}

/* XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit entry point of the PVH boot
 * protocol (Linux's CONFIG_PVH), in a note named "Xen". */
#define PVH_NOTE_NAME "Xen"
#define PVH_NOTE_TYPE 18
#define NOTE_SEGMENT_MAX (64U * 1024)

static bool notes_have_pvh(const uint8_t *p, uint64_t n) {
        uint64_t off = 0;
        while (n - off >= sizeof(Elf64_Nhdr)) {
                Elf64_Nhdr nh;
                memcpy(&nh, p + off, sizeof(nh));
                off += sizeof(nh);
                uint64_t name = ((uint64_t) nh.n_namesz + 3) & ~3ULL, desc = ((uint64_t) nh.n_descsz + 3) & ~3ULL;
                if (name > n - off || desc > n - off - name)
                        return false;
                if (nh.n_type == PVH_NOTE_TYPE && nh.n_namesz == sizeof(PVH_NOTE_NAME) && nh.n_descsz >= 4 &&
                    memcmp(p + off, PVH_NOTE_NAME, sizeof(PVH_NOTE_NAME)) == 0)
                        return true;
                off += name + desc;
        }
        return false;
}

bool kernel_elf_has_pvh_entry(const void *data, size_t len) {
        const uint8_t *d = data;
        Elf64_Ehdr eh = {};
        if (elf_read_header(data, len, &eh) < 0 || elf_check_phdrs(d, len, &eh) < 0)
                return false;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
                Elf64_Phdr ph;
                memcpy(&ph, d + eh.e_phoff + (uint64_t) i * sizeof(ph), sizeof(ph));
                if (ph.p_type == PT_NOTE && ph.p_filesz <= NOTE_SEGMENT_MAX &&
                    range_ok(ph.p_offset, ph.p_filesz, len) && notes_have_pvh(d + ph.p_offset, ph.p_filesz))
                        return true;
        }
        return false;
}

/* Where the ELF ends: the furthest of its header tables and file-backed
 * sections/segments. The bzImage payload may carry relocation data after
 * the ELF (CONFIG_X86_NEED_RELOCS); it is not part of vmlinux. */
static uint64_t elf_extent(const uint8_t *d, size_t len) {
        Elf64_Ehdr eh;
        memcpy(&eh, d, sizeof(eh));
        uint64_t end = MAX((uint64_t) sizeof(eh), eh.e_phoff + (uint64_t) eh.e_phnum * sizeof(Elf64_Phdr));
        for (unsigned i = 0; i < eh.e_phnum; i++) {
                Elf64_Phdr ph;
                memcpy(&ph, d + eh.e_phoff + (uint64_t) i * sizeof(ph), sizeof(ph));
                end = MAX(end, ph.p_offset + ph.p_filesz);
        }
        if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
            !range_ok(eh.e_shoff, (uint64_t) eh.e_shnum * sizeof(Elf64_Shdr), len))
                return len; /* no usable section table: keep everything */
        end = MAX(end, eh.e_shoff + (uint64_t) eh.e_shnum * sizeof(Elf64_Shdr));
        for (unsigned i = 0; i < eh.e_shnum; i++) {
                Elf64_Shdr sh;
                memcpy(&sh, d + eh.e_shoff + (uint64_t) i * sizeof(sh), sizeof(sh));
                if (sh.sh_type != SHT_NOBITS && range_ok(sh.sh_offset, sh.sh_size, len))
                        end = MAX(end, sh.sh_offset + sh.sh_size);
        }
        return MIN(end, (uint64_t) len);
}

static KernelCompression compression_from_magic(const uint8_t *p, uint64_t n) {
        static const struct {
                KernelCompression c;
                size_t len;
                const char *magic;
        } table[] = {
                { KERNEL_COMPRESSION_GZIP, 2, "\x1f\x8b" },
                { KERNEL_COMPRESSION_XZ, 6, "\xfd\x37\x7a\x58\x5a\x00" },
                { KERNEL_COMPRESSION_ZSTD, 4, "\x28\xb5\x2f\xfd" },
                { KERNEL_COMPRESSION_LZMA, 3, "\x5d\x00\x00" },
                { KERNEL_COMPRESSION_BZIP2, 3, "BZh" },
                { KERNEL_COMPRESSION_LZ4, 4, "\x02\x21\x4c\x18" },
                { KERNEL_COMPRESSION_LZO, 4, "\x89\x4c\x5a\x4f" },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (n >= table[i].len && memcmp(p, table[i].magic, table[i].len) == 0)
                        return table[i].c;
        return KERNEL_COMPRESSION_NONE;
}

/* The version string the header points at (inside the setup area). */
static void bzimage_version(const uint8_t *d, uint64_t setup_len, KernelImageInfo *info) {
        uint16_t ptr = get_le16(d + BZ_KERNEL_VERSION);
        uint64_t off = (uint64_t) ptr + 0x200;
        if (ptr == 0 || off >= setup_len)
                return;
        /* A missing NUL just ends the string at the setup area's end. */
        if (parse_version_text((const char *) d + off, setup_len - off, info->release, info->banner) < 0)
                info->release[0] = info->banner[0] = '\0';
}

static int bzimage_identify(const uint8_t *d, size_t len, KernelImageInfo *info) {
        if (len < BZ_MIN_LEN)
                return error_setf(-EBADMSG, "bzImage: file too short for the boot header");
        if (get_le16(d + BZ_BOOT_FLAG) != 0xAA55)
                return error_setf(-EBADMSG, "bzImage: missing boot signature");
        info->boot_protocol = get_le16(d + BZ_VERSION);
        if (info->boot_protocol < BZ_PROTOCOL_PAYLOAD)
                return error_setf(-EPROTONOSUPPORT, "bzImage: boot protocol %u.%02u is older than 2.08",
                                  info->boot_protocol >> 8, info->boot_protocol & 0xff);
        unsigned sects = d[BZ_SETUP_SECTS] ? d[BZ_SETUP_SECTS] : 4;
        uint64_t setup_len = ((uint64_t) sects + 1) * 512;
        if (setup_len > len)
                return error_setf(-EBADMSG, "bzImage: setup area (%u sectors) beyond the end of the file", sects);
        uint64_t off = setup_len + get_le32(d + BZ_PAYLOAD_OFFSET), plen = get_le32(d + BZ_PAYLOAD_LENGTH);
        if (plen < 8 || !range_ok(off, plen, len))
                return error_setf(-EBADMSG, "bzImage: payload (offset %" PRIu64 ", %" PRIu64 " bytes) outside the file",
                                  off, plen);
        info->payload_offset = off;
        info->payload_length = plen;
        info->payload_uncompressed_size = get_le32(d + off + plen - 4);
        info->compression = compression_from_magic(d + off, plen);
        bzimage_version(d, setup_len, info);
        if (info->compression == KERNEL_COMPRESSION_NONE)
                return error_setf(-EPROTONOSUPPORT, "bzImage: unknown payload compression");
        return 0;
}

int kernel_image_identify(const void *data, size_t len, KernelImageInfo *ret) {
        KernelImageInfo info = {};
        const uint8_t *d = data;
        int r;

        if (len > KERNEL_IMAGE_MAX)
                return error_setf(-EFBIG, "kernel image larger than %llu MiB", KERNEL_IMAGE_MAX >> 20);
        if (len >= SELFMAG && memcmp(d, ELFMAG, SELFMAG) == 0) {
                info.format = KERNEL_FORMAT_ELF;
                r = kernel_elf_check(data, len);
                if (r < 0)
                        return r;
                /* A vmlinux without a banner is still bootable. */
                (void) kernel_find_linux_version(data, len, info.release, info.banner);
        } else if (len >= BZ_HEADER + 4 && memcmp(d + BZ_HEADER, "HdrS", 4) == 0) {
                info.format = KERNEL_FORMAT_BZIMAGE;
                r = bzimage_identify(d, len, &info);
                if (r < 0)
                        return r;
        } else
                return error_setf(-EBADMSG, "not a kernel: neither an ELF vmlinux nor a bzImage");
        *ret = info;
        return 0;
}

int kernel_image_map_fd(int fd, const void **ret_data, size_t *ret_len) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return error_setf(-EBADMSG, "kernel image is not a regular file");
        if (st.st_size == 0)
                return error_setf(-EBADMSG, "kernel image is empty");
        if ((uint64_t) st.st_size > KERNEL_IMAGE_MAX)
                return error_setf(-EFBIG, "kernel image larger than %llu MiB", KERNEL_IMAGE_MAX >> 20);
        void *p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        *ret_data = p;
        *ret_len = (size_t) st.st_size;
        return 0;
}

void kernel_image_unmap(const void *data, size_t len) {
        if (data)
                (void) munmap((void *) data, len);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_read_free);

/* Only decompressors libarchive has built in: the *_program fallbacks would
 * run an external tool behind the spawn module's back (they return
 * ARCHIVE_WARN), so those are not registered. */
static struct archive *payload_reader_new(void) {
        int (*const filters[])(struct archive *) = {
                archive_read_support_filter_gzip,  archive_read_support_filter_xz,   archive_read_support_filter_lzma,
                archive_read_support_filter_bzip2, archive_read_support_filter_zstd, archive_read_support_filter_lz4,
                archive_read_support_filter_lzop,
        };
        struct archive *a = archive_read_new();
        if (!a)
                return NULL;
        if (archive_read_support_format_raw(a) != ARCHIVE_OK) {
                archive_read_free(a);
                return NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(filters); i++) {
                struct archive *probe = archive_read_new();
                bool builtin = probe && filters[i](probe) == ARCHIVE_OK;
                if (probe)
                        archive_read_free(probe);
                if (builtin)
                        (void) filters[i](a);
        }
        return a;
}

/* Read the decompressed stream into a growing buffer, stopping the moment
 * it passes what the payload announced (else KERNEL_IMAGE_MAX): a payload
 * that inflates further is never read to its end. */
static int payload_read_all(struct archive *a, size_t announced, void **ret, size_t *ret_len) {
        size_t limit = announced ? announced : KERNEL_IMAGE_MAX, n = 0;
        /* One byte more than allowed, to see a stream that goes past it. */
        size_t cap = MIN(limit + 1, (size_t) 64 << 20);
        _cleanup_free_ uint8_t *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (n > limit)
                        return announced ? error_setf(-EFBIG,
                                                      "kernel payload: decompresses to more than the %zu bytes its "
                                                      "header announces",
                                                      announced)
                                         : error_setf(-EFBIG, "decompressed kernel larger than %llu MiB",
                                                      KERNEL_IMAGE_MAX >> 20);
                if (n == cap) {
                        size_t ncap = MIN(limit + 1, cap * 2);
                        uint8_t *nb = realloc(buf, ncap);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap = ncap;
                }
                la_ssize_t k = archive_read_data(a, buf + n, cap - n);
                if (k < 0)
                        return error_setf(-EBADMSG, "decompressing the kernel: %s", archive_error_string(a));
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

static int payload_decompress(const uint8_t *p, size_t plen, size_t announced, void **ret, size_t *ret_len) {
        _cleanup_(archive_read_freep) struct archive *a = payload_reader_new();
        struct archive_entry *e;
        if (!a)
                return -ENOMEM;
        if (archive_read_open_memory(a, p, plen) != ARCHIVE_OK || archive_read_next_header(a, &e) != ARCHIVE_OK)
                return error_setf(-EBADMSG, "kernel payload: %s", archive_error_string(a));
        /* Filter 0 is the decompressor, the last is "none": one level only. */
        if (archive_filter_count(a) != 2)
                return error_setf(-EPROTONOSUPPORT, "kernel payload: compression not supported by libarchive");
        return payload_read_all(a, announced, ret, ret_len);
}

int kernel_image_extract_elf(const void *data, size_t len, const KernelImageInfo *info, void **ret_elf,
                             size_t *ret_elf_len) {
        _cleanup_free_ void *elf = NULL;
        size_t elf_len = 0;

        if (info->format != KERNEL_FORMAT_BZIMAGE || !range_ok(info->payload_offset, info->payload_length, len) ||
            info->payload_length < 8)
                return -EINVAL;
        const uint8_t *p = (const uint8_t *) data + info->payload_offset;
        /* Every kernel compressor but gzip appends the 4-byte size after
         * its stream (scripts/Makefile.lib size_append); hide it from the
         * decompressor, which would see trailing garbage. */
        size_t plen = info->payload_length - (info->compression == KERNEL_COMPRESSION_GZIP ? 0 : 4);
        if (info->payload_uncompressed_size > KERNEL_IMAGE_MAX)
                return error_setf(-EFBIG, "kernel payload: announces %" PRIu64 " bytes, more than %llu MiB",
                                  info->payload_uncompressed_size, KERNEL_IMAGE_MAX >> 20);
        int r = payload_decompress(p, plen, (size_t) info->payload_uncompressed_size, &elf, &elf_len);
        if (r < 0)
                return r;
        if (info->payload_uncompressed_size && (elf_len & 0xffffffffU) != info->payload_uncompressed_size)
                return error_setf(-EBADMSG, "kernel payload: decompressed to %zu bytes, header says %" PRIu64, elf_len,
                                  info->payload_uncompressed_size);
        r = kernel_elf_check(elf, elf_len);
        if (r < 0)
                return error_setf(r, "kernel payload is not a usable ELF: %s", error_last_message());
        *ret_elf_len = (size_t) elf_extent(elf, elf_len);
        *ret_elf = TAKE_PTR(elf);
        return 0;
}
