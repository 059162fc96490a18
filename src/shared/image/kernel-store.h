/* SPDX-License-Identifier: MIT */
#pragma once

/* Imported kernels: files under <state>/kernels/<name>/ plus a row in the
 * store.
 *
 *   vmlinux        always an x86_64 ELF (what Firecracker boots)
 *   bzImage        the original file, when it was a compressed bzImage
 *   initrd         optional
 *   modules/<ver>/ optional: the lib/modules/<ver> tree, modes kept,
 *                  symlinks copied as symlinks
 *   manifest.json  {name, version, banner, format, compression,
 *                   files: {vmlinux|bzImage|initrd: {size, sha256}},
 *                   modules_version, created_at}
 *
 * An import is built in <state>/kernels/.tmp-<name>-XXXXXX, renamed into
 * place (never over an existing directory) and only then recorded; if the
 * store refuses the row the directory is removed again. A removal deletes
 * the row first (the store refuses with -EBUSY while an image or VM uses the
 * kernel) and the files after. The KernelRecord's kernel_path is what QEMU
 * boots (bzImage when there is one, else vmlinux), elf_path is vmlinux, and
 * size/sha256 describe the kernel_path file.
 *
 * Errors are -errno with a sentence recorded through error_setf(). */

#include <jansson.h>

#include "progress.h"
#include "store.h"

#define KERNEL_STORE_DIR "kernels"
#define KERNEL_MANIFEST "manifest.json"

typedef struct KernelImportOptions {
        const char *name; /* name_is_valid() */
        /* A kernel file (bzImage or ELF vmlinux), or a directory holding one
         * as vmlinuz-*, vmlinux*, bzImage (also under boot/), an optional
         * initrd.img-* / initrd* and an optional lib/modules/<ver>/ (also
         * usr/lib/modules, modules): a `dpkg -x` of a Debian linux-image
         * package works as is. Inside a directory nothing is reached through
         * a symlink. */
        const char *from;
        const char *initrd;  /* optional initrd file; overrides one found in from */
        const char *modules; /* optional lib/modules/<ver> directory; overrides */
        Progress progress;   /* stages "identify", "decompress", "copy", "register" */
        /* Put the directory in place but write no row: the caller records
         * *ret (with the image it came with, in one transaction) and removes
         * the directory with kernel_store_remove_files() if that fails. */
        bool unrecorded;
} KernelImportOptions;

/* Import; on success *ret (may be NULL) holds the new record. -EEXIST when
 * the name is taken, -EBADMSG/-EPROTONOSUPPORT for a file that is not a
 * usable kernel, -ENOTUNIQ when a directory holds several candidates. */
int kernel_store_import(Store *s, const char *state_dir, const KernelImportOptions *o, KernelRecord *ret);

/* Find by exact name, else by unique id prefix (-ENOENT, or -ENOTUNIQ for an
 * ambiguous prefix). */
int kernel_store_lookup(Store *s, const char *name_or_id, KernelRecord *ret);

/* Remove by name or id: the row first (-EBUSY, with the users named, while
 * an image or VM refers to it), then <state>/kernels/<name>. */
int kernel_store_remove(Store *s, const char *state_dir, const char *name_or_id);

/* Remove <state>/kernels/<name> (an unrecorded import's files). */
int kernel_store_remove_files(const char *state_dir, const char *name);

/* Remove leftovers of interrupted imports: .tmp-* directories, and kernel
 * directories no row refers to. Call at daemon start, before imports run. */
int kernel_store_sweep(Store *s, const char *state_dir);

/* {"id","name","version","vmlinux","kernel","initrd","modules","size",
 *  "sha256","created_at"} (docs/protocol.md), paths null when absent. */
json_t *kernel_record_to_json(const KernelRecord *k);
/* {"kernels": [...]} */
int kernel_store_list_json(Store *s, json_t **ret);
/* The record's JSON plus "manifest" (the parsed manifest.json, or null when
 * it cannot be read). */
int kernel_store_show_json(Store *s, const char *name_or_id, json_t **ret);

/* The file a VMM boots: Firecracker only boots an ELF, so it always gets
 * vmlinux (elf_path); QEMU gets vmlinux too when it has a PVH entry point
 * (kernel_elf_has_pvh_entry()), else kernel_path (the bzImage when there is
 * one). Reads vmlinux's headers to decide. */
const char *kernel_record_boot_path(const KernelRecord *k, VmmKind vmm);
