/* SPDX-License-Identifier: MIT */
/* Firecracker's process side: paths, argv, jailer chroot and the driver
 * table. The REST calls live in firecracker-api.c, the binary and its version
 * in firecracker-binary.c. */
#include "firecracker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "firecracker-api.h"
#include "fs-util.h"
#include "io-util.h"
#include "log.h"
#include "socket-util.h"
#include "string-util.h"

#define FC_VERSION_TIMEOUT (5 * USEC_PER_SEC)
#define FC_VERSION_OUT_MAX 4096

static int fc_probe_version(const char *binary) {
        char *argv[] = { (char *) binary, "--version", NULL };
        _cleanup_free_ char *out = NULL;
        FcVersion v;
        int r = spawn_run_capture(argv, FC_VERSION_TIMEOUT, FC_VERSION_OUT_MAX, true, &out);
        if (r < 0)
                return error_setf(r, "cannot run %s --version: %s", binary, strerror(-r));
        if (r != 0)
                return error_setf(-ENOEXEC, "%s --version exited with status %d", binary, r);
        if (fc_parse_version(out, &v) < 0)
                return error_setf(-EBADMSG, "cannot parse the version %s reports: \"%.*s\"", binary,
                                  (int) strcspn(out, "\n"), out);
        return fc_version_check(&v);
}

static int fc_probe(const char *binary) {
        _cleanup_free_ char *path = fc_resolve_binary(binary);
        if (!path)
                return -ENOENT;
        return fc_probe_version(path);
}

void fc_paths_done(FcPaths *p) {
        free(p->api_socket);
        free(p->api_socket_arg);
        free(p->vsock);
        free(p->vsock_arg);
        free(p->pidfile);
        free(p->chroot_dir);
        *p = (FcPaths){};
}

static const char *path_basename(const char *p) {
        const char *s = strrchr(p, '/');
        return s ? s + 1 : p;
}

static int fc_paths_jailed(const VmmConfig *c, const char *fc_binary, FcPaths *p) {
        const char *exec_name = path_basename(fc_binary);
        /* The jailer refuses exec files whose name lacks "firecracker". */
        if (!strstr(exec_name, FC_COMM))
                return error_setf(-EINVAL, "the jailer only runs a binary named *firecracker*, not %s", exec_name);
        if (!c->jailer_chroot_base || c->jailer_chroot_base[0] != '/')
                return error_setf(-EINVAL, "jailer_chroot_base must be an absolute path");
        if (asprintf(&p->chroot_dir, "%s/%s/%s/root", c->jailer_chroot_base, exec_name, c->vm_id) < 0 ||
            asprintf(&p->pidfile, "%s/%s.pid", p->chroot_dir, exec_name) < 0)
                return -ENOMEM;
        p->api_socket = path_join(p->chroot_dir, FC_API_SOCKET_NAME);
        p->vsock = path_join(p->chroot_dir, FC_VSOCK_NAME);
        p->api_socket_arg = strdup("/" FC_API_SOCKET_NAME);
        p->vsock_arg = strdup("/" FC_VSOCK_NAME);
        return 0;
}

