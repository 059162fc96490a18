/* SPDX-License-Identifier: MIT */

#include "ext4-edit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk-fault.h"
#include "error.h"
#include "ext2fs-util.h"
#include "fs-util.h"
#include "log.h"

struct Ext4Image {
        ext2_filsys fs;
        int fd; /* the caller's, not owned: synced once at close */
};

/* A guest path split into components. */
typedef struct GuestPath {
        char buf[EXT4_GUEST_PATH_MAX];
        const char *comp[EXT4_GUEST_DEPTH_MAX];
        size_t n;
} GuestPath;

static int fail(errcode_t e, const char *what, const char *path) {
        return error_setf(libext2fs_error_to_errno(e), "ext4 image: %s %s: %s", what, path ?: "",
                          libext2fs_error_text(e));
}

bool ext4_guest_path_is_valid(const char *path) {
        if (!path || path[0] != '/' || path[1] == '\0' || strlen(path) >= EXT4_GUEST_PATH_MAX)
                return false;
        size_t depth = 0;
        for (const char *s = path + 1;;) {
                size_t n = strcspn(s, "/");
                if (n == 0 || n > EXT2_NAME_LEN)
                        return false;
                if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                        return false;
                if (++depth > EXT4_GUEST_DEPTH_MAX)
                        return false;
                s += n;
                if (*s == '\0')
                        return true;
                s++;
        }
}

static int guest_path_split(const char *path, GuestPath *ret) {
        if (!ext4_guest_path_is_valid(path))
                return error_setf(-EINVAL, "invalid guest path '%s'", path ?: "(null)");
        strcpy(ret->buf, path + 1);
        ret->n = 0;
        for (char *s = ret->buf, *slash;; s = slash + 1) {
                ret->comp[ret->n++] = s;
                slash = strchr(s, '/');
                if (!slash)
                        break;
                *slash = '\0';
        }
        return 0;
}

int ext4_image_open_fd(int fd, Ext4Image **ret) {
        int r = disk_fault_point("ext4-open");
        if (r < 0)
                return r;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* A block device is accepted for an assembled dm snapshot. */
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                return error_setf(-EBADFD, "ext4 image is not a regular file or block device");
        ext2_filsys fs = NULL;
        errcode_t e = libext2fs_open_fd_unsynced(fd, &fs);
        if (e)
                return fail(e, "cannot open", NULL);
        if (ext2fs_has_feature_journal_needs_recovery(fs->super)) {
                ext2fs_free(fs);
                return error_setf(-EUCLEAN, "ext4 image: journal needs recovery (run e2fsck first)");
        }
        e = ext2fs_read_bitmaps(fs);
        if (e) {
                ext2fs_free(fs);
                return fail(e, "cannot read bitmaps", NULL);
        }
        Ext4Image *img = calloc(1, sizeof(Ext4Image));
        if (!img) {
                ext2fs_free(fs);
                return -ENOMEM;
        }
        img->fs = fs;
        img->fd = fd;
        *ret = img;
        return 0;
}

int ext4_image_close(Ext4Image *img) {
        if (!img)
                return 0;
        int r = disk_fault_point("ext4-close");
        if (r < 0) {
                ext4_image_abort(img);
                return r;
        }
        /* libext2fs's flush fsyncs twice, before and after the superblock,
         * so that a filesystem in use is never left with a superblock ahead
         * of its data. The images edited here are disks no VM has used yet
         * (a new root or work disk), and a create a crash interrupts is
         * marked failed and its disks discarded: what matters is that all of
         * it is on disk before the create is acknowledged, which the one
         * fsync below gives. */
        errcode_t e = ext2fs_close2(img->fs, EXT2_FLAG_FLUSH_NO_SYNC);
        if (e)
                ext2fs_free(img->fs);
        int fd = img->fd;
        free(img);
        if (e)
                return fail(e, "flushing image failed", NULL);
        return fsync(fd) < 0 ? error_setf(-errno, "fsync of the ext4 image failed: %m") : 0;
}

