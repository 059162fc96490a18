/* SPDX-License-Identifier: MIT */
#include "oci-import.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "oci-digest.h"
#include "oci-ext4.h"
#include "oci-layer.h"
#include "oci-limits.h"
#include "oci-registry.h"
#include "oci-source.h"
#include "oci-tree.h"
#include "path-beneath.h"
#include "string-util.h"

#define AGENT_GUEST_PATH "usr/local/bin/banger-agent"
#define AGENT_COMMAND "/usr/local/bin/banger-agent --setup-network --serve"
#define UNIT_DIR "etc/systemd/system"
#define WANTS_DIR UNIT_DIR "/multi-user.target.wants"
#define INITTAB_MAX (1U << 20)
#define STAGING_MAX_AGE_SEC (24 * 3600)

static const char agent_unit[] = "[Unit]\n"
                                 "Description=banger guest agent\n"
                                 "DefaultDependencies=no\n"
                                 "After=local-fs.target\n"
                                 "Before=network-pre.target ssh.service sshd.service\n"
                                 "Wants=network-pre.target\n"
                                 "\n"
                                 "[Service]\n"
                                 "ExecStart=" AGENT_COMMAND "\n"
                                 "Restart=always\n"
                                 "RestartSec=1\n"
                                 "\n"
                                 "[Install]\n"
                                 "WantedBy=multi-user.target\n";

void oci_import_result_done(OciImportResult *r) {
        free(r->config_json);
        free(r->manifest_digest);
        strv_free(r->blobs);
        *r = (OciImportResult){};
}

typedef struct LayerProgress {
        const OciImportOptions *o;
        uint64_t base, total;
} LayerProgress;

static int layer_progress(uint64_t done, void *userdata) {
        LayerProgress *lp = userdata;
        return lp->o->progress(OCI_PHASE_LAYERS, lp->base + done, lp->total, lp->o->userdata);
}

static int write_progress(uint64_t done, uint64_t total, void *userdata) {
        const OciImportOptions *o = userdata;
        return o->progress(OCI_PHASE_WRITE, done, total, o->userdata);
}

static int open_spool(int dirfd, int *ret) {
        int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0)
                return error_setf(-errno, "cannot create a spool file next to the image: %m");
        *ret = fd;
        return 0;
}

static int apply_layers(const OciImportOptions *o, const OciImageParts *p, OciTree *t) {
        _cleanup_free_ int *fds = calloc(MAX(p->n_layers, 1U), sizeof(int));
        if (!fds)
                return -ENOMEM;
        LayerProgress lp = { .o = o };
        int r = 0;
        size_t opened = 0;
        for (; r == 0 && opened < p->n_layers; opened++) {
                struct stat st;
                int have = oci_image_parts_layer_fd(p, opened);
                fds[opened] = have >= 0 ? RET_NERRNO(fcntl(have, F_DUPFD_CLOEXEC, 3))
                                        : open_beneath(p->dirfd, p->layer_paths[opened], O_RDONLY | O_NOCTTY, 0);
                if (fds[opened] < 0)
                        r = error_setf(fds[opened], "cannot open layer %s: %s", p->layer_paths[opened],
                                       strerror(-fds[opened]));
                else if (fstat(fds[opened], &st) < 0 || !S_ISREG(st.st_mode))
                        r = error_setf(-EBADFD, "layer %s is not a regular file", p->layer_paths[opened]);
                else if (p->layer_sizes[opened] && (uint64_t) st.st_size != p->layer_sizes[opened])
                        r = error_setf(-EBADMSG, "layer %s is %llu bytes, the manifest says %llu",
                                       p->layer_digests[opened], (unsigned long long) st.st_size,
                                       (unsigned long long) p->layer_sizes[opened]);
                else if ((uint64_t) st.st_size > oci_import_max(o) - lp.total)
                        r = oci_limit_error(oci_import_max(o), "the layers of image %s add up to", o->source);
                else
                        lp.total += (uint64_t) st.st_size;
        }
        for (size_t i = 0; r == 0 && i < p->n_layers; i++) {
                struct stat st;
                /* A layer named twice shares its file offset with the other. */
                if (lseek(fds[i], 0, SEEK_SET) < 0) {
                        r = -errno;
                        break;
                }
                r = oci_layer_apply(t, fds[i], p->layer_digests[i], p->layer_digests[i],
                                    o->progress ? layer_progress : NULL, &lp);
                if (r == 0 && fstat(fds[i], &st) == 0)
                        lp.base += (uint64_t) st.st_size;
        }
        for (size_t i = 0; i < opened; i++)
                safe_close(fds[i]);
        return r;
}