int fc_paths_build(const VmmConfig *c, const char *fc_binary, FcPaths *ret) {
        FcPaths p = {};
        int r = 0;
        if (!c->vm_id || !*c->vm_id || strlen(c->vm_id) > 64 || !c->run_dir)
                return error_setf(-EINVAL, "a Firecracker VM needs a vm_id and a run_dir");
        if (c->jailer)
                r = fc_paths_jailed(c, fc_binary, &p);
        else {
                p.api_socket = path_join(c->run_dir, FC_API_SOCKET_NAME);
                p.vsock = path_join(c->run_dir, FC_VSOCK_NAME);
                p.pidfile = path_join(c->run_dir, FC_PIDFILE_NAME);
                p.api_socket_arg = p.api_socket ? strdup(p.api_socket) : NULL;
                p.vsock_arg = p.vsock ? strdup(p.vsock) : NULL;
        }
        if (r >= 0 && (!p.api_socket || !p.vsock || !p.pidfile || !p.api_socket_arg || !p.vsock_arg))
                r = -ENOMEM;
        if (r >= 0)
                r = unix_socket_path_check(p.api_socket);
        if (r >= 0)
                r = unix_socket_path_check(p.vsock);
        if (r < 0) {
                fc_paths_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}

typedef struct Argv {
        char **v;
        size_t n;
        int error;
} Argv;

static void argv_add(Argv *a, const char *fmt, ...) _printf_(2, 3);
static void argv_add(Argv *a, const char *fmt, ...) {
        if (a->error)
                return;
        char **nv = realloc(a->v, (a->n + 2) * sizeof(char *));
        if (!nv) {
                a->error = -ENOMEM;
                return;
        }
        a->v = nv;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&a->v[a->n], fmt, ap);
        va_end(ap);
        if (r < 0) {
                a->v[a->n] = NULL;
                a->error = -ENOMEM;
                return;
        }
        a->v[++a->n] = NULL;
}

int fc_build_argv(const VmmConfig *c, const char *fc_binary, const char *jailer_binary, const FcPaths *p,
                  char ***ret_argv) {
        Argv a = {};
        if (c->jailer) {
                if (!jailer_binary)
                        return -EINVAL;
                argv_add(&a, "%s", jailer_binary);
                argv_add(&a, "--id");
                argv_add(&a, "%s", c->vm_id);
                argv_add(&a, "--exec-file");
                argv_add(&a, "%s", fc_binary);
                argv_add(&a, "--uid");
                argv_add(&a, "%u", (unsigned) c->jailer_uid);
                argv_add(&a, "--gid");
                argv_add(&a, "%u", (unsigned) c->jailer_gid);
                argv_add(&a, "--chroot-base-dir");
                argv_add(&a, "%s", c->jailer_chroot_base);
                argv_add(&a, "--"); /* the rest goes to Firecracker; the jailer passes --id itself */
        } else {
                argv_add(&a, "%s", fc_binary);
                argv_add(&a, "--id");
                argv_add(&a, "%s", c->vm_id);
        }
        argv_add(&a, "--api-sock");
        argv_add(&a, "%s", p->api_socket_arg);
        if (a.error) {
                strv_free(a.v);
                return a.error;
        }
        *ret_argv = a.v;
        return 0;
}

/* Copy for when a hard link is impossible (another filesystem). */
static int copy_into(const char *src, int dirfd, const char *name, mode_t mode) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return -errno;
        return vmm_copy_file_at(in, dirfd, name, mode);
}

static int place_in_jail(int rootfd, const char *src, const char *name, uid_t uid, gid_t gid) {
        (void) unlinkat(rootfd, name, 0); /* a leftover from an earlier run of this VM */
        if (linkat(AT_FDCWD, src, rootfd, name, 0) < 0) {
                if (errno != EXDEV && errno != EPERM)
                        return error_setf(-errno, "cannot link %s into the jail: %m", src);
                int r = copy_into(src, rootfd, name, 0600);
                if (r < 0)
                        return error_setf(r, "cannot copy %s into the jail: %s", src, strerror(-r));
        }
        /* Firecracker runs as the jailer uid and must be able to open it. */
        _cleanup_close_ int fd = openat(rootfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || fchown(fd, uid, gid) < 0)
                return error_setf(-errno, "cannot hand %s to uid %u: %m", name, (unsigned) uid);
        return 0;
}

static int jail_root_open(const VmmConfig *c, const FcPaths *p) {
        int r = mkdir_p(p->chroot_dir, 0700);
        if (r < 0)
                return error_setf(r, "cannot create jail %s: %s", p->chroot_dir, strerror(-r));
        _cleanup_close_ int fd = open_dir_nofollow(AT_FDCWD, p->chroot_dir);
        if (fd < 0)
                return error_setf(fd, "cannot open jail %s: %s", p->chroot_dir, strerror(-fd));
        if (fchown(fd, c->jailer_uid, c->jailer_gid) < 0)
                return error_setf(-errno, "cannot hand jail %s to uid %u: %m", p->chroot_dir, (unsigned) c->jailer_uid);
        return TAKE_FD(fd);
}

