/* SPDX-License-Identifier: MIT */
/* The QEMU driver's lifecycle: launch, QMP operations, exit, kill,
 * re-attach and the agent channel. Host detection is in qemu-host.c. */
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "io-util.h"
#include "log.h"
#include "socket-util.h"
#include "qemu-qmp.h"
#include "string-util.h"

/* QMP commands are answered at once by a live QEMU; this only bounds a hung one. */
#define QMP_TIMEOUT (10 * USEC_PER_SEC)
#define LOG_TAIL_MAX 2048

static int qemu_probe(const char *binary) {
        const char *name = binary && *binary ? binary : QEMU_DEFAULT_BINARY;
        _cleanup_free_ char *path = find_executable(name);
        if (!path)
                return error_setf(-ENOENT, "QEMU binary %s not found (install qemu-system-x86)", name);
        char *argv[] = { path, "-machine", "help", NULL };
        _cleanup_free_ char *out = NULL;
        int r = spawn_run_capture(argv, 10 * USEC_PER_SEC, 64 * 1024, true, &out);
        if (r < 0)
                return error_setf(r, "cannot run %s -machine help: %s", path, strerror(-r));
        if (r != 0 || !strstr(out, "\nmicrovm "))
                return error_setf(-EOPNOTSUPP, "%s does not offer the microvm machine type", path);
        return 0;
}

typedef struct QemuPaths {
        char *qmp, *agent, *pidfile;
} QemuPaths;

static void qemu_paths_done(QemuPaths *p) {
        free(p->qmp);
        free(p->agent);
        free(p->pidfile);
        *p = (QemuPaths){};
}

