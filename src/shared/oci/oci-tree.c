/* SPDX-License-Identifier: MIT */
#include "oci-tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "oci-limits.h"
#include "string-util.h"

#define BLOCK 4096ULL
#define SYMLINK_HOPS_MAX 40

static OciInode *inode_new(mode_t mode, uint32_t uid, uint32_t gid, int64_t mtime) {
        OciInode *i = calloc(1, sizeof(*i));
        if (!i)
                return NULL;
        *i = (OciInode){ .refs = 1, .mode = mode, .uid = uid, .gid = gid, .mtime = mtime };
        return i;
}

static void inode_unref(OciInode *i) {
        if (!i || --i->refs > 0)
                return;
        free(i->target);
        free(i);
}

static void node_free(OciTree *t, OciNode *n) {
        if (!n)
                return;
        for (size_t i = 0; i < n->n_children; i++)
                node_free(t, n->children[i]);
        free(n->children);
        inode_unref(n->inode);
        free(n->name);
        free(n);
        t->n_nodes--;
}

int oci_tree_new(int spool_fd, OciTree **ret) {
        OciTree *t = calloc(1, sizeof(*t));
        if (!t) {
                safe_close(spool_fd);
                return -ENOMEM;
        }
        t->spool_fd = spool_fd;
        t->spool_max = OCI_SPOOL_MAX;
        t->spool_space_max = UINT64_MAX;
        t->root = calloc(1, sizeof(OciNode));
        if (t->root)
                t->root->inode = inode_new(S_IFDIR | 0755, 0, 0, 0);
        if (!t->root || !t->root->inode) {
                oci_tree_free(t);
                return -ENOMEM;
        }
        t->n_nodes = 1;
        *ret = t;
        return 0;
}

void oci_tree_free(OciTree *t) {
        if (!t)
                return;
        node_free(t, t->root);
        safe_close(t->spool_fd);
        free(t);
}

void oci_tree_begin_layer(OciTree *t) {
        t->layer++;
}

/* The components of path, lexically: empty and "." ones dropped; ".." is
 * -EINVAL, or with dotdot drops the last component (-EXDEV above the top). */
