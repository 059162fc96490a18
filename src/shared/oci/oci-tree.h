/* SPDX-License-Identifier: MIT */
#pragma once

/* The root filesystem of an image as it is assembled from its layers: an
 * in-memory tree of names over shared inodes (so hard links are one inode
 * with several names), with file bytes spooled to one unlinked temp file.
 * Layers are applied in order with OCI whiteout semantics; the finished tree
 * is written to ext4 in one pass (oci-ext4.h). Nothing is extracted to the
 * host filesystem, so no symlink in an image can ever be followed on the
 * host: a layer entry whose path runs through a symlink is refused instead
 * (the "symlink, then a file beneath it" trick), as are ".." components and
 * hard links that leave the tree. Absolute symlink targets are kept as they
 * are: they are only ever resolved by the guest, inside its own root. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "macro.h"

#define OCI_PATH_MAX 4096
#define OCI_NAME_MAX 255
#define OCI_DEPTH_MAX 128
#define OCI_TREE_NODES_MAX (2U << 20)
#define OCI_SYMLINK_MAX 4095
/* Everything spooled over all layers, including replaced files, unless
 * oci_tree_set_spool_limits() says otherwise. */
#define OCI_SPOOL_MAX (64ULL << 30)

typedef struct OciInode {
        unsigned refs; /* names pointing here */
        mode_t mode;   /* S_IFMT and permission bits (07777) */
        uint32_t uid, gid;
        int64_t mtime;
        uint64_t size;      /* regular: bytes; symlink: target length */
        uint64_t spool_off; /* regular: offset of the bytes in the spool */
        char *target;       /* symlink target, verbatim */
        uint32_t rdev_major, rdev_minor;
        uint32_t ext4_ino; /* assigned by the ext4 writer */
        bool seen;         /* walk marker */
} OciInode;

typedef struct OciNode {
        char *name; /* NULL for the root */
        OciInode *inode;
        struct OciNode *parent;
        struct OciNode **children; /* directories: sorted by name */
        size_t n_children, n_allocated;
        unsigned layer; /* last layer that created, declared or walked through it */
} OciNode;

typedef struct OciTree {
        OciNode *root;
        int spool_fd;
        uint64_t spool_end;
        uint64_t spool_max;       /* spool_end may not pass this */
        uint64_t spool_space_max; /* bytes the spool may take on disk */
        size_t n_nodes;
        unsigned layer; /* layer being applied, 1-based */
} OciTree;

/* One layer entry, as the tar reader hands it over. */
typedef struct OciEntry {
        const char *path;
        mode_t mode; /* S_IFMT | 07777; ignored for hard links */
        uint32_t uid, gid;
        int64_t mtime;
        uint64_t size;        /* regular files */
        uint64_t spool_off;   /* regular files: already written to the spool */
        const char *symlink;  /* S_IFLNK: the target */
        const char *hardlink; /* non-NULL: a hard link to this archive path */
        uint32_t rdev_major, rdev_minor;
} OciEntry;

/* Takes ownership of spool_fd (a read-write temp file). */
int oci_tree_new(int spool_fd, OciTree **ret);
void oci_tree_free(OciTree *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(OciTree *, oci_tree_free);
#define _cleanup_oci_tree_ _cleanup_(oci_tree_freep)

/* Canonical form of an archive path: leading "/" and "./" and empty or "."
 * components dropped, trailing "/" dropped; "" is the root. ".."
 * anywhere: -EINVAL; too long or too deep: -ENAMETOOLONG. */
int oci_path_normalize(const char *path, char **ret);

/* Where the symlink at normalized path with a relative target points, in the
 * same canonical form, ".." resolved lexically; -EXDEV for an absolute
 * target or one that climbs above the root. */
int oci_path_resolve_link(const char *path, const char *target, char **ret);

/* Start applying the next layer. */
void oci_tree_begin_layer(OciTree *t);

/* Apply one entry of the current layer: ".wh.<name>" deletes, ".wh..wh..opq"
 * hides everything lower layers put in its directory, anything else
 * creates or replaces. Refusals name the entry through error_setf(). */
int oci_tree_apply(OciTree *t, const OciEntry *e);

/* Hold the spool to max_content bytes of file content, holes included
 * (-EFBIG naming image_import_max past it), and to max_space bytes taken on
 * disk (-ENOSPC past it). Defaults: OCI_SPOOL_MAX, UINT64_MAX. */
void oci_tree_set_spool_limits(OciTree *t, uint64_t max_content, uint64_t max_space);

/* Reserve size bytes in the spool (block aligned, so the writer can skip
 * holes block by block); returns the offset. */
int oci_tree_spool_reserve(OciTree *t, uint64_t size, uint64_t *ret_off);

/* Write data to reserved spool space at off (each byte once). All-zero
 * blocks are left as holes: reserved space reads back as zeros already. */
int oci_tree_spool_write(OciTree *t, uint64_t off, const void *data, size_t len);

/* Find path inside the tree the way the guest would: symlinks (absolute
 * ones from the tree's root, ".." stopping at the root) are followed, the
 * last one only when follow_final. NULL when missing or looping. */
OciNode *oci_tree_lookup(OciTree *t, const char *path, bool follow_final);

/* Add or replace a regular file (parents are created as 0755 root
 * directories, and must not be symlinks) with data copied into the spool. */
int oci_tree_add_file(OciTree *t, const char *path, const void *data, size_t len, mode_t mode);
/* Same, with the data read from fd (a regular file). */
int oci_tree_add_file_from_fd(OciTree *t, const char *path, int fd, mode_t mode);
int oci_tree_add_symlink(OciTree *t, const char *path, const char *target);

/* Read a regular file's bytes (up to max) from the spool. */
int oci_tree_read_file(OciTree *t, const OciNode *n, size_t max, char **ret, size_t *ret_len);

/* Bytes of file content (each inode once, whole blocks), plus directory
 * and long-symlink blocks; and the number of inodes. */
void oci_tree_stats(OciTree *t, uint64_t *ret_bytes, uint64_t *ret_inodes);

static inline bool oci_node_is_dir(const OciNode *n) {
        return (n->inode->mode & S_IFMT) == S_IFDIR;
}
