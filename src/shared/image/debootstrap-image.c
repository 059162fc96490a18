/* SPDX-License-Identifier: MIT */
#include "debootstrap-image.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "debian-package.h"
#include "debootstrap-progress.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "initramfs.h"
#include "kernel-store.h"
#include "log.h"
#include "path-beneath.h"
#include "spawn.h"
#include "string-util.h"

#define DEBOOTSTRAP_TIMEOUT (3600 * USEC_PER_SEC)
#define TOOL_TIMEOUT (1800 * USEC_PER_SEC)
#define KERNEL_SUFFIX "-kernel"

/* Build state shared by the stages. */
typedef struct Build {
        const DebootstrapImageOptions *o;
        Store *store;
        const char *state_dir;
        char *tmp_name; /* beneath images/ */
        char *tmp_path; /* absolute */
        int images_fd;
        int tmp_fd;
        char *release; /* kernel release, from the package's lib/modules */
        char *kernel_name;
        KernelRecord kernel;
        bool kernel_imported;
} Build;

bool debootstrap_suite_is_valid(const char *suite) {
        size_t n = suite ? strlen(suite) : 0;
        if (n == 0 || n > 32)
                return false;
        for (const char *c = suite; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
                        return false;
        return true;
}

static char *tmp_join(const Build *b, const char *rel) {
        return path_join(b->tmp_path, rel);
}

/* Run a tool to completion (argv only), its output kept in a log under the
 * build directory; a failure quotes the log's last line. */
static int run_tool(Build *b, char *const argv[], const char *log_name, usec_t timeout) {
        SpawnOptions so;
        Process p = PROCESS_NULL;
        int status = 0;
        _cleanup_close_ int logfd =
                openat(b->tmp_fd, log_name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (logfd < 0)
                return -errno;
        static char *const env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
                                     "DEBIAN_FRONTEND=noninteractive", NULL };
        spawn_options_init(&so);
        so.stdout_fd = so.stderr_fd = logfd;
        so.umask = 022; /* the modes land in the guest */
        so.env = env;
        int r = spawn_process(argv, &so, &p);
        if (r < 0)
                return error_setf(r, "cannot run %s: %m", argv[0]);
        r = process_wait(&p, timeout, &status);
        if (r == -ETIMEDOUT)
                process_kill_and_reap(&p);
        process_release(&p);
        if (r < 0)
                return error_setf(r, "%s did not finish in time", argv[0]);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        (void) read_file_at(b->tmp_fd, log_name, 16U << 20, &text, &len);
        while (text && len > 0 && text[len - 1] == '\n')
                text[--len] = '\0';
        const char *last = text ? (strrchr(text, '\n') ? strrchr(text, '\n') + 1 : text) : "";
        return error_setf(-EIO, "%s failed (status %d): %s", argv[0], status, last);
}

#define DEBOOTSTRAP_LOG "debootstrap.log"

/* One line of debootstrap's output: into the log as it is, to the user as
 * one stage with counts, and kept as the last line for an error message. */
static void debootstrap_line(Build *b, DebootstrapProgress *dp, int log_fd, const char *line, char *last,
                             size_t last_size) {
        char msg[512];
        (void) loop_write(log_fd, line, strlen(line));
        (void) loop_write(log_fd, "\n", 1);
        snprintf(last, last_size, "%s", line);
        if (debootstrap_progress_line(dp, line, msg, sizeof(msg)))
                progress_report(&b->o->progress, "debootstrap", msg, 0, 0);
}

/* Read debootstrap's output until EOF or the deadline, line by line. */
static int debootstrap_follow(Build *b, int fd, int log_fd, char *last, size_t last_size) {
        usec_t deadline = now_monotonic() + DEBOOTSTRAP_TIMEOUT;
        DebootstrapProgress dp = {};
        char buf[4096];
        size_t n = 0;
        for (;;) {
                usec_t now = now_monotonic();
                if (now >= deadline)
                        return error_setf(-ETIMEDOUT, "debootstrap did not finish in time");
                int r = progress_check(&b->o->progress);
                if (r < 0)
                        return r;
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                /* At most 250 ms: a cancel is seen that soon. */
                int ms = (int) MIN((deadline - now) / USEC_PER_MSEC + 1, (usec_t) 250);
                if (poll(&pf, 1, ms) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (!pf.revents)
                        continue;
                ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : 0;
                n += (size_t) k;
                buf[n] = '\0';
                char *nl;
                while ((nl = memchr(buf, '\n', n)) || n == sizeof(buf) - 1) {
                        size_t l = nl ? (size_t) (nl - buf) : n;
                        buf[l] = '\0';
                        if (l > 0)
                                debootstrap_line(b, &dp, log_fd, buf, last, last_size);
                        size_t consumed = nl ? l + 1 : l;
                        memmove(buf, buf + consumed, n - consumed);
                        n -= consumed;
                        buf[n] = '\0';
                }
        }
}

/* debootstrap, its output in a log that stays with the image. */
static int stage_debootstrap(Build *b) {
        _cleanup_free_ char *root = tmp_join(b, "root"), *start = NULL;
        int pfd[2];
        if (!root ||
            asprintf(&start, "starting; its full output goes to %s/" DEBOOTSTRAP_IMAGE_DIR "/%s/" DEBOOTSTRAP_LOG,
                     b->state_dir, b->o->name) < 0)
                return -ENOMEM;
        _cleanup_close_ int log_fd =
                openat(b->tmp_fd, DEBOOTSTRAP_LOG, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (log_fd < 0)
                return -errno;
        progress_report(&b->o->progress, "debootstrap", start, 0, 0);
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        _cleanup_close_ int rd = pfd[0], wr = pfd[1];
        char *argv[] = { (char *) "debootstrap",
                         (char *) "--variant=minbase",
                         (char *) "--include=" DEBOOTSTRAP_INCLUDE,
                         (char *) b->o->suite,
                         root,
                         (char *) b->o->mirror,
                         NULL };
        static char *const env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
                                     "DEBIAN_FRONTEND=noninteractive", NULL };
        SpawnOptions so;
        Process p = PROCESS_NULL;
        spawn_options_init(&so);
        so.stdout_fd = so.stderr_fd = wr;
        so.umask = 022;
        so.env = env;
        so.new_session = true; /* its own process group: a cancel kills what it runs too */
        int r = spawn_process(argv, &so, &p);
        if (r < 0)
                return error_setf(r, "cannot run debootstrap: %m");
        wr = safe_close(wr);
        char last[512] = "";
        r = debootstrap_follow(b, rd, log_fd, last, sizeof(last));
        int status = 0;
        int q = process_wait(&p, r < 0 ? 0 : 10 * USEC_PER_SEC, &status);
        if (q < 0)
                process_group_kill_and_reap(&p);
        process_release(&p);
        if (r < 0)
                return r;
        if (q < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return error_setf(-EIO, "debootstrap %s from %s failed: %s", b->o->suite, b->o->mirror,
                                  last[0] ? last : "no output");
        return 0;
}

/* The suite's main Packages index, as debootstrap fetched and verified it. */
static int open_packages_index(Build *b) {
        _cleanup_close_ int lists = -EBADF;
        _cleanup_free_ char *pattern = NULL;
        int fd = open_beneath(b->tmp_fd, "root/var/lib/apt/lists", O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return error_setf(fd, "debootstrap left no apt lists: %m");
        lists = fd;
        if (asprintf(&pattern, "*_dists_%s_main_binary-amd64_Packages", b->o->suite) < 0)
                return -ENOMEM;
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(lists, ".", &d);
        if (r < 0)
                return r;
        r = error_setf(-ENOENT, "no Packages index for %s main in the debootstrapped tree", b->o->suite);
        for (struct dirent *de; (de = readdir(d));)
                if (fnmatch(pattern, de->d_name, 0) == 0) {
                        r = openat(lists, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                        r = r < 0 ? -errno : r;
                        break;
                }
        return r;
}

static int find_kernel_package(Build *b, DebianPackage *ret) {
        _cleanup_(debian_package_done) DebianPackage meta = {};
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int fd = open_packages_index(b);
        if (fd < 0)
                return fd;
        int r = debian_packages_find(fd, "linux-image-amd64", &meta);
        if (r >= 0)
                r = debian_depends_first(meta.depends, &name);
        if (r >= 0 && lseek(fd, 0, SEEK_SET) < 0)
                r = -errno;
        if (r >= 0)
                r = debian_packages_find(fd, name, ret);
        return r < 0 ? error_setf(r, "finding the kernel package: %s", error_last_message() ?: "") : 0;
}

/* The package file, from the cache when its SHA256 still matches. Returns
 * the path to unpack. */
static int fetch_kernel_package(Build *b, const DebianPackage *pkg, char **ret_path) {
        char have[SHA256_HEX_LEN + 1];
        const Progress *pr = &b->o->progress;
        _cleanup_free_ char *name = NULL;
        if (asprintf(&name, "%s.deb", pkg->sha256) < 0)
                return -ENOMEM;
        _cleanup_close_ int cfd = -EBADF;
        if (b->o->cache_dir && mkdir_p(b->o->cache_dir, 0755) >= 0)
                cfd = open_dir_nofollow(AT_FDCWD, b->o->cache_dir);
        if (cfd >= 0) {
                _cleanup_close_ int fd = openat(cfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0 && sha256_fd(fd, have, NULL) >= 0 && streq(have, pkg->sha256)) {
                        progress_report(pr, "kernel", "cached package", pkg->size, pkg->size);
                        *ret_path = path_join(b->o->cache_dir, name);
                        return *ret_path ? 0 : -ENOMEM;
                }
                (void) unlinkat(cfd, name, 0);
        }
        int dir = cfd >= 0 ? cfd : b->tmp_fd;
        progress_report(pr, "kernel", pkg->package, 0, pkg->size);
        int r = debian_package_download(b->o->mirror, pkg, dir, name, pr, "kernel");
        if (r < 0)
                return r;
        *ret_path = cfd >= 0 ? path_join(b->o->cache_dir, name) : tmp_join(b, name);
        return *ret_path ? 0 : -ENOMEM;
}

/* The one lib/modules/<release> of the unpacked package. */
static int find_release(Build *b) {
        _cleanup_close_ int fd = open_beneath(b->tmp_fd, "kpkg/lib/modules", O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return error_setf(fd, "the kernel package has no lib/modules");
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(fd, ".", &d);
        if (r < 0)
                return r;
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.' && !b->release)
                        b->release = strdup(de->d_name);
        return b->release ? 0 : error_setf(-ENOENT, "the kernel package has no module tree");
}

static int stage_kernel_package(Build *b) {
        _cleanup_(debian_package_done) DebianPackage pkg = {};
        _cleanup_free_ char *deb = NULL, *kpkg = tmp_join(b, "kpkg");
        int r = find_kernel_package(b, &pkg);
        if (r >= 0)
                r = fetch_kernel_package(b, &pkg, &deb);
        if (r < 0)
                return r;
        progress_report(&b->o->progress, "kernel", "unpacking", 0, 0);
        char *unpack[] = { (char *) "dpkg-deb", (char *) "-x", deb, kpkg, NULL };
        r = run_tool(b, unpack, "dpkg-deb.log", TOOL_TIMEOUT);
        if (r >= 0)
                r = find_release(b);
        if (r < 0)
                return r;
        /* The package ships no modules.dep: its postinst runs depmod. */
        char *depmod[] = { (char *) "depmod", (char *) "-b", kpkg, b->release, NULL };
        return run_tool(b, depmod, "depmod.log", TOOL_TIMEOUT);
}

/* Hardware a microVM never has: left out of the guest's module tree. */
static bool skip_module_dir(const char *rel, bool is_dir, void *userdata) {
        static const char *const skip[] = {
                "kernel/sound",
                "kernel/drivers/gpu",
                "kernel/drivers/media",
                "kernel/drivers/net/wireless",
                "kernel/drivers/net/ethernet",
                "kernel/drivers/infiniband",
                "kernel/drivers/staging",
                "kernel/drivers/bluetooth",
                "kernel/drivers/iio",
                "kernel/drivers/isdn",
                "kernel/drivers/usb",
                "kernel/drivers/hid",
        };
        for (size_t i = 0; is_dir && i < ELEMENTSOF(skip); i++)
                if (streq(rel, skip[i]))
                        return true;
        return false;
}

/* root/lib when it is a directory, root/usr/lib on merged-/usr systems. */
static const char *guest_libdir(Build *b) {
        struct stat st;
        if (fstatat(b->tmp_fd, "root/lib", &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISDIR(st.st_mode))
                return "root/lib";
        return "root/usr/lib";
}

static int stage_modules(Build *b) {
        _cleanup_free_ char *src_rel = NULL, *root = tmp_join(b, "root");
        if (!root || asprintf(&src_rel, "kpkg/lib/modules/%s", b->release) < 0)
                return -ENOMEM;
        progress_report(&b->o->progress, "kernel", "installing modules", 0, 0);
        _cleanup_close_ int src = open_beneath(b->tmp_fd, src_rel, O_RDONLY | O_DIRECTORY, 0);
        if (src < 0)
                return src;
        _cleanup_close_ int lib = open_beneath(b->tmp_fd, guest_libdir(b), O_RDONLY | O_DIRECTORY, 0);
        if (lib < 0)
                return lib;
        int r = mkdirat_private(lib, "modules", 0755);
        if (r < 0)
                return r;
        _cleanup_close_ int mods = open_dir_nofollow(lib, "modules");
        if (mods < 0)
                return mods;
        if (mkdirat(mods, b->release, 0755) < 0)
                return -errno;
        _cleanup_close_ int dst = open_dir_nofollow(mods, b->release);
        if (dst < 0)
                return dst;
        r = copy_tree_at(src, dst, skip_module_dir, NULL);
        if (r < 0)
                return error_setf(r, "copying modules into the rootfs: %m");
        char *depmod[] = { (char *) "depmod", (char *) "-b", root, b->release, NULL };
        return run_tool(b, depmod, "depmod.log", TOOL_TIMEOUT);
}

static int stage_initramfs(Build *b) {
        _cleanup_free_ char *mods_rel = NULL, *out = NULL;
        const char *busybox = b->o->busybox ?: "/bin/busybox";
        progress_report(&b->o->progress, "initramfs", NULL, 0, 0);
        if (asprintf(&mods_rel, "%s/modules/%s", guest_libdir(b), b->release) < 0 ||
            asprintf(&out, "initrd.img-%s", b->release) < 0)
                return -ENOMEM;
        _cleanup_close_ int mods = open_beneath(b->tmp_fd, mods_rel, O_RDONLY | O_DIRECTORY, 0);
        _cleanup_close_ int boot = open_beneath(b->tmp_fd, "kpkg/boot", O_RDONLY | O_DIRECTORY, 0);
        if (mods < 0 || boot < 0)
                return mods < 0 ? mods : boot;
        return initramfs_build(mods, busybox, boot, out);
}

static int stage_kernel_import(Build *b) {
        _cleanup_free_ char *from = tmp_join(b, "kpkg");
        KernelImportOptions ko = { .name = b->kernel_name, .from = from, .progress = b->o->progress };
        ko.progress.cancel = NULL; /* its point of no return is not the build's */
        if (!from)
                return -ENOMEM;
        progress_report(&b->o->progress, "kernel", "importing", 0, 0);
        int r = kernel_store_import(b->store, b->state_dir, &ko, &b->kernel);
        if (r >= 0)
                b->kernel_imported = true;
        return r;
}

/* ---- guest configuration ---- */

/* The work disk holds /root. Its device can appear late under emulation:
 * systemd waits for it without a limit (device-timeout 0), and nofail keeps
 * the boot going meanwhile; the guest agent reports it unmounted until it
 * is, and the VM is not ready before (nor at all if it never mounts). */
static const char fstab[] = "# Written by banger. The work disk holds /root: the VM is ready once it is mounted.\n"
                            "/dev/vda / ext4 defaults,errors=remount-ro 0 1\n"
                            "/dev/vdb /root ext4 defaults,nofail,x-systemd.device-timeout=0 0 2\n";

static const char agent_unit[] = "[Unit]\n"
                                 "Description=banger guest agent\n"
                                 "After=local-fs.target systemd-modules-load.service\n"
                                 "Before=network.target ssh.service\n"
                                 "Wants=network.target\n"
                                 "\n"
                                 "[Service]\n"
                                 "ExecStart=/usr/local/bin/banger-agent --setup-network --serve\n"
                                 "Restart=always\n"
                                 "RestartSec=1\n"
                                 "\n"
                                 "[Install]\n"
                                 "WantedBy=multi-user.target\n";

/* Host keys are made on each VM's first boot, not shared by every VM built
 * from the image; sshd -t (ssh.service's own check) needs them first. Only
 * an Ed25519 key: `ssh-keygen -A` also makes a 3072-bit RSA key, which took
 * 6 s of guest time under TCG, most of the wait for SSH after the agent. */
static const char hostkey_unit[] =
        "[Unit]\n"
        "Description=SSH host key of this VM\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n"
        "Before=ssh.service\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key\n";

static const char ssh_dropin[] = "[Unit]\n"
                                 "Requires=banger-ssh-hostkey.service\n"
                                 "After=banger-ssh-hostkey.service\n"
                                 "\n"
                                 "[Service]\n"
                                 "ExecStartPre=\n"
                                 "ExecStartPre=/usr/sbin/sshd -t\n";

/* Without it sshd looks for the RSA and ECDSA keys too and logs their absence. */
static const char sshd_hostkey_conf[] = "HostKey /etc/ssh/ssh_host_ed25519_key\n";

/* Units that only cost boot time in a VM: e2scrub_reap scans for LVM
 * snapshots (none here; 6 s of guest CPU at first boot), getty-static starts
 * gettys on tty2..6 of a machine without a display. */
static const char *const masked_units[] = { "e2scrub_reap.service", "getty-static.service" };

static const char modules_load[] = "virtio_net\nvirtio_console\nvirtio_rng\nvmw_vsock_virtio_transport\n";
static const char hosts[] = "127.0.0.1 localhost\n127.0.1.1 banger\n::1 localhost ip6-localhost ip6-loopback\n";

static int guest_mkdir(int root, const char *rel) {
        const char *base;
        _cleanup_close_ int parent = open_parent_beneath(root, rel, &base);
        if (parent < 0)
                return parent;
        int r = mkdirat_private(parent, base, 0755);
        return r < 0 ? r : 0;
}

/* Replace whatever is at rel (file or symlink) with a new regular file. */
static int guest_write(int root, const char *rel, const char *text, mode_t mode) {
        const char *base;
        _cleanup_close_ int parent = open_parent_beneath(root, rel, &base);
        if (parent < 0)
                return error_setf(parent, "rootfs: %s: %m", rel);
        (void) unlinkat(parent, base, 0);
        return write_new_file_at(parent, base, text, strlen(text), mode, NULL);
}

static int guest_symlink(int root, const char *rel, const char *target) {
        const char *base;
        _cleanup_close_ int parent = open_parent_beneath(root, rel, &base);
        if (parent < 0)
                return parent;
        (void) unlinkat(parent, base, 0);
        return symlinkat(target, parent, base) < 0 ? -errno : 0;
}

static int install_agent(Build *b, int root) {
        const char *base;
        _cleanup_close_ int in = open(b->o->agent, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (in < 0)
                return error_setf(-errno, "cannot open banger-agent %s: %m", b->o->agent);
        _cleanup_close_ int dir = open_parent_beneath(root, "usr/local/bin/banger-agent", &base);
        if (dir < 0)
                return dir;
        (void) unlinkat(dir, base, 0);
        return copy_file_at(in, dir, base, 0755, NULL, NULL, NULL, NULL);
}

/* Empty a directory of everything matching pattern (package caches). */
static int guest_prune(int root, const char *rel, const char *pattern) {
        _cleanup_close_ int fd = open_beneath(root, rel, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return fd == -ENOENT ? 0 : fd;
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(fd, ".", &d);
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                struct stat st;
                if (fnmatch(pattern, de->d_name, FNM_PERIOD) == 0 &&
                    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISREG(st.st_mode))
                        r = unlinkat(fd, de->d_name, 0) < 0 ? -errno : 0;
        }
        return r;
}

static int stage_configure(Build *b) {
        static const char *const dirs[] = { "etc/banger",
                                            "etc/modules-load.d",
                                            "etc/systemd/system/ssh.service.d",
                                            "etc/ssh/sshd_config.d",
                                            "etc/systemd/system/getty.target.wants",
                                            "etc/systemd/system/multi-user.target.wants",
                                            "usr/local/bin" };
        progress_report(&b->o->progress, "rootfs", "configuring", 0, 0);
        _cleanup_close_ int root = open_beneath(b->tmp_fd, "root", O_RDONLY | O_DIRECTORY, 0);
        if (root < 0)
                return root;
        int r = 0;
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(dirs); i++)
                r = guest_mkdir(root, dirs[i]);
        if (r >= 0)
                r = guest_write(root, "etc/fstab", fstab, 0644);
        if (r >= 0)
                r = guest_write(root, "etc/hostname", "banger\n", 0644);
        if (r >= 0)
                r = guest_write(root, "etc/hosts", hosts, 0644);
        /* Empty: systemd gives each VM its own id on first boot. */
        if (r >= 0)
                r = guest_write(root, "etc/machine-id", "", 0444);
        if (r >= 0)
                r = guest_write(root, "etc/modules-load.d/banger.conf", modules_load, 0644);
        if (r >= 0)
                r = guest_write(root, "etc/systemd/system/banger-agent.service", agent_unit, 0644);
        if (r >= 0)
                r = guest_write(root, "etc/systemd/system/ssh.service.d/banger-hostkeys.conf", ssh_dropin, 0644);
        if (r >= 0)
                r = guest_write(root, "etc/systemd/system/banger-ssh-hostkey.service", hostkey_unit, 0644);
        if (r >= 0)
                r = guest_write(root, "etc/ssh/sshd_config.d/banger-hostkey.conf", sshd_hostkey_conf, 0644);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(masked_units); i++) {
                _cleanup_free_ char *rel = path_join("etc/systemd/system", masked_units[i]);
                r = rel ? guest_symlink(root, rel, "/dev/null") : -ENOMEM;
        }
        if (r >= 0)
                r = guest_symlink(root, "etc/systemd/system/multi-user.target.wants/banger-agent.service",
                                  "/etc/systemd/system/banger-agent.service");
        if (r >= 0)
                r = guest_symlink(root, "etc/systemd/system/multi-user.target.wants/ssh.service",
                                  "/lib/systemd/system/ssh.service");
        if (r >= 0)
                r = guest_symlink(root, "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service",
                                  "/lib/systemd/system/serial-getty@.service");
        if (r >= 0)
                r = install_agent(b, root);
        if (r >= 0)
                r = guest_prune(root, "etc/ssh", "ssh_host_*");
        if (r >= 0)
                r = guest_prune(root, "var/cache/apt/archives", "*.deb");
        if (r >= 0)
                r = guest_prune(root, "var/lib/apt/lists", "*");
        return r < 0 ? error_setf(r, "configuring the rootfs: %s", error_last_message() ?: strerror(-r)) : 0;
}

/* ---- filesystem image and registration ---- */

static int stage_rootfs(Build *b, uint64_t *ret_size) {
        uint64_t bytes = 0, inodes = 0;
        _cleanup_free_ char *root = tmp_join(b, "root"), *img = tmp_join(b, "out/" DEBOOTSTRAP_ROOTFS_NAME);
        char size_arg[32], inode_arg[32];
        if (!root || !img)
                return -ENOMEM;
        _cleanup_close_ int rfd = open_beneath(b->tmp_fd, "root", O_RDONLY | O_DIRECTORY, 0);
        if (rfd < 0)
                return rfd;
        int r = tree_disk_usage(rfd, &bytes, &inodes);
        if (r < 0)
                return r;
        /* Room to install packages in the guest; whole MiB. */
        uint64_t size = MAX(DEBOOTSTRAP_ROOTFS_MIN, bytes + bytes / 2);
        size = (size + (1ULL << 20) - 1) & ~((1ULL << 20) - 1);
        snprintf(size_arg, sizeof(size_arg), "%" PRIu64 "k", size >> 10);
        snprintf(inode_arg, sizeof(inode_arg), "%" PRIu64, MAX(inodes * 2, (uint64_t) 65536));
        progress_report(&b->o->progress, "rootfs", "mkfs.ext4", 0, size);
        if (mkdirat(b->tmp_fd, "out", 0755) < 0)
                return -errno;
        char *argv[] = { (char *) "mkfs.ext4",
                         (char *) "-q",
                         (char *) "-F",
                         (char *) "-t",
                         (char *) "ext4",
                         (char *) "-L",
                         (char *) "banger-root",
                         (char *) "-N",
                         inode_arg,
                         (char *) "-E",
                         (char *) "root_owner=0:0",
                         (char *) "-d",
                         root,
                         img,
                         size_arg,
                         NULL };
        r = run_tool(b, argv, "mkfs.log", TOOL_TIMEOUT);
        if (r < 0)
                return r;
        progress_report(&b->o->progress, "rootfs", "done", size, size);
        *ret_size = size;
        return 0;
}

static int stage_register(Build *b, uint64_t size, ImageRecord *ret) {
        char id[STORE_ID_GENERATED_LEN + 1];
        _cleanup_free_ char *dir = NULL, *rootfs = NULL, *source = NULL;
        progress_report(&b->o->progress, "register", b->o->name, 0, 0);
        int r = store_id_generate(id);
        if (r < 0)
                return r;
        if (asprintf(&dir, "%s/" DEBOOTSTRAP_IMAGE_DIR "/%s", b->state_dir, b->o->name) < 0 ||
            !(rootfs = path_join(dir, DEBOOTSTRAP_ROOTFS_NAME)) ||
            asprintf(&source, "debootstrap:%s %s", b->o->suite, b->o->mirror) < 0)
                return -ENOMEM;
        /* The log stays with the image (and goes when it is deleted). */
        if (renameat(b->tmp_fd, DEBOOTSTRAP_LOG, b->tmp_fd, "out/" DEBOOTSTRAP_LOG) < 0)
                return -errno;
        if (renameat2(b->tmp_fd, "out", b->images_fd, b->o->name, RENAME_NOREPLACE) < 0)
                return errno == EEXIST ? error_setf(-EEXIST, "%s exists but is not a registered image", dir) : -errno;
        (void) fsync(b->images_fd);
        ImageRecord img = { .id = id,
                            .name = (char *) b->o->name,
                            .kernel_id = b->kernel.id,
                            .rootfs_path = rootfs,
                            .managed = true,
                            .size = size,
                            .source = source };
        r = store_image_insert(b->store, &img);
        if (r < 0) {
                (void) rm_rf_at(b->images_fd, b->o->name);
                return r;
        }
        /* Registered: a failed strdup below only leaves a field NULL. */
        if (ret)
                *ret = (ImageRecord){ .id = strdup(id),
                                      .name = strdup(b->o->name),
                                      .kernel_id = strdup(b->kernel.id),
                                      .rootfs_path = TAKE_PTR(rootfs),
                                      .source = TAKE_PTR(source),
                                      .managed = true,
                                      .size = size,
                                      .created_at = img.created_at };
        return 0;
}

static int build_checks(Store *s, const DebootstrapImageOptions *o) {
        static const char *const tools[] = { "debootstrap", "dpkg-deb", "depmod", "mkfs.ext4" };
        ImageRecord img = {};
        if (geteuid() != 0)
                return error_setf(-EPERM, "building a Debian image needs root (debootstrap creates device nodes "
                                          "and root-owned files)");
        if (!o->name || !name_is_valid(o->name) || strlen(o->name) + strlen(KERNEL_SUFFIX) > 63)
                return error_setf(-EINVAL, "invalid image name \"%s\": use %s, at most 56", o->name ?: "", NAME_RULE);
        if (!debootstrap_suite_is_valid(o->suite))
                return error_setf(-EINVAL, "invalid suite \"%s\"", o->suite ?: "");
        if (!o->mirror || (!startswith(o->mirror, "http://") && !startswith(o->mirror, "https://")) ||
            strpbrk(o->mirror, " \t\n"))
                return error_setf(-EINVAL, "mirror must be an http:// or https:// URL");
        if (!o->agent || access(o->agent, X_OK) < 0)
                return error_setf(-ENOENT, "banger-agent not found at %s", o->agent ?: "(none given)");
        for (size_t i = 0; i < ELEMENTSOF(tools); i++) {
                _cleanup_free_ char *p = find_executable(tools[i]);
                if (!p)
                        return error_setf(-ENOENT, "%s is not installed", tools[i]);
        }
        int r = store_image_get_by_name(s, o->name, &img);
        image_record_done(&img);
        if (r >= 0)
                return error_setf(-EEXIST, "image name \"%s\" is already in use", o->name);
        return r == -ENOENT ? 0 : r;
}

static void build_done(Build *b) {
        if (b->tmp_name && b->images_fd >= 0) {
                int r = rm_rf_at(b->images_fd, b->tmp_name);
                if (r < 0)
                        log_debug_errno(r, "cannot remove %s: %m", b->tmp_path);
        }
        safe_close(b->tmp_fd);
        safe_close(b->images_fd);
        free(b->tmp_name);
        free(b->tmp_path);
        free(b->release);
        free(b->kernel_name);
        kernel_record_done(&b->kernel);
}

static int build_open(Build *b) {
        char id[STORE_ID_GENERATED_LEN + 1];
        _cleanup_close_ int sfd = open_dir_nofollow(AT_FDCWD, b->state_dir);
        if (sfd < 0)
                return error_setf(sfd, "cannot open state directory %s: %m", b->state_dir);
        int r = mkdirat_private(sfd, DEBOOTSTRAP_IMAGE_DIR, 0700);
        if (r < 0)
                return r;
        b->images_fd = open_dir_nofollow(sfd, DEBOOTSTRAP_IMAGE_DIR);
        if (b->images_fd < 0)
                return b->images_fd;
        if ((r = store_id_generate(id)) < 0)
                return r;
        if (asprintf(&b->tmp_name, ".tmp-%s-%.8s", b->o->name, id) < 0 ||
            asprintf(&b->tmp_path, "%s/" DEBOOTSTRAP_IMAGE_DIR "/%s", b->state_dir, b->tmp_name) < 0 ||
            asprintf(&b->kernel_name, "%s" KERNEL_SUFFIX, b->o->name) < 0)
                return -ENOMEM;
        /* 0755: debootstrap's tree must stay traversable for apt's sandbox user. */
        if (mkdirat(b->images_fd, b->tmp_name, 0755) < 0)
                return -errno;
        b->tmp_fd = open_dir_nofollow(b->images_fd, b->tmp_name);
        return b->tmp_fd < 0 ? b->tmp_fd : 0;
}

int debootstrap_image_build(Store *s, const char *state_dir, const DebootstrapImageOptions *o, ImageRecord *ret) {
        _cleanup_(build_done)
                Build b = { .o = o, .store = s, .state_dir = state_dir, .images_fd = -EBADF, .tmp_fd = -EBADF };
        uint64_t size = 0;
        int r = build_checks(s, o);
        if (r >= 0)
                r = build_open(&b);
        if (r >= 0)
                r = stage_debootstrap(&b);
        static int (*const stages[])(Build *) = { stage_kernel_package, stage_modules, stage_initramfs,
                                                  stage_kernel_import, stage_configure };
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(stages); i++)
                if ((r = progress_check(&o->progress)) >= 0)
                        r = stages[i](&b);
        if (r >= 0 && (r = progress_check(&o->progress)) >= 0)
                r = stage_rootfs(&b, &size);
        if (r >= 0)
                r = progress_commit(&o->progress, "is registering the image");
        if (r >= 0)
                r = stage_register(&b, size, ret);
        if (r < 0 && b.kernel_imported) {
                /* Keep the first cause for the user. */
                _cleanup_free_ char *msg = error_last_message() ? strdup(error_last_message()) : NULL;
                int q = kernel_store_remove(s, state_dir, b.kernel_name);
                if (q < 0)
                        log_debug_errno(q, "cannot remove kernel %s after a failed build: %m", b.kernel_name);
                if (msg)
                        (void) error_setf(r, "%s", msg);
        }
        return r;
}