int ext4_image_new_identity(Ext4Image *img) {
        struct ext2_super_block *sb = img->fs->super;
        /* Checksums are seeded with the UUID unless the seed is stored. */
        if (ext2fs_has_feature_metadata_csum(sb) && !ext2fs_has_feature_csum_seed(sb))
                return error_setf(-EOPNOTSUPP, "ext4 image: a new UUID needs metadata_csum_seed");
        uint8_t id[16], seed[16];
        if (getrandom(id, sizeof(id), 0) != (ssize_t) sizeof(id) ||
            getrandom(seed, sizeof(seed), 0) != (ssize_t) sizeof(seed))
                return -EIO;
        /* Random UUIDs (version 4, RFC 4122 variant), as mke2fs makes them. */
        id[6] = (uint8_t) ((id[6] & 0x0f) | 0x40);
        id[8] = (uint8_t) ((id[8] & 0x3f) | 0x80);
        seed[6] = (uint8_t) ((seed[6] & 0x0f) | 0x40);
        seed[8] = (uint8_t) ((seed[8] & 0x3f) | 0x80);
        memcpy(sb->s_uuid, id, sizeof(id));
        memcpy(sb->s_hash_seed, seed, sizeof(seed));
        ext2fs_mark_super_dirty(img->fs);
        return 0;
}

void ext4_image_abort(Ext4Image *img) {
        if (!img)
                return;
        if (img->fs)
                ext2fs_free(img->fs);
        free(img);
}

static void inode_set_owner(struct ext2_inode *inode, uid_t uid, gid_t gid) {
        inode->i_uid = (__u16) (uid & 0xffff);
        inode->i_uid_high = (__u16) (uid >> 16);
        inode->i_gid = (__u16) (gid & 0xffff);
        inode->i_gid_high = (__u16) (gid >> 16);
}

static int lookup(Ext4Image *img, ext2_ino_t dir, const char *name, ext2_ino_t *ret) {
        errcode_t e = ext2fs_lookup(img->fs, dir, name, (int) strlen(name), NULL, ret);
        if (e == EXT2_ET_FILE_NOT_FOUND)
                return -ENOENT;
        return e ? fail(e, "lookup of", name) : 0;
}

static int read_inode(Ext4Image *img, ext2_ino_t ino, struct ext2_inode *ret) {
        errcode_t e = ext2fs_read_inode(img->fs, ino, ret);
        return e ? fail(e, "cannot read inode of", NULL) : 0;
}

static int new_dir(Ext4Image *img, ext2_ino_t parent, const char *name, mode_t mode, uid_t uid, gid_t gid,
                   ext2_ino_t *ret) {
        ext2_ino_t ino = 0;
        errcode_t e = libext2fs_mkdir(img->fs, parent, name, &ino);
        if (e)
                return fail(e, "cannot create directory", name);
        struct ext2_inode inode;
        int r = read_inode(img, ino, &inode);
        if (r < 0)
                return r;
        inode.i_mode = (__u16) (LINUX_S_IFDIR | (mode & 07777));
        inode_set_owner(&inode, uid, gid);
        e = ext2fs_write_inode(img->fs, ino, &inode);
        if (e)
                return fail(e, "cannot write inode of", name);
        *ret = ino;
        return 0;
}

/* Resolve the first `depth` components as directories, creating missing
 * ones when create is set. Symlinks are refused: resolving them would need
 * the guest's view of the tree, and refusing is always safe. */
static int walk_dirs(Ext4Image *img, const GuestPath *gp, size_t depth, bool create, mode_t mode, uid_t uid, gid_t gid,
                     ext2_ino_t *ret) {
        ext2_ino_t cur = EXT2_ROOT_INO;
        for (size_t i = 0; i < depth; i++) {
                ext2_ino_t next;
                int r = lookup(img, cur, gp->comp[i], &next);
                if (r == -ENOENT && create)
                        r = new_dir(img, cur, gp->comp[i], mode, uid, gid, &next);
                if (r == -ENOENT)
                        return error_setf(r, "guest directory '%s' does not exist", gp->comp[i]);
                if (r < 0)
                        return r;
                struct ext2_inode inode;
                if ((r = read_inode(img, next, &inode)) < 0)
                        return r;
                if (LINUX_S_ISLNK(inode.i_mode))
                        return error_setf(-ELOOP, "guest path component '%s' is a symlink", gp->comp[i]);
                if (!LINUX_S_ISDIR(inode.i_mode))
                        return error_setf(-ENOTDIR, "guest path component '%s' is not a directory", gp->comp[i]);
                cur = next;
        }
        *ret = cur;
        return 0;
}

