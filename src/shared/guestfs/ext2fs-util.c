/* SPDX-License-Identifier: MIT */

/* Messages come from the ext2 error table directly (com_err's
 * error_message() would do the same through a global registry). */
#include "ext2fs-util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *libext2fs_error_text(errcode_t e) {
        if (e > 0 && e < 4096)
                return strerror((int) e);
        const struct error_table *t = &et_ext2_error_table;
        if (e >= t->base && e < t->base + t->n_msgs)
                return t->msgs[e - t->base];
        return "unknown libext2fs error";
}

int libext2fs_error_to_errno(errcode_t e) {
        if (e > 0 && e < 4096)
                return -(int) e; /* unix_io passes system errors through */
        switch (e) {
        case EXT2_ET_FILE_NOT_FOUND:
                return -ENOENT;
        case EXT2_ET_DIR_EXISTS:
        case EXT2_ET_FILE_EXISTS:
                return -EEXIST;
        case EXT2_ET_NO_DIRECTORY:
                return -ENOTDIR;
        case EXT2_ET_NO_MEMORY:
                return -ENOMEM;
        case EXT2_ET_BLOCK_ALLOC_FAIL:
        case EXT2_ET_INODE_ALLOC_FAIL:
        case EXT2_ET_DIR_NO_SPACE:
                return -ENOSPC;
        case EXT2_ET_RO_FILSYS:
                return -EROFS;
        case EXT2_ET_FILE_TOO_BIG:
                return -EFBIG;
        case EXT2_ET_SYMLINK_LOOP:
                return -ELOOP;
        case EXT2_ET_INVALID_ARGUMENT:
                return -EINVAL;
        case EXT2_ET_UNSUPP_FEATURE:
        case EXT2_ET_RO_UNSUPP_FEATURE:
                return -EOPNOTSUPP;
        case EXT2_ET_BAD_MAGIC:
        case EXT2_ET_DIR_CORRUPTED:
        case EXT2_ET_TOOSMALL:
                return -EUCLEAN;
        default:
                return -EIO;
        }
}

errcode_t libext2fs_open_fd(int fd, ext2_filsys *ret) {
        char name[64];
        snprintf(name, sizeof(name), "/proc/self/fd/%d", fd);
        return ext2fs_open2(name, NULL, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, unix_io_manager, ret);
}

errcode_t libext2fs_mkdir(ext2_filsys fs, ext2_ino_t parent, const char *name, ext2_ino_t *ret) {
        ext2_ino_t ino;
        errcode_t e = ext2fs_new_inode(fs, parent, LINUX_S_IFDIR | 0755, NULL, &ino);
        if (!e)
                e = ext2fs_mkdir(fs, parent, ino, name);
        if (e == EXT2_ET_DIR_NO_SPACE) {
                e = ext2fs_expand_dir(fs, parent);
                if (!e)
                        e = ext2fs_mkdir(fs, parent, ino, name);
        }
        if (!e)
                *ret = ino;
        return e;
}

errcode_t libext2fs_link(ext2_filsys fs, ext2_ino_t parent, const char *name, ext2_ino_t ino, int type) {
        errcode_t e = ext2fs_link(fs, parent, name, ino, type);
        if (e == EXT2_ET_DIR_NO_SPACE) {
                e = ext2fs_expand_dir(fs, parent);
                if (!e)
                        e = ext2fs_link(fs, parent, name, ino, type);
        }
        return e;
}
