/* SPDX-License-Identifier: MIT */
#include "oci-ext4.h"

#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "error.h"
#include "ext2fs-util.h"
#include "log.h"
#include "string-util.h"
#include "workdisk.h"

#define BLOCK 4096U
#define COPY_CHUNK (256U << 10)

typedef struct Writer {
        ext2_filsys fs;
        OciTree *tree;
        uint64_t done, total;
        OciExt4ProgressFn progress;
        void *userdata;
        char *buf; /* COPY_CHUNK */
} Writer;

static int fail(errcode_t e, const char *what, const char *name) {
        return error_setf(libext2fs_error_to_errno(e), "ext4 image: %s \"%s\": %s", what, name ? name : "/",
                          libext2fs_error_text(e));
}

uint64_t oci_ext4_image_size(OciTree *t, uint64_t min_size) {
        uint64_t bytes, inodes;
        oci_tree_stats(t, &bytes, &inodes);
        /* Each inode costs its 256-byte slot on top of the data. */
        uint64_t need = (bytes + inodes * 256) / 2 * 3;
        uint64_t size = MAX(need, min_size);
        return (size + (1ULL << 20) - 1) & ~((1ULL << 20) - 1);
}

static void inode_set_common(struct ext2_inode *inode, const OciInode *oi) {
        inode->i_uid = (__u16) (oi->uid & 0xffff);
        ext2fs_set_i_uid_high(*inode, oi->uid >> 16);
        inode->i_gid = (__u16) (oi->gid & 0xffff);
        ext2fs_set_i_gid_high(*inode, oi->gid >> 16);
        __u32 t = oi->mtime < 0 ? 0 : oi->mtime > UINT32_MAX ? UINT32_MAX : (__u32) oi->mtime;
        inode->i_atime = inode->i_ctime = inode->i_mtime = t;
}

static int link_name(Writer *w, ext2_ino_t parent, const char *name, ext2_ino_t ino, int type) {
        errcode_t e = libext2fs_link(w->fs, parent, name, ino, type);
        return e ? fail(e, "cannot link", name) : 0;
}

static int ftype_of(mode_t mode) {
        switch (mode & S_IFMT) {
        case S_IFREG:
                return EXT2_FT_REG_FILE;
        case S_IFDIR:
                return EXT2_FT_DIR;
        case S_IFLNK:
                return EXT2_FT_SYMLINK;
        case S_IFCHR:
                return EXT2_FT_CHRDEV;
        case S_IFBLK:
                return EXT2_FT_BLKDEV;
        default:
                return EXT2_FT_FIFO;
        }
}

/* A second name for an inode already written. */
static int add_hard_link(Writer *w, ext2_ino_t parent, const char *name, OciInode *oi) {
        int r = link_name(w, parent, name, oi->ext4_ino, ftype_of(oi->mode));
        if (r < 0)
                return r;
        struct ext2_inode inode;
        errcode_t e = ext2fs_read_inode(w->fs, oi->ext4_ino, &inode);
        if (!e) {
                inode.i_links_count++;
                e = ext2fs_write_inode(w->fs, oi->ext4_ino, &inode);
        }
        return e ? fail(e, "cannot update link count of", name) : 0;
}

static bool block_is_zero(const char *p, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (p[i])
                        return false;
        return true;
}

static int report(Writer *w, uint64_t n) {
        w->done += n;
        if (w->progress && w->progress(w->done, w->total, w->userdata) != 0)
                return -ECANCELED;
        return 0;
}