int fc_jail_prepare(const VmmConfig *c, const FcPaths *p, char ***ret_names) {
        Argv names = {};
        _cleanup_close_ int rootfd = jail_root_open(c, p);
        if (rootfd < 0)
                return rootfd;
        int r = place_in_jail(rootfd, c->kernel, "vmlinux", c->jailer_uid, c->jailer_gid);
        argv_add(&names, "/vmlinux");
        if (r >= 0 && c->initrd) {
                r = place_in_jail(rootfd, c->initrd, "initrd", c->jailer_uid, c->jailer_gid);
                argv_add(&names, "/initrd");
        } else
                argv_add(&names, "%s", ""); /* slot kept so drive names start at index 2 */
        for (size_t i = 0; r >= 0 && i < c->n_drives; i++) {
                char name[96];
                snprintf(name, sizeof(name), "drive-%s", c->drives[i].id);
                r = place_in_jail(rootfd, c->drives[i].path, name, c->jailer_uid, c->jailer_gid);
                argv_add(&names, "/%s", name);
        }
        /* A restore: the saved state and memory, under their own names. */
        const char *const state_files[] = { VMM_STATE_FILE, VMM_MEMORY_FILE };
        for (size_t i = 0; r >= 0 && c->restore_dir && i < ELEMENTSOF(state_files); i++) {
                _cleanup_free_ char *src = path_join(c->restore_dir, state_files[i]);
                r = src ? place_in_jail(rootfd, src, state_files[i], c->jailer_uid, c->jailer_gid) : -ENOMEM;
                argv_add(&names, "/%s", state_files[i]);
        }
        if (r >= 0)
                r = names.error;
        if (r < 0) {
                strv_free(names.v);
                return r;
        }
        *ret_names = names.v;
        return 0;
}

/* ---- the driver table ---- */

/* A socket left by a previous run of this VM is removed; one that still
 * answers belongs to a live VMM and must not be stolen. */
static int remove_stale_socket(const char *path) {
        struct stat st;
        if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return error_setf(-EEXIST, "%s exists and is not a socket", path);
        long status = 0;
        if (fc_api_request(path, "GET", "/", NULL, USEC_PER_SEC, &status, NULL) >= 0)
                return error_setf(-EBUSY, "a Firecracker process still serves %s", path);
        return unlinkat(AT_FDCWD, path, 0) < 0 && errno != ENOENT ? -errno : 0;
}

static int fc_spawn(const VmmConfig *c, char **argv, Process *ret) {
        _cleanup_close_ int log_fd = vmm_open_log(c->log_path);
        if (log_fd < 0)
                return log_fd;
        SpawnOptions o;
        spawn_options_init(&o);
        o.stdout_fd = log_fd;
        o.stderr_fd = log_fd;
        /* Unix sockets are born 0777 & ~umask: 0177 makes the API and vsock
         * sockets 0600 from their first existence (077 would give 0700). The
         * jailer creates directories inside the chroot, which need x bits. */
        o.umask = c->jailer ? 077 : 0177;
        o.new_session = true; /* a daemon restart (or its SIGINT) never reaches the VM */
        o.cwd = c->run_dir;
        /* The child writes the pidfile before it execs. The jailer writes its
         * own inside the chroot (and refuses one that exists), so it gets
         * none; it also closes the fds it inherits, the liveness lock among
         * them: for a jailed VM the lock covers only the jailer's first
         * moments, and recovery falls back to pidfile and socket alone. */
        return vmm_spawn(argv, &o, c->run_dir, c->jailer ? NULL : FC_PIDFILE_NAME, ret);
}