static int path_walk(const char *path, bool dotdot, char **ret) {
        size_t len = strlen(path);
        if (len >= OCI_PATH_MAX)
                return -ENAMETOOLONG;
        _cleanup_free_ char *out = malloc(len + 1);
        if (!out)
                return -ENOMEM;
        size_t n = 0, depth = 0;
        for (const char *p = path; *p;) {
                const char *end = strchrnul(p, '/');
                size_t l = (size_t) (end - p);
                if (l == 2 && p[0] == '.' && p[1] == '.') {
                        if (!dotdot)
                                return -EINVAL;
                        if (n == 0)
                                return -EXDEV;
                        while (n > 0 && out[n - 1] != '/')
                                n--;
                        if (n > 0)
                                n--;
                        depth--;
                } else if (l > OCI_NAME_MAX)
                        return -ENAMETOOLONG;
                else if (l > 0 && !(l == 1 && p[0] == '.')) {
                        if (++depth > OCI_DEPTH_MAX)
                                return -ENAMETOOLONG;
                        if (n > 0)
                                out[n++] = '/';
                        memcpy(out + n, p, l);
                        n += l;
                }
                p = *end ? end + 1 : end;
        }
        out[n] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

int oci_path_normalize(const char *path, char **ret) {
        return path_walk(path, false, ret);
}

int oci_path_resolve_link(const char *path, const char *target, char **ret) {
        if (target[0] == '/')
                return -EXDEV;
        const char *slash = strrchr(path, '/');
        _cleanup_free_ char *joined = NULL;
        if (asprintf(&joined, "%.*s/%s", slash ? (int) (slash - path) : 0, path, target) < 0)
                return -ENOMEM;
        return path_walk(joined, true, ret);
}

static size_t child_index(const OciNode *dir, const char *name, bool *ret_found) {
        size_t lo = 0, hi = dir->n_children;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = strcmp(dir->children[mid]->name, name);
                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = false;
        return lo;
}

static OciNode *child_find(const OciNode *dir, const char *name) {
        bool found;
        size_t i = child_index(dir, name, &found);
        return found ? dir->children[i] : NULL;
}

static void child_remove(OciTree *t, OciNode *dir, const char *name) {
        bool found;
        size_t i = child_index(dir, name, &found);
        if (!found)
                return;
        OciNode *c = dir->children[i];
        memmove(dir->children + i, dir->children + i + 1, (dir->n_children - i - 1) * sizeof(OciNode *));
        dir->n_children--;
        node_free(t, c);
}

/* Insert a new name for inode (the reference is taken over). The name must
 * not exist yet. */
static int child_insert(OciTree *t, OciNode *dir, const char *name, OciInode *inode, OciNode **ret) {
        if (t->n_nodes >= OCI_TREE_NODES_MAX)
                return -E2BIG;
        bool found;
        size_t i = child_index(dir, name, &found);
        if (found)
                return -EEXIST;
        if (dir->n_children == dir->n_allocated) {
                size_t na = MAX(dir->n_allocated * 2, 8U);
                OciNode **c = reallocarray(dir->children, na, sizeof(OciNode *));
                if (!c)
                        return -ENOMEM;
                dir->children = c;
                dir->n_allocated = na;
        }
        OciNode *n = calloc(1, sizeof(*n));
        if (!n || !(n->name = strdup(name))) {
                free(n);
                return -ENOMEM;
        }
        n->inode = inode;
        n->parent = dir;
        n->layer = t->layer;
        memmove(dir->children + i + 1, dir->children + i, (dir->n_children - i) * sizeof(OciNode *));
        dir->children[i] = n;
        dir->n_children++;
        t->n_nodes++;
        if (ret)
                *ret = n;
        return 0;
}

/* Walk the directories of a normalized path strictly: a symlink or a
 * non-directory on the way is refused, never followed. Missing directories
 * are created (0755, root) when create, else -ENOENT. dirpath is modified. */
static int walk_dirs(OciTree *t, char *dirpath, bool create, const char *entry, OciNode **ret) {
        OciNode *cur = t->root;
        for (char *p = dirpath; p && *p;) {
                char *slash = strchr(p, '/');
                if (slash)
                        *slash = '\0';
                OciNode *c = child_find(cur, p);
                if (!c) {
                        if (!create)
                                return -ENOENT;
                        OciInode *i = inode_new(S_IFDIR | 0755, 0, 0, 0);
                        if (!i)
                                return -ENOMEM;
                        int r = child_insert(t, cur, p, i, &c);
                        if (r < 0) {
                                inode_unref(i);
                                return r;
                        }
                } else if (S_ISLNK(c->inode->mode))
                        return error_setf(-ELOOP, "layer entry \"%s\" goes through the symlink \"%s\"", entry, p);
                else if (!oci_node_is_dir(c))
                        return error_setf(-ENOTDIR, "layer entry \"%s\" goes through the non-directory \"%s\"", entry,
                                          p);
                c->layer = t->layer;
                cur = c;
                if (slash)
                        *slash = '/';
                p = slash ? slash + 1 : NULL;
        }
        *ret = cur;
        return 0;
}

/* Split a normalized path into its directory part (modified in place) and
 * last component. */
static char *split_last(char *path, char **ret_dir) {
        char *slash = strrchr(path, '/');
        if (!slash) {
                *ret_dir = NULL;
                return path;
        }
        *slash = '\0';
        *ret_dir = path;
        return slash + 1;
}

/* Everything below dir that lower layers put there disappears. */
static void purge_lower(OciTree *t, OciNode *dir) {
        for (size_t i = dir->n_children; i > 0; i--) {
                OciNode *c = dir->children[i - 1];
                if (c->layer < t->layer)
                        child_remove(t, dir, c->name);
                else if (oci_node_is_dir(c))
                        purge_lower(t, c);
        }
}

static int apply_whiteout(OciTree *t, char *dir, const char *base, const char *entry) {
        OciNode *parent;
        if (streq(base, ".wh..wh..opq")) {
                int r = walk_dirs(t, dir, true, entry, &parent);
                if (r < 0)
                        return r;
                purge_lower(t, parent);
                return 0;
        }
        if (startswith(base, ".wh..wh."))
                return 0; /* aufs bookkeeping (.wh..wh.plnk, ...): not part of the image */
        const char *victim = base + 4;
        if (!*victim)
                return error_setf(-EINVAL, "layer entry \"%s\" is an empty whiteout", entry);
        int r = walk_dirs(t, dir, false, entry, &parent);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        child_remove(t, parent, victim);
        return 0;
}

static int hardlink_target(OciTree *t, const OciEntry *e, OciInode **ret) {
        if (e->hardlink[0] == '/')
                return error_setf(-EXDEV, "layer entry \"%s\" is a hard link to the absolute path \"%s\"", e->path,
                                  e->hardlink);
        _cleanup_free_ char *p = NULL;
        int r = oci_path_normalize(e->hardlink, &p);
        if (r < 0 || !*p)
                return error_setf(r < 0 ? r : -EINVAL, "layer entry \"%s\" is a hard link to the invalid path \"%s\"",
                                  e->path, e->hardlink);
        char *dir;
        char *base = split_last(p, &dir);
        OciNode *parent;
        r = walk_dirs(t, dir, false, e->path, &parent);
        OciNode *target = r == 0 ? child_find(parent, base) : NULL;
        if (r < 0 && r != -ENOENT)
                return r;
        if (!target)
                return error_setf(-ENOENT, "layer entry \"%s\" is a hard link to \"%s\", which does not exist", e->path,
                                  e->hardlink);
        if (oci_node_is_dir(target))
                return error_setf(-EPERM, "layer entry \"%s\" is a hard link to the directory \"%s\"", e->path,
                                  e->hardlink);
        target->inode->refs++;
        *ret = target->inode;
        return 0;
}

static int entry_inode(OciTree *t, const OciEntry *e, OciInode **ret) {
        if (e->hardlink)
                return hardlink_target(t, e, ret);
        mode_t type = e->mode & S_IFMT;
        if (!S_ISREG(type) && !S_ISDIR(type) && !S_ISLNK(type) && !S_ISCHR(type) && !S_ISBLK(type) && !S_ISFIFO(type))
                return error_setf(-EOPNOTSUPP, "layer entry \"%s\" has an unsupported file type", e->path);
        if (S_ISLNK(type) && (!e->symlink || !*e->symlink || strlen(e->symlink) > OCI_SYMLINK_MAX))
                return error_setf(-EINVAL, "layer entry \"%s\" has an invalid symlink target", e->path);
        OciInode *i = inode_new(type | (e->mode & 07777), e->uid, e->gid, e->mtime);
        if (!i)
                return -ENOMEM;
        if (S_ISLNK(type)) {
                i->mode = S_IFLNK | 0777;
                i->size = strlen(e->symlink);
                if (!(i->target = strdup(e->symlink))) {
                        inode_unref(i);
                        return -ENOMEM;
                }
        } else if (S_ISREG(type)) {
                i->size = e->size;
                i->spool_off = e->spool_off;
        }
        i->rdev_major = e->rdev_major;
        i->rdev_minor = e->rdev_minor;
        *ret = i;
        return 0;
}

/* Create or replace name in parent. A directory over a directory only
 * updates its attributes (its children stay, as tar extraction does). */
static int place(OciTree *t, OciNode *parent, const char *name, OciInode *inode, const char *entry) {
        OciNode *old = child_find(parent, name);
        if (old && oci_node_is_dir(old) && S_ISDIR(inode->mode)) {
                old->inode->mode = inode->mode;
                old->inode->uid = inode->uid;
                old->inode->gid = inode->gid;
                old->inode->mtime = inode->mtime;
                old->layer = t->layer;
                inode_unref(inode);
                return 0;
        }
        if (old)
                child_remove(t, parent, name);
        int r = child_insert(t, parent, name, inode, NULL);
        if (r < 0) {
                inode_unref(inode);
                if (r == -E2BIG)
                        return error_setf(r, "layer entry \"%s\": more than %u entries in the image", entry,
                                          OCI_TREE_NODES_MAX);
        }
        return r;
}

int oci_tree_apply(OciTree *t, const OciEntry *e) {
        _cleanup_free_ char *p = NULL;
        int r = oci_path_normalize(e->path, &p);
        if (r == -EINVAL)
                return error_setf(r, "layer entry \"%s\" has a \"..\" component", e->path);
        if (r < 0)
                return error_setf(r, "layer entry \"%s\": path too long or too deep", e->path);
        if (!*p) {
                if (!S_ISDIR(e->mode) || e->hardlink)
                        return error_setf(-EINVAL, "layer entry \"%s\" replaces the root with a non-directory",
                                          e->path);
                t->root->inode->mode = S_IFDIR | (e->mode & 07777);
                t->root->inode->uid = e->uid;
                t->root->inode->gid = e->gid;
                t->root->inode->mtime = e->mtime;
                return 0;
        }
        char *dir;
        char *base = split_last(p, &dir);
        if (startswith(base, ".wh."))
                return apply_whiteout(t, dir, base, e->path);
        OciInode *inode = NULL;
        if ((r = entry_inode(t, e, &inode)) < 0)
                return r;
        OciNode *parent;
        if ((r = walk_dirs(t, dir, true, e->path, &parent)) < 0) {
                inode_unref(inode);
                return r;
        }
        return place(t, parent, base, inode, e->path);
}

void oci_tree_set_spool_limits(OciTree *t, uint64_t max_content, uint64_t max_space) {
        t->spool_max = max_content;
        t->spool_space_max = max_space;
}

int oci_tree_spool_reserve(OciTree *t, uint64_t size, uint64_t *ret_off) {
        uint64_t blocks = (size + BLOCK - 1) / BLOCK * BLOCK;
        if (size > t->spool_max || blocks > t->spool_max - t->spool_end)
                return oci_limit_error(t->spool_max, "the files of the image add up to");
        *ret_off = t->spool_end;
        t->spool_end += blocks;
        if (ftruncate(t->spool_fd, (off_t) t->spool_end) < 0)
                return -errno;
        return 0;
}

static bool all_zero(const char *p, size_t n) {
        return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* From data[at]: up to the spool's next block boundary. */
static size_t piece_len(uint64_t off, size_t at, size_t len) {
        return MIN(len - at, BLOCK - (off + at) % BLOCK);
}

/* The next run of data to write, [*i, *j): all-zero pieces are skipped
 * and end it. False when only zeros are left. */
static bool next_run(uint64_t off, const char *data, size_t len, size_t *i, size_t *j) {
        while (*i < len && all_zero(data + *i, piece_len(off, *i, len)))
                *i += piece_len(off, *i, len);
        *j = *i;
        while (*j < len && !all_zero(data + *j, piece_len(off, *j, len)))
                *j += piece_len(off, *j, len);
        return *i < len;
}

/* Stop before the spool takes more of the disk than it may. */
static int spool_space_check(OciTree *t, size_t len) {
        if (t->spool_space_max == UINT64_MAX)
                return 0;
        struct stat st;
        if (fstat(t->spool_fd, &st) < 0)
                return -errno;
        if ((uint64_t) st.st_blocks * 512 + len <= t->spool_space_max)
                return 0;
        return error_setf(-ENOSPC,
                          "not enough free space to assemble the image: its files would take more than %llu MiB, "
                          "half of what is free beyond the %llu MiB an import always leaves (the image needs the "
                          "other half)",
                          (unsigned long long) (t->spool_space_max >> 20),
                          (unsigned long long) (OCI_FREE_RESERVE >> 20));
}

int oci_tree_spool_write(OciTree *t, uint64_t off, const void *data, size_t len) {
        const char *p = data;
        size_t i = 0, j = 0;
        while (next_run(off, p, len, &i, &j)) {
                int r = spool_space_check(t, j - i);
                if (r < 0)
                        return r;
                for (size_t done = i; done < j;) {
                        ssize_t k = pwrite(t->spool_fd, p + done, j - done, (off_t) (off + done));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                return k < 0 ? -errno : -EIO;
                        done += (size_t) k;
                }
                i = j;
        }
        return 0;
}

static OciNode *resolve(OciTree *t, OciNode *start, const char *path, bool follow_final, unsigned *hops) {
        OciNode *cur = path[0] == '/' ? t->root : start;
        for (const char *p = path; *p;) {
                const char *end = strchrnul(p, '/');
                size_t l = (size_t) (end - p);
                const char *next = *end ? end + 1 : end;
                char name[OCI_NAME_MAX + 1];
                if (l == 0 || (l == 1 && p[0] == '.')) {
                        p = next;
                        continue;
                }
                if (l > OCI_NAME_MAX || !oci_node_is_dir(cur))
                        return NULL;
                if (l == 2 && p[0] == '.' && p[1] == '.') {
                        cur = cur->parent ? cur->parent : t->root;
                        p = next;
                        continue;
                }
                memcpy(name, p, l);
                name[l] = '\0';
                OciNode *c = child_find(cur, name);
                if (!c)
                        return NULL;
                bool last = strspn(next, "/") == strlen(next);
                if (S_ISLNK(c->inode->mode) && (!last || follow_final)) {
                        if (++*hops > SYMLINK_HOPS_MAX)
                                return NULL;
                        c = resolve(t, cur, c->inode->target, true, hops);
                        if (!c)
                                return NULL;
                }
                cur = c;
                p = next;
        }
        return cur;
}

OciNode *oci_tree_lookup(OciTree *t, const char *path, bool follow_final) {
        unsigned hops = 0;
        return resolve(t, t->root, path, follow_final, &hops);
}

/* Parent directory for a file banger adds itself at path: *ret_p gets the
 * normalized path (freed by the caller), *ret_base its last component. */
static int added_parent(OciTree *t, const char *path, char **ret_p, char **ret_base, OciNode **ret_parent) {
        int r = oci_path_normalize(path, ret_p);
        if (r < 0)
                return r;
        char *dir;
        *ret_base = split_last(*ret_p, &dir);
        if (!**ret_base)
                return -EINVAL;
        return walk_dirs(t, dir, true, *ret_p, ret_parent);
}

static int add_regular(OciTree *t, const char *path, uint64_t size, uint64_t off, mode_t mode) {
        _cleanup_free_ char *p = NULL;
        char *base;
        OciNode *parent;
        int r = added_parent(t, path, &p, &base, &parent);
        if (r < 0)
                return r;
        OciInode *i = inode_new(S_IFREG | (mode & 07777), 0, 0, (int64_t) time(NULL));
        if (!i)
                return -ENOMEM;
        i->size = size;
        i->spool_off = off;
        return place(t, parent, base, i, path);
}

int oci_tree_add_file(OciTree *t, const char *path, const void *data, size_t len, mode_t mode) {
        uint64_t off;
        int r = oci_tree_spool_reserve(t, len, &off);
        if (r < 0)
                return r;
        if ((r = oci_tree_spool_write(t, off, data, len)) < 0)
                return r;
        return add_regular(t, path, len, off, mode);
}

int oci_tree_add_file_from_fd(OciTree *t, const char *path, int fd, mode_t mode) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        uint64_t off;
        int r = oci_tree_spool_reserve(t, (uint64_t) st.st_size, &off);
        if (r < 0)
                return r;
        char buf[65536];
        for (uint64_t done = 0; done < (uint64_t) st.st_size;) {
                ssize_t k = pread(fd, buf, sizeof(buf), (off_t) done);
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EIO; /* shrank while copying */
                k = MIN(k, (ssize_t) ((uint64_t) st.st_size - done));
                if ((r = oci_tree_spool_write(t, off + done, buf, (size_t) k)) < 0)
                        return r;
                done += (uint64_t) k;
        }
        return add_regular(t, path, (uint64_t) st.st_size, off, mode);
}

int oci_tree_add_symlink(OciTree *t, const char *path, const char *target) {
        _cleanup_free_ char *p = NULL;
        char *base;
        OciNode *parent;
        int r = added_parent(t, path, &p, &base, &parent);
        if (r < 0)
                return r;
        OciInode *i = inode_new(S_IFLNK | 0777, 0, 0, (int64_t) time(NULL));
        if (!i || !(i->target = strdup(target))) {
                inode_unref(i);
                return -ENOMEM;
        }
        i->size = strlen(target);
        return place(t, parent, base, i, path);
}

int oci_tree_read_file(OciTree *t, const OciNode *n, size_t max, char **ret, size_t *ret_len) {
        if (!S_ISREG(n->inode->mode))
                return -EISDIR;
        if (n->inode->size > max)
                return -EFBIG;
        size_t len = (size_t) n->inode->size;
        _cleanup_free_ char *buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        for (size_t done = 0; done < len;) {
                ssize_t k = pread(t->spool_fd, buf + done, len - done, (off_t) (n->inode->spool_off + done));
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EIO;
                done += (size_t) k;
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static void stats_clear(OciNode *n) {
        n->inode->seen = false;
        for (size_t i = 0; i < n->n_children; i++)
                stats_clear(n->children[i]);
}

static void stats_walk(OciNode *n, uint64_t *bytes, uint64_t *inodes) {
        OciInode *i = n->inode;
        if (!i->seen) {
                i->seen = true;
                (*inodes)++;
                if (S_ISREG(i->mode))
                        *bytes += (i->size + BLOCK - 1) / BLOCK * BLOCK;
                else if (S_ISLNK(i->mode) && i->size >= 60)
                        *bytes += BLOCK;
        }
        if (!oci_node_is_dir(n))
                return;
        uint64_t dirent_bytes = 0;
        for (size_t k = 0; k < n->n_children; k++) {
                dirent_bytes += 12 + strlen(n->children[k]->name);
                stats_walk(n->children[k], bytes, inodes);
        }
        *bytes += (dirent_bytes / BLOCK + 1) * BLOCK;
}

void oci_tree_stats(OciTree *t, uint64_t *ret_bytes, uint64_t *ret_inodes) {
        uint64_t bytes = 0, inodes = 0;
        stats_clear(t->root);
        stats_walk(t->root, &bytes, &inodes);
        *ret_bytes = bytes;
        *ret_inodes = inodes;
}