static int qemu_paths_make(const char *run_dir, QemuPaths *ret) {
        if (!run_dir || run_dir[0] != '/')
                return error_setf(-EINVAL, "the VM's runtime directory must be an absolute path");
        QemuPaths p = {
                .qmp = path_join(run_dir, QEMU_QMP_SOCKET),
                .agent = path_join(run_dir, QEMU_AGENT_SOCKET),
                .pidfile = path_join(run_dir, QEMU_PIDFILE),
        };
        if (!p.qmp || !p.agent || !p.pidfile) {
                qemu_paths_done(&p);
                return -ENOMEM;
        }
        int r = unix_socket_path_check(p.qmp);
        if (r >= 0)
                r = unix_socket_path_check(p.agent);
        if (r < 0) {
                qemu_paths_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}

static void unlink_quietly(const char *path) {
        if (path && path[0] == '/' && unlink(path) < 0 && errno != ENOENT)
                log_debug_errno(-errno, "cannot remove %s: %m", path);
}

/* The last non-empty line of the log: where QEMU says why it would not start. */
static char *log_last_line(const char *log_path) {
        /* O_NONBLOCK: a FIFO without writers must not hang us. */
        _cleanup_close_ int fd = open(log_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return NULL;
        off_t from = st.st_size > LOG_TAIL_MAX ? st.st_size - LOG_TAIL_MAX : 0;
        char buf[LOG_TAIL_MAX + 1];
        ssize_t n = pread(fd, buf, LOG_TAIL_MAX, from);
        if (n <= 0)
                return NULL;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        buf[n] = '\0';
        char *nl = strrchr(buf, '\n');
        return strdup(nl ? nl + 1 : buf);
}

static int launch_failed(Process *p, const char *log_path) {
        int status = 0;
        (void) process_wait(p, 5 * USEC_PER_SEC, &status);
        process_release(p);
        _cleanup_free_ char *why = log_last_line(log_path);
        return error_setf(-EIO, "QEMU exited while starting (wait status %d): %s", status,
                          why && *why ? why : "see the VM log");
}

/* Wait until QMP answers, or QEMU exits (bad arguments), or the deadline. */
static int wait_for_qmp(Process *p, const char *qmp, const char *log_path, usec_t deadline) {
        for (;;) {
                usec_t now = now_monotonic();
                if (now >= deadline)
                        return error_setf(-ETIMEDOUT, "QEMU's QMP socket %s did not answer in time", qmp);
                _cleanup_(qmp_client_freep) QmpClient *c = NULL;
                int r = qmp_client_connect(qmp, deadline - now, &c);
                if (r >= 0)
                        return 0;
                /* Not listening yet, or QEMU accepted and then died of a bad
                 * argument: wake on its exit, else retry shortly (inotify
                 * cannot tell "bound" from "listening"). */
                struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
                if (poll(&pfd, 1, 20) > 0)
                        return launch_failed(p, log_path);
                if (r != -ENOENT && r != -ECONNREFUSED && r != -ECONNRESET)
                        return r;
        }
}

static int spawn_qemu(char **argv, const char *run_dir, const char *log_path, Process *ret) {
        _cleanup_close_ int logfd = vmm_open_log(log_path);
        if (logfd < 0)
                return logfd;
        SpawnOptions o;
        spawn_options_init(&o);
        o.stdout_fd = logfd;
        o.stderr_fd = logfd;
        o.new_session = true; /* outlives a daemon restart */
        /* A socket gets 0777 & ~umask: 0177 makes the QMP and agent sockets
         * (and the pidfile) 0600 from birth; 077 would leave them 0700. */
        o.umask = 0177;
        /* The child writes the pidfile before it execs; QEMU's -pidfile names
         * the same file and writes the same pid again (and removes it when it
         * exits). Between QEMU's truncation and its write a reader may find it
         * empty: attach treats that as "not yet". */
        return vmm_spawn(argv, &o, run_dir, QEMU_PIDFILE, ret);
}

static int hand_sockets_to_owner(const VmmConfig *c, const QemuPaths *paths, const QemuHostPlan *plan) {
        if (c->owner_uid == 0)
                return 0;
        int r = vmm_chown_socket(paths->qmp, c->owner_uid, c->owner_gid);
        if (r >= 0 && !plan->vsock)
                r = vmm_chown_socket(paths->agent, c->owner_uid, c->owner_gid);
        return r;
}

static int fill_instance(const QemuPaths *paths, bool vsock, unsigned cid, Process proc, VmmInstance *ret) {
        VmmInstance vm = { .kind = VMM_QEMU, .proc = proc };
        vm.api_socket = strdup(paths->qmp);
        vm.pidfile = strdup(paths->pidfile);
        if (!vsock)
                vm.agent_socket = strdup(paths->agent);
        else if (asprintf(&vm.agent_socket, QEMU_VSOCK_PREFIX "%u", cid) < 0)
                vm.agent_socket = NULL;
        if (!vm.api_socket || !vm.pidfile || !vm.agent_socket) {
                vm.proc = PROCESS_NULL; /* the caller still owns proc */
                vmm_instance_done(&vm);
                return -ENOMEM;
        }
        *ret = vm;
        return 0;
}

static void remove_runtime_files(const QemuPaths *p) {
        unlink_quietly(p->qmp);
        unlink_quietly(p->agent);
        unlink_quietly(p->pidfile);
}

/* A restore whose load failed: QEMU exits when it cannot load a state, and
 * its log's last line says why. */
static int load_failed(Process *p, const char *log_path, int r) {
        struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
        if (poll(&pfd, 1, 1000) <= 0)
                return r;
        _cleanup_free_ char *why = log_last_line(log_path);
        return error_setf(-EBADMSG, "QEMU could not load the saved state: %s", why && *why ? why : "see the VM log");
}

static int qemu_launch(const VmmConfig *c, usec_t timeout, VmmInstance *ret) {
        usec_t deadline = now_monotonic() + timeout;
        _cleanup_(qemu_paths_done) QemuPaths paths = {};
        int r = qemu_paths_make(c->run_dir, &paths);
        if (r < 0)
                return r;
        if (c->restore_dir) {
                r = vmm_restore_version_check(&vmm_driver_qemu, c);
                if (r < 0)
                        return r;
        }
        QemuHostPlan plan = { .qmp_socket = paths.qmp,
                              .agent_socket = paths.agent,
                              .pidfile = paths.pidfile,
                              .incoming = c->restore_dir != NULL };
        const char *why_not_kvm = NULL;
        plan.accel = qemu_kvm_usable(&why_not_kvm) ? QEMU_ACCEL_KVM : QEMU_ACCEL_TCG;
        plan.vsock = qemu_vhost_vsock_usable();
        plan.tsc_khz = plan.accel == QEMU_ACCEL_TCG ? qemu_host_tsc_khz() : 0;
        _cleanup_strv_free_ char **argv = NULL;
        r = qemu_build_argv(c, &plan, &argv);
        if (r < 0)
                return r;
        r = vmm_prepare_run_dir(c->run_dir);
        if (r < 0)
                return r;
        /* Leftovers of a killed QEMU would make the new one fail to bind; those
         * of a QEMU of this VM that still runs are its own. */
        r = vmm_lock_check_free(c->run_dir);
        if (r < 0)
                return r;
        remove_runtime_files(&paths);
        if (plan.accel == QEMU_ACCEL_TCG)
                /* The issue asks for this to be visible: TCG is 10-50x slower. */
                log_warning("VM %s: KVM is not usable (%s); QEMU runs it with TCG software emulation", c->vm_id,
                            why_not_kvm);
        log_debug("VM %s: starting %s (%s, agent over %s)", c->vm_id, argv[0],
                  plan.accel == QEMU_ACCEL_KVM ? "kvm" : "tcg", plan.vsock ? "vsock" : "virtio-serial");

        Process proc = PROCESS_NULL;
        r = spawn_qemu(argv, c->run_dir, c->log_path, &proc);
        if (r < 0)
                return r;
        r = wait_for_qmp(&proc, paths.qmp, c->console_path ? c->console_path : c->log_path, deadline);
        if (r >= 0 && c->restore_dir) {
                r = qemu_load_state(paths.qmp, c->restore_dir, deadline);
                if (r < 0)
                        r = load_failed(&proc, c->console_path ? c->console_path : c->log_path, r);
        }
        if (r >= 0)
                r = hand_sockets_to_owner(c, &paths, &plan);
        if (r >= 0)
                r = fill_instance(&paths, plan.vsock, c->vsock_cid, proc, ret);
        if (r < 0) {
                process_kill_and_reap(&proc);
                remove_runtime_files(&paths);
                return r;
        }
        return 0;
}

static int qmp_simple(VmmInstance *vm, const char *command, json_t **ret) {
        if (!vm || !vm->api_socket)
                return -EINVAL;
        int r = qmp_execute_once(vm->api_socket, command, NULL, QMP_TIMEOUT, ret);
        if (r == -ENOENT || r == -ECONNREFUSED)
                return error_setf(-ESRCH, "QEMU is not running (nothing listens on %s)", vm->api_socket);
        return r;
}

static int qemu_start(VmmInstance *vm) {
        return qmp_simple(vm, "cont", NULL);
}

static int qemu_request_shutdown(VmmInstance *vm) {
        /* An ACPI power-button press; the guest decides how to shut down. */
        return qmp_simple(vm, "system_powerdown", NULL);
}

static int qemu_pause(VmmInstance *vm) {
        return qmp_simple(vm, "stop", NULL);
}

static int qemu_resume(VmmInstance *vm) {
        return qmp_simple(vm, "cont", NULL);
}

static int qemu_query_state(VmmInstance *vm, const char **ret) {
        _cleanup_(qmp_json_decrefp) json_t *reply = NULL;
        int r = qmp_simple(vm, "query-status", &reply);
        if (r < 0)
                return r;
        const char *status = json_string_value(json_object_get(reply, "status"));
        if (!status)
                return error_setf(-EBADMSG, "QEMU's query-status reply has no status");
        *ret = qemu_state_from_qmp_status(status);
        return 0;
}

static void remove_instance_files(VmmInstance *vm) {
        unlink_quietly(vm->api_socket);
        if (vm->agent_socket && !startswith(vm->agent_socket, QEMU_VSOCK_PREFIX))
                unlink_quietly(vm->agent_socket);
        unlink_quietly(vm->pidfile);
}

static int qemu_wait_exit(VmmInstance *vm, usec_t timeout) {
        int r = process_wait(&vm->proc, timeout, NULL);
        if (r < 0)
                return r;
        /* QEMU removes its sockets on a clean exit; this covers the rest. */
        remove_instance_files(vm);
        return 0;
}

static int qemu_kill(VmmInstance *vm) {
        int r = vmm_process_kill(&vm->proc);
        if (r == -ESRCH)
                r = 0; /* already gone (wait_exit saw it, or never attached) */
        process_release(&vm->proc);
        remove_instance_files(vm);
        return r;
}

static const char *comm_of(const char *binary) {
        const char *b = binary && *binary ? binary : QEMU_DEFAULT_BINARY;
        const char *slash = strrchr(b, '/');
        return slash ? slash + 1 : b;
}

static int qemu_attach(const VmmConfig *c, VmmInstance *ret) {
        _cleanup_(qemu_paths_done) QemuPaths paths = {};
        int r = qemu_paths_make(c->run_dir, &paths);
        if (r < 0)
                return r;
        const char *comm = comm_of(c->binary);
        Process proc = PROCESS_NULL;
        /* The QMP socket path is unique to this VM, so it names the process. */
        r = vmm_process_attach_pidfile(paths.pidfile, comm, paths.qmp, &proc);
        if (r == -ESRCH || r == -EBADMSG) /* EBADMSG: caught while QEMU rewrites it */
                r = vmm_process_attach_socket(paths.qmp, comm, paths.qmp, &proc);
        if (r < 0)
                return r;
        struct stat st;
        bool serial = lstat(paths.agent, &st) == 0 && S_ISSOCK(st.st_mode);
        r = fill_instance(&paths, !serial, c->vsock_cid, proc, ret);
        if (r < 0)
                process_release(&proc);
        return r;
}

static int wait_connected(int fd, usec_t deadline) {
        int r = fd_wait_until(fd, POLLOUT, deadline);
        if (r < 0)
                return r;
        int err = 0;
        socklen_t l = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                return -errno;
        return -err;
}

static int connect_vsock(unsigned cid, unsigned port, usec_t timeout) {
        _cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return error_setf(-errno, "cannot create a vsock socket: %m");
        struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
        int r = 0;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (errno != EINPROGRESS)
                        return error_setf(-errno, "cannot connect to vsock %u:%u: %m", cid, port);
                r = wait_connected(fd, now_monotonic() + timeout);
                if (r < 0)
                        return error_setf(r, "cannot connect to vsock %u:%u: %s", cid, port, strerror(-r));
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static int connect_unix(const char *path) {
        int fd = unix_connect(path, 0);
        if (fd < 0 && fd != -ENAMETOOLONG && fd != -EINVAL)
                return error_setf(fd, "cannot connect to the agent socket %s: %s", path, strerror(-fd));
        return fd;
}

/* virtio-serial carries exactly one channel, so port only matters for vsock. */
static int qemu_connect_agent(VmmInstance *vm, unsigned port, usec_t timeout) {
        if (!vm || !vm->agent_socket)
                return -EINVAL;
        const char *cid = startswith(vm->agent_socket, QEMU_VSOCK_PREFIX);
        if (!cid)
                return connect_unix(vm->agent_socket);
        unsigned long long v;
        if (safe_atou64(cid, &v) < 0 || v < 3 || v > UINT32_MAX)
                return error_setf(-EINVAL, "bad vsock address %s", vm->agent_socket);
        return connect_vsock((unsigned) v, port, timeout);
}

const VmmDriver vmm_driver_qemu = {
        .kind = VMM_QEMU,
        .name = "qemu",
        .probe = qemu_probe,
        .launch = qemu_launch,
        .start = qemu_start,
        .request_shutdown = qemu_request_shutdown,
        .pause = qemu_pause,
        .resume = qemu_resume,
        .save_state = qemu_save_state,
        .cancel_save = qemu_cancel_save,
        .version = qemu_version,
        .query_state = qemu_query_state,
        .wait_exit = qemu_wait_exit,
        .kill = qemu_kill,
        .attach = qemu_attach,
        .connect_agent = qemu_connect_agent,
};