static void fc_files_fill(const VmmConfig *c, char **names, FcFiles *f) {
        f->kernel = names[0];
        f->initrd = names[1][0] ? names[1] : NULL;
        for (size_t i = 0; i < c->n_drives && i < VMM_MAX_DRIVES; i++)
                f->drives[i] = names[2 + i];
        f->state = c->restore_dir ? names[2 + c->n_drives] : NULL;
        f->memory = c->restore_dir ? names[3 + c->n_drives] : NULL;
}

static int fc_configure(const VmmConfig *c, const FcPaths *p, const FcFiles *f) {
        const char *s = p->api_socket;
        if (c->restore_dir)
                return fc_api_snapshot_load(s, f->state, f->memory, false, c->nics, c->n_nics,
                                            c->vsock_cid >= 3 ? p->vsock_arg : NULL);
        int r = fc_api_put_boot_source(s, f->kernel, f->initrd, c->cmdline);
        if (r >= 0)
                r = fc_api_put_machine_config(s, c->vcpus, c->mem_mib);
        for (size_t i = 0; r >= 0 && i < c->n_drives; i++)
                r = fc_api_put_drive(s, c->drives[i].id, f->drives[i], c->drives[i].is_root, c->drives[i].read_only);
        for (size_t i = 0; r >= 0 && i < c->n_nics; i++)
                r = fc_api_put_network_interface(s, c->nics[i].id, c->nics[i].tap, c->nics[i].mac);
        if (r >= 0 && c->vsock_cid >= 3)
                r = fc_api_put_vsock(s, c->vsock_cid, p->vsock_arg);
        return r;
}

static int fc_instance_fill(const VmmConfig *c, FcPaths *p, Process proc, VmmInstance *ret) {
        *ret = (VmmInstance){
                .kind = VMM_FIRECRACKER,
                .proc = proc,
                .api_socket = TAKE_PTR(p->api_socket),
                .agent_socket = TAKE_PTR(p->vsock),
                .agent_needs_handshake = true,
                .pidfile = TAKE_PTR(p->pidfile),
                .chroot_dir = TAKE_PTR(p->chroot_dir),
        };
        return 0;
}

static bool want_chown(const VmmConfig *c) {
        return geteuid() == 0 && c->owner_uid != 0;
}

/* Everything before the process exists: binaries, version, dirs, argv. */
static int fc_prepare(const VmmConfig *c, FcPaths *p, char ***ret_argv, char ***ret_names) {
        _cleanup_free_ char *fc = fc_resolve_binary(c->binary);
        _cleanup_free_ char *jailer = NULL;
        if (!fc)
                return -ENOENT;
        int r = fc_probe_version(fc);
        if (r >= 0 && c->restore_dir)
                r = vmm_restore_version_check(&vmm_driver_firecracker, c);
        if (r < 0)
                return r;
        if (c->jailer && !(jailer = find_executable(c->jailer_binary ? c->jailer_binary : "jailer")))
                return error_setf(-ENOENT, "jailer binary %s not found; set jailer_bin",
                                  c->jailer_binary ? c->jailer_binary : "jailer");
        r = vmm_prepare_run_dir(c->run_dir);
        if (r < 0)
                return r;
        r = fc_paths_build(c, fc, p);
        if (r < 0)
                return r;
        /* A Firecracker of this VM that still runs keeps its sockets, even one
         * too busy (or stopped) to answer. */
        r = vmm_lock_check_free(c->run_dir);
        if (r >= 0)
                r = remove_stale_socket(p->api_socket);
        if (r >= 0)
                r = remove_stale_socket(p->vsock);
        if (r >= 0)
                r = c->jailer ? fc_jail_prepare(c, p, ret_names) : fc_run_dir_names(c, ret_names);
        if (r >= 0)
                r = fc_build_argv(c, fc, jailer, p, ret_argv);
        return r;
}