/* Copy the spooled bytes, leaving all-zero blocks as holes. */
static int copy_data(Writer *w, ext2_file_t f, const OciInode *oi, const char *name) {
        for (uint64_t off = 0; off < oi->size;) {
                size_t len = (size_t) MIN((uint64_t) COPY_CHUNK, oi->size - off);
                ssize_t k = pread(w->tree->spool_fd, w->buf, len, (off_t) (oi->spool_off + off));
                if (k != (ssize_t) len)
                        return k < 0 ? -errno : -EIO;
                for (size_t b = 0; b < len; b += BLOCK) {
                        size_t bl = MIN((size_t) BLOCK, len - b);
                        if (block_is_zero(w->buf + b, bl))
                                continue;
                        unsigned written;
                        errcode_t e = ext2fs_file_llseek(f, off + b, EXT2_SEEK_SET, NULL);
                        if (!e)
                                e = ext2fs_file_write(f, w->buf + b, (unsigned) bl, &written);
                        if (e)
                                return fail(e, "cannot write", name);
                }
                off += len;
                int r = report(w, len);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int new_inode(Writer *w, ext2_ino_t parent, const char *name, OciInode *oi, ext2_ino_t *ret) {
        ext2_ino_t ino;
        errcode_t e = ext2fs_new_inode(w->fs, parent, (int) (oi->mode & S_IFMT), NULL, &ino);
        if (e)
                return fail(e, "cannot allocate an inode for", name);
        int r = link_name(w, parent, name, ino, ftype_of(oi->mode));
        if (r < 0)
                return r;
        ext2fs_inode_alloc_stats2(w->fs, ino, +1, 0);
        *ret = ino;
        return 0;
}

static int write_regular(Writer *w, ext2_ino_t parent, const char *name, OciInode *oi) {
        ext2_ino_t ino;
        int r = new_inode(w, parent, name, oi, &ino);
        if (r < 0)
                return r;
        struct ext2_inode inode = {};
        inode.i_mode = (__u16) (LINUX_S_IFREG | (oi->mode & 07777));
        inode_set_common(&inode, oi);
        inode.i_links_count = 1;
        errcode_t e = ext2fs_inode_size_set(w->fs, &inode, oi->size);
        if (!e && ext2fs_has_feature_extents(w->fs->super)) {
                ext2_extent_handle_t h; /* sets up the extent header in i_block */
                if (!(e = ext2fs_extent_open2(w->fs, ino, &inode, &h)))
                        ext2fs_extent_free(h);
        }
        if (!e)
                e = ext2fs_write_new_inode(w->fs, ino, &inode);
        if (e)
                return fail(e, "cannot create", name);
        oi->ext4_ino = ino;
        if (oi->size == 0)
                return 0;
        ext2_file_t f;
        if ((e = ext2fs_file_open(w->fs, ino, EXT2_FILE_WRITE, &f)))
                return fail(e, "cannot open", name);
        r = copy_data(w, f, oi, name);
        e = ext2fs_file_close(f);
        if (r < 0)
                return r;
        return e ? fail(e, "cannot write", name) : 0;
}

static int write_special(Writer *w, ext2_ino_t parent, const char *name, OciInode *oi) {
        ext2_ino_t ino;
        int r = new_inode(w, parent, name, oi, &ino);
        if (r < 0)
                return r;
        struct ext2_inode inode = {};
        inode.i_mode = (__u16) ((oi->mode & S_IFMT) | (oi->mode & 07777));
        inode_set_common(&inode, oi);
        inode.i_links_count = 1;
        /* The kernel's old and new device encodings in i_block (as mke2fs -d). */
        uint32_t ma = oi->rdev_major, mi = oi->rdev_minor;
        if (ma < 256 && mi < 256)
                inode.i_block[0] = ma * 256 + mi;
        else
                inode.i_block[1] = (mi & 0xff) | (ma << 8) | ((mi & ~0xffU) << 12);
        errcode_t e = ext2fs_write_new_inode(w->fs, ino, &inode);
        if (e)
                return fail(e, "cannot create", name);
        oi->ext4_ino = ino;
        return 0;
}

static int fix_attrs(Writer *w, ext2_ino_t ino, const OciInode *oi, const char *name) {
        struct ext2_inode inode;
        errcode_t e = ext2fs_read_inode(w->fs, ino, &inode);
        if (!e) {
                inode.i_mode = (__u16) ((inode.i_mode & LINUX_S_IFMT) | (oi->mode & 07777));
                inode_set_common(&inode, oi);
                e = ext2fs_write_inode(w->fs, ino, &inode);
        }
        return e ? fail(e, "cannot set attributes of", name) : 0;
}

static int write_symlink(Writer *w, ext2_ino_t parent, const char *name, OciInode *oi) {
        errcode_t e = ext2fs_symlink(w->fs, parent, 0, name, oi->target);
        if (e == EXT2_ET_DIR_NO_SPACE) {
                e = ext2fs_expand_dir(w->fs, parent);
                if (!e)
                        e = ext2fs_symlink(w->fs, parent, 0, name, oi->target);
        }
        ext2_ino_t ino = 0;
        if (!e)
                e = ext2fs_lookup(w->fs, parent, name, (int) strlen(name), NULL, &ino);
        if (e)
                return fail(e, "cannot create symlink", name);
        oi->ext4_ino = ino;
        struct ext2_inode inode;
        if (!(e = ext2fs_read_inode(w->fs, ino, &inode))) {
                inode_set_common(&inode, oi);
                e = ext2fs_write_inode(w->fs, ino, &inode);
        }
        return e ? fail(e, "cannot set owner of", name) : 0;
}

static int write_dir(Writer *w, ext2_ino_t parent, const char *name, ext2_ino_t *ret) {
        ext2_ino_t ino;
        errcode_t e = libext2fs_mkdir(w->fs, parent, name, &ino);
        if (e == EXT2_ET_DIR_EXISTS || e == EXT2_ET_FILE_EXISTS) {
                /* lost+found from mkfs: reuse it when it is a directory. */
                struct ext2_inode inode;
                e = ext2fs_lookup(w->fs, parent, name, (int) strlen(name), NULL, &ino);
                if (!e && !(e = ext2fs_read_inode(w->fs, ino, &inode)) && !LINUX_S_ISDIR(inode.i_mode))
                        e = EXT2_ET_FILE_EXISTS;
        }
        if (e)
                return fail(e, "cannot create directory", name);
        *ret = ino;
        return 0;
}

static int write_node(Writer *w, ext2_ino_t parent, OciNode *n);

static int write_children(Writer *w, ext2_ino_t ino, OciNode *dir) {
        for (size_t i = 0; i < dir->n_children; i++) {
                int r = write_node(w, ino, dir->children[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int write_node(Writer *w, ext2_ino_t parent, OciNode *n) {
        OciInode *oi = n->inode;
        if (oi->ext4_ino)
                return add_hard_link(w, parent, n->name, oi);
        switch (oi->mode & S_IFMT) {
        case S_IFDIR: {
                ext2_ino_t ino = 0;
                int r = write_dir(w, parent, n->name, &ino);
                if (r < 0)
                        return r;
                if ((r = write_children(w, ino, n)) < 0)
                        return r;
                return fix_attrs(w, ino, oi, n->name);
        }
        case S_IFREG:
                return write_regular(w, parent, n->name, oi);
        case S_IFLNK:
                return write_symlink(w, parent, n->name, oi);
        default:
                return write_special(w, parent, n->name, oi);
        }
}

static int format(int image_fd, uint64_t size, uint64_t inodes, const char *label) {
        if (ftruncate(image_fd, (off_t) size) < 0)
                return error_setf(-errno, "cannot size the image file: %m");
        char n_inodes[32];
        /* Room for the image's inodes and as many again for the guest. */
        snprintf(n_inodes, sizeof(n_inodes), "%llu", (unsigned long long) MAX(inodes * 2 + 4096, size / 16384));
        const char *args[] = { "-F", "-q",
                               "-t", "ext4",
                               "-b", "4096",
                               "-m", "0",
                               "-N", n_inodes,
                               "-L", label ? label : "banger-root",
                               "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0",
                               NULL };
        return disk_run_e2fs_tool("mkfs.ext4", args, image_fd, 0);
}

static int open_fs(int image_fd, ext2_filsys *ret) {
        ext2_filsys fs = NULL;
        errcode_t e = libext2fs_open_fd(image_fd, &fs);
        if (e)
                return fail(e, "cannot open", NULL);
        if ((e = ext2fs_read_bitmaps(fs))) {
                ext2fs_free(fs);
                return fail(e, "cannot read bitmaps of", NULL);
        }
        *ret = fs;
        return 0;
}

int oci_ext4_write(OciTree *t, int image_fd, uint64_t size, const char *label, OciExt4ProgressFn progress,
                   void *userdata) {
        uint64_t bytes, inodes;
        oci_tree_stats(t, &bytes, &inodes);
        int r = format(image_fd, size, inodes, label);
        if (r < 0)
                return r;
        _cleanup_free_ char *buf = malloc(COPY_CHUNK);
        if (!buf)
                return -ENOMEM;
        Writer w = { .tree = t, .total = bytes, .progress = progress, .userdata = userdata, .buf = buf };
        if ((r = open_fs(image_fd, &w.fs)) < 0)
                return r;
        r = write_children(&w, EXT2_ROOT_INO, t->root);
        if (r == 0)
                r = fix_attrs(&w, EXT2_ROOT_INO, t->root->inode, NULL);
        if (r < 0) {
                ext2fs_free(w.fs);
                return r;
        }
        errcode_t e = ext2fs_close_free(&w.fs);
        if (e)
                return fail(e, "cannot flush", NULL);
        if (fsync(image_fd) < 0)
                return error_setf(-errno, "cannot sync the image file: %m");
        return 0;
}