static bool tree_has(OciTree *t, const char *path, mode_t type) {
        OciNode *n = oci_tree_lookup(t, path, true);
        return n && (n->inode->mode & S_IFMT) == type;
}

/* /sbin/init is busybox when it links to it by name (Alpine, our test
 * image) or is the same file as /bin/busybox (images that install the
 * applets as hard links). */
static bool init_is_busybox(OciTree *t) {
        OciNode *init = oci_tree_lookup(t, "sbin/init", false);
        if (!init)
                return false;
        if (S_ISLNK(init->inode->mode) && strstr(init->inode->target, "busybox"))
                return true;
        OciNode *target = oci_tree_lookup(t, "sbin/init", true), *bb = oci_tree_lookup(t, "bin/busybox", true);
        return target && bb && target->inode == bb->inode && S_ISREG(bb->inode->mode);
}

/* Busybox's inittab has no id or runlevel fields (it would take the id for
 * a tty to open); sysvinit needs both. */
static int add_inittab_entry(OciTree *t, OciImportResult *res) {
        OciNode *n = oci_tree_lookup(t, "etc/inittab", true);
        if (!n || !S_ISREG(n->inode->mode))
                return 0;
        bool busybox = init_is_busybox(t);
        _cleanup_free_ char *old = NULL, *new = NULL;
        size_t len;
        int r = oci_tree_read_file(t, n, INITTAB_MAX, &old, &len);
        if (r < 0)
                return error_setf(r, "cannot read /etc/inittab of the image: %s", strerror(-r));
        if (strstr(old, AGENT_COMMAND)) {
                res->agent_boot = "inittab";
                return 0;
        }
        bool nl = len == 0 || old[len - 1] == '\n';
        if (asprintf(&new, "%s%s%s:respawn:%s\n", old, nl ? "" : "\n", busybox ? ":" : "bngr:2345", AGENT_COMMAND) < 0)
                return -ENOMEM;
        if ((r = oci_tree_add_file(t, "etc/inittab", new, strlen(new), n->inode->mode & 07777)) < 0)
                return error_setf(r, "cannot update /etc/inittab: %s", strerror(-r));
        res->agent_boot = "inittab";
        return 0;
}

/* ssh.service (Debian, Ubuntu) or sshd.service (Fedora, Arch), wherever
 * the distribution keeps its units. */
static int enable_sshd(OciTree *t, OciImportResult *res) {
        const char *dirs[] = { "/usr/lib/systemd/system", "/lib/systemd/system" };
        const char *units[] = { "ssh.service", "sshd.service" };
        for (size_t u = 0; u < ELEMENTSOF(units); u++)
                for (size_t d = 0; d < ELEMENTSOF(dirs); d++) {
                        _cleanup_free_ char *unit = NULL, *link = NULL;
                        if (asprintf(&unit, "%s/%s", dirs[d], units[u]) < 0 ||
                            asprintf(&link, "%s/%s", WANTS_DIR, units[u]) < 0)
                                return -ENOMEM;
                        if (!tree_has(t, unit, S_IFREG))
                                continue;
                        int r = oci_tree_add_symlink(t, link, unit);
                        if (r < 0)
                                return error_setf(r, "cannot enable %s: %s", units[u], strerror(-r));
                        res->sshd_enabled = true;
                        return 0;
                }
        return 0;
}