int ext4_mkdir_p(Ext4Image *img, const char *path, mode_t mode, uid_t uid, gid_t gid) {
        GuestPath gp;
        int r = guest_path_split(path, &gp);
        if (r < 0)
                return r;
        ext2_ino_t ino;
        return walk_dirs(img, &gp, gp.n, true, mode, uid, gid, &ino);
}

/* Parent directory inode and the last component's inode (0 if absent). */
static int resolve(Ext4Image *img, const char *path, GuestPath *gp, ext2_ino_t *ret_parent, ext2_ino_t *ret_ino) {
        int r = guest_path_split(path, gp);
        if (r < 0)
                return r;
        if ((r = walk_dirs(img, gp, gp->n - 1, false, 0, 0, 0, ret_parent)) < 0)
                return r;
        r = lookup(img, *ret_parent, gp->comp[gp->n - 1], ret_ino);
        if (r == -ENOENT) {
                *ret_ino = 0;
                return 0;
        }
        return r;
}

int ext4_set_attrs(Ext4Image *img, const char *path, mode_t mode, uid_t uid, gid_t gid) {
        GuestPath gp;
        ext2_ino_t parent, ino;
        int r = resolve(img, path, &gp, &parent, &ino);
        if (r < 0)
                return r;
        if (ino == 0)
                return error_setf(-ENOENT, "guest path '%s' does not exist", path);
        struct ext2_inode inode;
        if ((r = read_inode(img, ino, &inode)) < 0)
                return r;
        inode.i_mode = (__u16) ((inode.i_mode & LINUX_S_IFMT) | (mode & 07777));
        inode_set_owner(&inode, uid, gid);
        inode.i_ctime = (__u32) time(NULL);
        errcode_t e = ext2fs_write_inode(img->fs, ino, &inode);
        return e ? fail(e, "cannot write inode of", path) : 0;
}

/* Drop one link to a non-directory; free its blocks and xattr block when it
 * was the last. */
static int remove_entry(Ext4Image *img, ext2_ino_t parent, const char *name, ext2_ino_t ino) {
        ext2_filsys fs = img->fs;
        struct ext2_inode inode;
        int r = read_inode(img, ino, &inode);
        if (r < 0)
                return r;
        if (LINUX_S_ISDIR(inode.i_mode))
                return error_setf(-EISDIR, "guest path '%s' is a directory", name);
        errcode_t e = ext2fs_unlink(fs, parent, name, ino, 0);
        if (e)
                return fail(e, "cannot unlink", name);
        if (inode.i_links_count > 1) {
                inode.i_links_count--;
                e = ext2fs_write_inode(fs, ino, &inode);
                return e ? fail(e, "cannot write inode of", name) : 0;
        }
        if (ext2fs_inode_has_valid_blocks2(fs, &inode)) {
                e = ext2fs_punch(fs, ino, &inode, NULL, 0, ~0ULL);
                if (e)
                        return fail(e, "cannot free blocks of", name);
        }
        blk64_t acl = ext2fs_file_acl_block(fs, &inode);
        if (acl) {
                __u32 count = 0;
                e = ext2fs_adjust_ea_refcount3(fs, acl, NULL, -1, &count, ino);
                if (e)
                        return fail(e, "cannot release xattr block of", name);
                if (count == 0)
                        ext2fs_block_alloc_stats2(fs, acl, -1);
                ext2fs_file_acl_block_set(fs, &inode, 0);
        }
        inode.i_links_count = 0;
        inode.i_dtime = (__u32) time(NULL);
        e = ext2fs_write_inode(fs, ino, &inode);
        if (e)
                return fail(e, "cannot write inode of", name);
        ext2fs_inode_alloc_stats2(fs, ino, -1, 0);
        return 0;
}

static int link_entry(Ext4Image *img, ext2_ino_t parent, const char *name, ext2_ino_t ino, int type) {
        errcode_t e = libext2fs_link(img->fs, parent, name, ino, type);
        return e ? fail(e, "cannot link", name) : 0;
}