static int fc_launch(const VmmConfig *c, usec_t timeout, VmmInstance *ret) {
        _cleanup_(fc_paths_done) FcPaths p = {};
        _cleanup_strv_free_ char **argv = NULL, **names = NULL;
        Process proc = PROCESS_NULL;
        FcFiles files = {};
        if (!c->kernel || !c->log_path || c->n_drives > VMM_MAX_DRIVES || c->n_nics > VMM_MAX_NICS)
                return error_setf(-EINVAL, "incomplete Firecracker VM configuration");
        int r = fc_prepare(c, &p, &argv, &names);
        if (r < 0)
                return r;
        r = fc_spawn(c, argv, &proc);
        if (r < 0)
                return r;
        r = fc_api_wait_ready(p.api_socket, proc.pidfd, timeout);
        if (r >= 0 && want_chown(c))
                r = vmm_chown_socket(p.api_socket, c->owner_uid, c->owner_gid);
        fc_files_fill(c, names, &files);
        if (r >= 0)
                r = fc_configure(c, &p, &files);
        if (r < 0) {
                log_debug_errno(r, "Firecracker launch of %s failed, killing pid %d", c->vm_id, (int) proc.pid);
                (void) vmm_process_kill(&proc);
                (void) unlinkat(AT_FDCWD, p.api_socket, 0);
                (void) unlinkat(AT_FDCWD, p.pidfile, 0);
                return r;
        }
        return fc_instance_fill(c, &p, proc, ret);
}

static int fc_start(VmmInstance *vm) {
        /* A restored VM waits paused (its load said resume_vm false): resume
         * it; a configured one is booted. */
        _cleanup_free_ char *state = NULL;
        int r = fc_api_get_state(vm->api_socket, FC_API_TIMEOUT, &state);
        if (r < 0)
                return r;
        r = streq(state, "Paused") ? fc_api_patch_vm(vm->api_socket, "Resumed")
                                   : fc_api_action(vm->api_socket, "InstanceStart");
        if (r < 0)
                return r;
        /* Firecracker creates the vsock socket while booting: hand it to
         * whoever launch() gave the API socket to. */
        struct stat api, vs;
        if (geteuid() == 0 && vm->agent_socket && fstatat(AT_FDCWD, vm->api_socket, &api, AT_SYMLINK_NOFOLLOW) == 0 &&
            api.st_uid != 0 && fstatat(AT_FDCWD, vm->agent_socket, &vs, AT_SYMLINK_NOFOLLOW) == 0)
                (void) vmm_chown_socket(vm->agent_socket, api.st_uid, api.st_gid);
        return 0;
}

static int fc_request_shutdown(VmmInstance *vm) {
        return fc_api_action(vm->api_socket, "SendCtrlAltDel");
}

static int fc_pause(VmmInstance *vm) {
        return fc_api_patch_vm(vm->api_socket, "Paused");
}

static int fc_resume(VmmInstance *vm) {
        return fc_api_patch_vm(vm->api_socket, "Resumed");
}

static int fc_query_state(VmmInstance *vm, const char **ret) {
        _cleanup_free_ char *state = NULL;
        int r = fc_api_get_state(vm->api_socket, FC_API_TIMEOUT, &state);
        if (r < 0)
                return r;
        if (streq(state, "Running"))
                *ret = "running";
        else if (streq(state, "Paused"))
                *ret = "paused";
        else if (streq(state, "Not started"))
                *ret = "not started";
        else
                return error_setf(-EBADMSG, "Firecracker reports an unknown state \"%s\"", state);
        return 0;
}

static int fc_wait_exit(VmmInstance *vm, usec_t timeout) {
        int r = process_wait(&vm->proc, timeout, NULL);
        if (r == -ETIMEDOUT)
                return r;
        if (r < 0)
                return error_setf(r, "cannot wait for Firecracker pid %d: %s", (int) vm->proc.pid, strerror(-r));
        process_release(&vm->proc);
        return 0;
}