static int install_guest_bits(const OciImportOptions *o, OciTree *t, OciImportResult *res) {
        res->has_sshd = tree_has(t, "/usr/sbin/sshd", S_IFREG);
        res->has_systemd =
                tree_has(t, "/usr/lib/systemd/systemd", S_IFREG) || tree_has(t, "/lib/systemd/systemd", S_IFREG);
        int r;
        if (res->has_systemd && res->has_sshd && (r = enable_sshd(t, res)) < 0)
                return r;
        if (!o->agent_path)
                return 0;
        _cleanup_close_ int fd = open(o->agent_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return error_setf(-errno, "cannot open the agent binary %s: %m", o->agent_path);
        if ((r = oci_tree_add_file_from_fd(t, AGENT_GUEST_PATH, fd, 0755)) < 0)
                return error_setf(r, "cannot install the agent into the image: %s", strerror(-r));
        res->agent_installed = true;
        if (!res->has_systemd)
                return add_inittab_entry(t, res);
        if ((r = oci_tree_add_file(t, UNIT_DIR "/banger-agent.service", agent_unit, strlen(agent_unit), 0644)) < 0 ||
            (r = oci_tree_add_symlink(t, WANTS_DIR "/banger-agent.service", "/" UNIT_DIR "/banger-agent.service")) < 0)
                return error_setf(r, "cannot install the agent's unit: %s", strerror(-r));
        res->agent_boot = "systemd";
        return 0;
}

static int check_platform(const OciImportOptions *o, const OciImageConfig *c) {
        if (c->os && !streq(c->os, o->os))
                return error_setf(-EOPNOTSUPP, "the image is for %s, not %s", c->os, o->os);
        if (c->architecture && !streq(c->architecture, o->arch))
                return error_setf(-EOPNOTSUPP, "the image is for %s, not %s", c->architecture, o->arch);
        return 0;
}

/* Write the image to an unnamed file and name it only when it is whole. */
static int write_image(const OciImportOptions *o, OciTree *t, OciImportResult *res) {
        uint64_t inodes;
        oci_tree_stats(t, &res->content_size, &inodes);
        res->image_size = oci_ext4_image_size(t, o->min_size ? o->min_size : OCI_IMPORT_MIN_SIZE);
        /* The image holds what the spool holds (zero blocks stay holes in both). */
        struct stat st;
        if (fstat(t->spool_fd, &st) < 0)
                return -errno;
        int r = oci_check_free(o->out_dirfd, (uint64_t) st.st_blocks * 512, "the image file");
        if (r < 0)
                return r;
        _cleanup_close_ int fd = openat(o->out_dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
        if (fd < 0)
                return error_setf(-errno, "cannot create the image file: %m");
        r = oci_ext4_write(t, fd, res->image_size, NULL, o->progress ? write_progress : NULL, (void *) o);
        if (r < 0)
                return r;
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        if (linkat(AT_FDCWD, proc, o->out_dirfd, o->out_name, AT_SYMLINK_FOLLOW) < 0)
                return error_setf(-errno, "cannot name the image %s: %m", o->out_name);
        if (fsync(o->out_dirfd) < 0)
                return -errno;
        return 0;
}

static int import_parts(const OciImportOptions *o, OciImageParts *p, OciImportResult *res) {
        int r = check_platform(o, &p->config);
        if (r < 0)
                return r;
        int spool = -EBADF;
        if ((r = open_spool(o->out_dirfd, &spool)) < 0)
                return r;
        _cleanup_oci_tree_ OciTree *t = NULL;
        if ((r = oci_tree_new(spool, &t)) < 0)
                return r;
        /* Half the free space for the spool: the image written from it
         * needs as much again. */
        uint64_t avail;
        if ((r = oci_free_bytes(o->out_dirfd, &avail)) < 0)
                return error_setf(r, "cannot tell the free space next to the image: %m");
        oci_tree_set_spool_limits(t, oci_import_max(o), avail / 2);
        if ((r = apply_layers(o, p, t)) < 0)
                return r;
        if ((r = install_guest_bits(o, t, res)) < 0)
                return r;
        if ((r = write_image(o, t, res)) < 0)
                return r;
        oci_image_parts_publish(p, o->cache_dirfd);
        res->config_json = TAKE_PTR(p->config.runtime_json);
        res->manifest_digest = TAKE_PTR(p->manifest_digest);
        res->blobs = TAKE_PTR(p->blobs);
        return 0;
}

int oci_import(const OciImportOptions *opts, OciImportResult *ret) {
        OciImportOptions o = *opts;
        if (!o.source || !o.out_name || o.cache_dirfd < 0 || o.out_dirfd < 0)
                return -EINVAL;
        if (!path_beneath_is_valid(o.out_name) || strchr(o.out_name, '/'))
                return error_setf(-EINVAL, "invalid image file name \"%s\"", o.out_name);
        if (!o.os)
                o.os = "linux";
        if (!o.arch)
                o.arch = "amd64";
        struct stat st;
        if (fstatat(o.out_dirfd, o.out_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return error_setf(-EEXIST, "%s exists already", o.out_name);
        OciImageParts p;
        int r = oci_source_open(&o, &p);
        if (r < 0)
                return r;
        OciImportResult res = {};
        r = import_parts(&o, &p, &res);
        oci_image_parts_done(&p);
        if (r < 0) {
                oci_import_result_done(&res);
                return r;
        }
        *ret = res;
        return 0;
}

static void prune_staging(int cache_dirfd, bool dry_run) {
        _cleanup_close_ int fd = open_dir_nofollow(cache_dirfd, "tmp");
        if (fd < 0)
                return;
        DIR *d = fdopendir(fd);
        if (!d)
                return;
        fd = -EBADF;
        time_t now = time(NULL);
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                if (!startswith(de->d_name, "import-") || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    now - st.st_mtime < STAGING_MAX_AGE_SEC || dry_run)
                        continue;
                int r = oci_rm_rf_at(dirfd(d), de->d_name);
                if (r < 0)
                        log_debug("cannot remove stale staging %s: %s", de->d_name, strerror(-r));
        }
        closedir(d);
}

int oci_cache_prune(int cache_dirfd, bool dry_run, OciBlobKeepFn keep, OciBlobVisitFn visit, void *userdata,
                    OciPruneStats *ret) {
        OciPruneStats stats = {};
        prune_staging(cache_dirfd, dry_run);
        _cleanup_close_ int blobs = open_dir_nofollow(cache_dirfd, OCI_CACHE_BLOB_DIR);
        if (blobs == -ENOENT) {
                if (ret)
                        *ret = stats;
                return 0;
        }
        if (blobs < 0)
                return error_setf(blobs, "cannot open the blob cache: %s", strerror(-blobs));
        DIR *d = fdopendir(blobs);
        if (!d)
                return -errno;
        blobs = -EBADF;
        int r = 0;
        for (struct dirent *de; (de = readdir(d));) {
                char digest[OCI_DIGEST_STRLEN];
                struct stat st;
                if (snprintf(digest, sizeof(digest), "sha256:%s", de->d_name) >= (int) sizeof(digest) ||
                    !oci_digest_is_valid(digest) || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    (keep && keep(digest, userdata)))
                        continue;
                if (!dry_run && unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        if (r == 0)
                                r = error_setf(-errno, "cannot remove blob %s: %m", digest);
                        continue;
                }
                if (visit)
                        visit(digest, (uint64_t) st.st_size, userdata);
                stats.n_blobs++;
                stats.bytes += (uint64_t) st.st_size;
        }
        closedir(d);
        if (ret)
                *ret = stats;
        return r;
}