/* A fresh, empty regular file inode linked at parent/name. */
static int create_file(Ext4Image *img, ext2_ino_t parent, const char *name, uint64_t size, mode_t mode, uid_t uid,
                       gid_t gid, ext2_ino_t *ret) {
        ext2_filsys fs = img->fs;
        ext2_ino_t ino;
        errcode_t e = ext2fs_new_inode(fs, parent, LINUX_S_IFREG | 0600, NULL, &ino);
        if (e)
                return fail(e, "cannot allocate inode for", name);
        int r = link_entry(img, parent, name, ino, EXT2_FT_REG_FILE);
        if (r < 0)
                return r;
        ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
        struct ext2_inode inode = {};
        inode.i_mode = (__u16) (LINUX_S_IFREG | (mode & 07777));
        inode_set_owner(&inode, uid, gid);
        inode.i_atime = inode.i_ctime = inode.i_mtime = (__u32) time(NULL);
        inode.i_links_count = 1;
        if ((e = ext2fs_inode_size_set(fs, &inode, size)))
                return fail(e, "cannot set size of", name);
        if (ext2fs_has_feature_extents(fs->super)) {
                /* Opening an extent handle on a blank inode writes the
                 * extent header into i_block and sets EXTENTS_FL. */
                ext2_extent_handle_t h;
                if ((e = ext2fs_extent_open2(fs, ino, &inode, &h)))
                        return fail(e, "cannot set up extents for", name);
                ext2fs_extent_free(h);
        }
        if ((e = ext2fs_write_new_inode(fs, ino, &inode)))
                return fail(e, "cannot write inode of", name);
        *ret = ino;
        return 0;
}

/* Replace-or-create: returns the parent and, with the old entry gone, the
 * name to create. */
static int prepare_replace(Ext4Image *img, const char *path, GuestPath *gp, ext2_ino_t *ret_parent) {
        ext2_ino_t ino;
        int r = resolve(img, path, gp, ret_parent, &ino);
        if (r < 0)
                return r;
        if (ino != 0)
                return remove_entry(img, *ret_parent, gp->comp[gp->n - 1], ino);
        return 0;
}

typedef ssize_t (*ChunkReader)(void *ctx, void *buf, size_t len);

static int write_content(Ext4Image *img, ext2_ino_t ino, uint64_t size, ChunkReader rd, void *ctx, const char *path) {
        ext2_file_t f;
        errcode_t e = ext2fs_file_open(img->fs, ino, EXT2_FILE_WRITE, &f);
        if (e)
                return fail(e, "cannot open", path);
        char buf[65536];
        uint64_t done = 0;
        int r = 0;
        while (done < size && r == 0) {
                ssize_t n = rd(ctx, buf, (size_t) MIN((uint64_t) sizeof(buf), size - done));
                if (n <= 0) {
                        r = n < 0 ? (int) n : error_setf(-EIO, "source of %s shrank while copying", path);
                        break;
                }
                for (ssize_t w = 0; w < n && r == 0;) {
                        unsigned int got = 0;
                        e = ext2fs_file_write(f, buf + w, (unsigned) (n - w), &got);
                        if (e || got == 0)
                                r = fail(e ?: EXT2_ET_SHORT_WRITE, "cannot write", path);
                        w += got;
                }
                done += (uint64_t) n;
        }
        e = ext2fs_file_close(f);
        if (e && r == 0)
                r = fail(e, "cannot flush", path);
        return r;
}

static int write_file_common(Ext4Image *img, const char *path, uint64_t size, ChunkReader rd, void *ctx, mode_t mode,
                             uid_t uid, gid_t gid) {
        int r = disk_fault_point("ext4-write");
        if (r < 0)
                return r;
        if (size > EXT4_FILE_MAX)
                return error_setf(-EFBIG, "guest file %s is too large (%llu bytes)", path, (unsigned long long) size);
        GuestPath gp;
        ext2_ino_t parent = 0, ino = 0;
        if ((r = prepare_replace(img, path, &gp, &parent)) < 0)
                return r;
        if ((r = create_file(img, parent, gp.comp[gp.n - 1], size, mode, uid, gid, &ino)) < 0)
                return r;
        return write_content(img, ino, size, rd, ctx, path);
}

typedef struct MemSource {
        const char *p;
        size_t left;
} MemSource;

