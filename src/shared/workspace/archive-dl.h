/* SPDX-License-Identifier: MIT */
#pragma once

/* libarchive for vm cp and the workspaces (cp-stream.c), loaded when a copy
 * starts, and for catalog build (catalog-dl.c) (dlopen-lib.h): with libxml2,
 * ICU and libstdc++ behind it, linking it cost every banger process about
 * 3.5 ms here. */

#include <archive.h>
#include <archive_entry.h>

#include "dlopen-lib.h"

#define ARCHIVE_DL_SYMBOLS(X)                      \
        X(archive_entry_copy_hardlink)             \
        X(archive_entry_copy_pathname)             \
        X(archive_entry_copy_stat)                 \
        X(archive_entry_copy_symlink)              \
        X(archive_entry_filetype)                  \
        X(archive_entry_free)                      \
        X(archive_entry_hardlink)                  \
        X(archive_entry_linkify)                   \
        X(archive_entry_linkresolver_free)         \
        X(archive_entry_linkresolver_new)          \
        X(archive_entry_linkresolver_set_strategy) \
        X(archive_entry_new)                       \
        X(archive_entry_pathname)                  \
        X(archive_entry_set_filetype)              \
        X(archive_entry_set_gname)                 \
        X(archive_entry_set_mtime)                 \
        X(archive_entry_set_nlink)                 \
        X(archive_entry_set_pathname)              \
        X(archive_entry_set_perm)                  \
        X(archive_entry_set_size)                  \
        X(archive_entry_set_uname)                 \
        X(archive_entry_size)                      \
        X(archive_entry_sparse_add_entry)          \
        X(archive_entry_sparse_clear)              \
        X(archive_entry_symlink)                   \
        X(archive_errno)                           \
        X(archive_error_string)                    \
        X(archive_format)                          \
        X(archive_read_data)                       \
        X(archive_read_data_block)                 \
        X(archive_read_disk_descend)               \
        X(archive_read_disk_new)                   \
        X(archive_read_disk_open)                  \
        X(archive_read_disk_set_behavior)          \
        X(archive_read_disk_set_symlink_physical)  \
        X(archive_read_free)                       \
        X(archive_read_new)                        \
        X(archive_read_next_header)                \
        X(archive_read_next_header2)               \
        X(archive_read_open_fd)                    \
        X(archive_read_support_filter_zstd)        \
        X(archive_read_support_format_tar)         \
        X(archive_write_add_filter_zstd)           \
        X(archive_write_close)                     \
        X(archive_write_data)                      \
        X(archive_write_data_block)                \
        X(archive_write_disk_new)                  \
        X(archive_write_disk_set_options)          \
        X(archive_write_finish_entry)              \
        X(archive_write_free)                      \
        X(archive_write_header)                    \
        X(archive_write_new)                       \
        X(archive_write_open_fd)                   \
        X(archive_write_set_bytes_in_last_block)   \
        X(archive_write_set_format_pax)            \
        X(archive_write_set_format_pax_restricted)

ARCHIVE_DL_SYMBOLS(DLSYM_DECLARE)

/* 0, or -ENOPKG with the cause recorded (error_setf). */
int archive_dl_open(void);