static int fc_kill(VmmInstance *vm) {
        int r = 0;
        if (vm->proc.pidfd >= 0)
                r = vmm_process_kill(&vm->proc);
        if (r < 0)
                return error_setf(r, "cannot kill Firecracker pid %d: %s", (int) vm->proc.pid, strerror(-r));
        const char *files[] = { vm->api_socket, vm->agent_socket, vm->pidfile };
        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                if (files[i])
                        (void) unlinkat(AT_FDCWD, files[i], 0);
        return 0;
}

static int fc_attach(const VmmConfig *c, VmmInstance *ret) {
        _cleanup_(fc_paths_done) FcPaths p = {};
        _cleanup_free_ char *fc = find_executable(c->binary && *c->binary ? c->binary : FC_COMM);
        Process proc = PROCESS_NULL;
        /* Only the exec file's name matters for paths; it may be gone by now. */
        int r = fc_paths_build(c, fc ? fc : (c->binary && *c->binary ? c->binary : FC_COMM), &p);
        if (r < 0)
                return r;
        /* The API socket path is on Firecracker's command line (as given to it). */
        r = vmm_process_attach_pidfile(p.pidfile, FC_COMM, p.api_socket_arg, &proc);
        if (r == -ESRCH || r == -EBADMSG)
                r = vmm_process_attach_socket(p.api_socket, FC_COMM, p.api_socket_arg, &proc);
        if (r < 0)
                return r;
        return fc_instance_fill(c, &p, proc, ret);
}

static int read_line_deadline(int fd, char *buf, size_t size, usec_t deadline) {
        size_t len = 0;
        while (len + 1 < size) {
                int r = fd_wait_until(fd, POLLIN, deadline);
                if (r < 0)
                        return r;
                /* One byte at a time: nothing after the newline may be consumed. */
                ssize_t n = read(fd, buf + len, 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                if (buf[len++] == '\n') {
                        buf[len] = '\0';
                        return 0;
                }
        }
        return -EBADMSG;
}

static int vsock_connect_once(const char *uds, unsigned port, usec_t deadline) {
        char line[64];
        _cleanup_close_ int fd = unix_connect(uds, 0);
        if (fd < 0)
                return fd;
        int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
        int r = loop_write(fd, line, (size_t) n);
        if (r < 0)
                return r;
        r = read_line_deadline(fd, line, sizeof(line), deadline);
        if (r < 0)
                return r;
        if (!startswith(line, "OK "))
                return error_setf(-ECONNREFUSED, "vsock handshake on port %u refused: %.*s", port,
                                  (int) strcspn(line, "\n"), line);
        return TAKE_FD(fd);
}

/* The guest agent may not listen yet (Firecracker then closes the
 * connection): retry until the deadline, waiting a little longer each time. */
static int fc_connect_agent(VmmInstance *vm, unsigned port, usec_t timeout) {
        usec_t deadline = now_monotonic() + timeout;
        int backoff_ms = 10;
        for (;;) {
                int fd = vsock_connect_once(vm->agent_socket, port, deadline);
                if (fd >= 0)
                        return fd;
                if (fd != -ECONNRESET && fd != -ECONNREFUSED && fd != -ENOENT)
                        return fd;
                if (now_monotonic() + (usec_t) backoff_ms * USEC_PER_MSEC >= deadline)
                        return error_setf(-ETIMEDOUT, "the guest agent did not answer on vsock port %u", port);
                (void) poll(NULL, 0, backoff_ms);
                backoff_ms = MIN(backoff_ms * 2, 200);
        }
}

const VmmDriver vmm_driver_firecracker = {
        .kind = VMM_FIRECRACKER,
        .name = "firecracker",
        .probe = fc_probe,
        .launch = fc_launch,
        .start = fc_start,
        .request_shutdown = fc_request_shutdown,
        .pause = fc_pause,
        .resume = fc_resume,
        .save_state = fc_save_state,
        .version = fc_version,
        .query_state = fc_query_state,
        .wait_exit = fc_wait_exit,
        .kill = fc_kill,
        .attach = fc_attach,
        .connect_agent = fc_connect_agent,
};
