/* SPDX-License-Identifier: MIT */
#pragma once

/* A tiny initramfs for distribution kernels whose virtio and ext4 drivers
 * are modules (Debian's): a static busybox, the root-disk modules in
 * dependency order (busybox insmod resolves nothing itself), and an /init
 * that loads them, waits for the root device, mounts it and switch_roots to
 * its /sbin/init. Written as a gzip'd newc cpio with libarchive, so no cpio,
 * gzip or mknod is run and /dev/console exists even when built unprivileged.
 * The output is reproducible (mtime 0, root-owned). */

#include <stddef.h>

#define INITRAMFS_MODULES_MAX 64

/* Resolve virtio_mmio, virtio_blk, ext4 (required) and crc32c_generic,
 * virtio_pci (optional) against modules_fd (lib/modules/<ver>, with modules.dep as
 * depmod writes it) into module paths relative to it, dependencies first,
 * each once. Built-in drivers (modules.builtin) are left out. -ENOENT with a
 * message naming a required module the kernel lacks. */
int initramfs_resolve_modules(int modules_fd, char ***ret_paths);

/* Build the initramfs into out_dirfd/out_name (created 0644, O_EXCL).
 * busybox is the path of a statically linked busybox with switch_root. */
int initramfs_build(int modules_fd, const char *busybox, int out_dirfd, const char *out_name);