static ssize_t mem_read(void *ctx, void *buf, size_t len) {
        MemSource *m = ctx;
        size_t n = MIN(len, m->left);
        memcpy(buf, m->p, n);
        m->p += n;
        m->left -= n;
        return (ssize_t) n;
}

static ssize_t fd_read(void *ctx, void *buf, size_t len) {
        return loop_read(*(int *) ctx, buf, len);
}

int ext4_write_file(Ext4Image *img, const char *path, const void *data, size_t len, mode_t mode, uid_t uid, gid_t gid) {
        MemSource m = { .p = data, .left = len };
        return write_file_common(img, path, len, mem_read, &m, mode, uid, gid);
}

int ext4_write_file_from_fd(Ext4Image *img, const char *path, int fd, mode_t mode, uid_t uid, gid_t gid) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return error_setf(-EBADFD, "source for guest file %s is not a regular file", path);
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        return write_file_common(img, path, (uint64_t) st.st_size, fd_read, &fd, mode, uid, gid);
}

int ext4_symlink(Ext4Image *img, const char *path, const char *target) {
        int r = disk_fault_point("ext4-symlink");
        if (r < 0)
                return r;
        if (!target || target[0] == '\0' || strlen(target) >= img->fs->blocksize)
                return error_setf(-EINVAL, "invalid symlink target for %s", path);
        GuestPath gp;
        ext2_ino_t parent;
        if ((r = prepare_replace(img, path, &gp, &parent)) < 0)
                return r;
        const char *name = gp.comp[gp.n - 1];
        errcode_t e = ext2fs_symlink(img->fs, parent, 0, name, target);
        if (e == EXT2_ET_DIR_NO_SPACE) {
                e = ext2fs_expand_dir(img->fs, parent);
                if (!e)
                        e = ext2fs_symlink(img->fs, parent, 0, name, target);
        }
        return e ? fail(e, "cannot create symlink", path) : 0;
}

static int resolve_existing(Ext4Image *img, const char *path, ext2_ino_t *ret, struct ext2_inode *ret_inode) {
        GuestPath gp;
        ext2_ino_t parent;
        int r = resolve(img, path, &gp, &parent, ret);
        if (r < 0)
                return r;
        if (*ret == 0)
                return error_setf(-ENOENT, "guest path '%s' does not exist", path);
        return read_inode(img, *ret, ret_inode);
}

int ext4_stat(Ext4Image *img, const char *path, Ext4Stat *ret) {
        ext2_ino_t ino;
        struct ext2_inode inode;
        int r = resolve_existing(img, path, &ino, &inode);
        if (r < 0)
                return r;
        *ret = (Ext4Stat){
                .mode = inode.i_mode,
                .uid = inode_uid(inode),
                .gid = inode_gid(inode),
                .size = EXT2_I_SIZE(&inode),
        };
        return 0;
}

int ext4_read_file(Ext4Image *img, const char *path, size_t max, char **ret, size_t *ret_len) {
        ext2_ino_t ino;
        struct ext2_inode inode;
        int r = resolve_existing(img, path, &ino, &inode);
        if (r < 0)
                return r;
        if (LINUX_S_ISLNK(inode.i_mode))
                return error_setf(-ELOOP, "guest path '%s' is a symlink", path);
        if (!LINUX_S_ISREG(inode.i_mode))
                return error_setf(-EBADFD, "guest path '%s' is not a regular file", path);
        uint64_t size = EXT2_I_SIZE(&inode);
        if (size > max)
                return -EFBIG;
        _cleanup_free_ char *buf = malloc((size_t) size + 1);
        if (!buf)
                return -ENOMEM;
        ext2_file_t f;
        errcode_t e = ext2fs_file_open(img->fs, ino, 0, &f);
        if (e)
                return fail(e, "cannot open", path);
        unsigned int got = 0;
        e = ext2fs_file_read(f, buf, (unsigned) size, &got);
        errcode_t e2 = ext2fs_file_close(f);
        if (e || e2)
                return fail(e ?: e2, "cannot read", path);
        if (got != size)
                return error_setf(-EIO, "short read of guest file %s", path);
        buf[size] = '\0';
        if (ret_len)
                *ret_len = (size_t) size;
        *ret = TAKE_PTR(buf);
        return 0;
}
