/* SPDX-License-Identifier: MIT */
/* banger-agent: the guest side of banger. See docs/agent-protocol.md and
 * docs/guest-config.md. Each connection is served by a forked process, so
 * a request can never take the listener down with it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-net.h"
#include "agent-protocol.h"
#include "agent-session.h"
#include "banger-build.h"
#include "log.h"
#include "macro.h"
#include "socket-util.h"
#include "string-util.h"

#define MAX_SESSIONS 32
/* How often to look for a missing transport: virtio_console or the vsock
 * transport module may be loaded after the agent starts. */
#define TRANSPORT_RETRY_MS 2000

typedef struct Args {
        const char *listen_unix;
        const char *serial;
        const char *root;
        unsigned vsock_port;
        bool no_vsock;
        bool setup_network;
        bool serve;
} Args;

static void usage(void) {
        printf("Usage: banger-agent [OPTIONS]\n"
               "The banger guest agent. With no options it serves the protocol on vsock port %u\n"
               "and on the virtio-serial port named %s when present.\n\n"
               "  --setup-network      configure the NIC from /etc/banger/network.conf and exit\n"
               "  --serve              with --setup-network: serve afterwards\n"
               "  --root DIR           read/write guest files under DIR (default /)\n"
               "  --vsock-port N       vsock port (default %u)\n"
               "  --no-vsock           do not listen on vsock\n"
               "  --serial PATH        serve this character device as the serial transport\n"
               "  --listen-unix PATH   development/test: serve a Unix socket only\n"
               "  --version\n",
               AGENT_VSOCK_PORT, AGENT_SERIAL_PORT_NAME, AGENT_VSOCK_PORT);
}

static int parse_args(int argc, char **argv, Args *a) {
        enum { O_LISTEN_UNIX = 256, O_SERIAL, O_ROOT, O_VSOCK_PORT, O_NO_VSOCK, O_SETUP_NET, O_SERVE, O_VERSION };
        static const struct option opts[] = {
                { "listen-unix", required_argument, NULL, O_LISTEN_UNIX },
                { "serial", required_argument, NULL, O_SERIAL },
                { "root", required_argument, NULL, O_ROOT },
                { "vsock-port", required_argument, NULL, O_VSOCK_PORT },
                { "no-vsock", no_argument, NULL, O_NO_VSOCK },
                { "setup-network", no_argument, NULL, O_SETUP_NET },
                { "serve", no_argument, NULL, O_SERVE },
                { "version", no_argument, NULL, O_VERSION },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        *a = (Args){ .root = "/", .vsock_port = AGENT_VSOCK_PORT };
        for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) >= 0;) {
                int v;
                switch (c) {
                case O_LISTEN_UNIX:
                        a->listen_unix = optarg;
                        break;
                case O_SERIAL:
                        a->serial = optarg;
                        break;
                case O_ROOT:
                        a->root = optarg;
                        break;
                case O_VSOCK_PORT:
                        if (safe_atoi(optarg, &v) < 0 || v <= 0)
                                return log_error_errno(EINVAL, "invalid --vsock-port: %s", optarg);
                        a->vsock_port = (unsigned) v;
                        break;
                case O_NO_VSOCK:
                        a->no_vsock = true;
                        break;
                case O_SETUP_NET:
                        a->setup_network = true;
                        break;
                case O_SERVE:
                        a->serve = true;
                        break;
                case O_VERSION:
                        printf("banger-agent %s (%s), protocol %u\n", BANGER_VERSION, BANGER_COMMIT,
                               AGENT_PROTOCOL_VERSION);
                        exit(0);
                case 'h':
                        usage();
                        exit(0);
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc)
                return log_error_errno(EINVAL, "unexpected argument: %s", argv[optind]);
        return 0;
}

static int listen_unix(const char *path) {
        struct sockaddr_un sa;
        socklen_t sa_len;
        if (sockaddr_un_set(&sa, path, &sa_len) < 0)
                return log_error_errno(ENAMETOOLONG, "socket path too long: %s", path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(errno, "socket(AF_UNIX): %m");
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void) unlink(path); /* a stale socket from an earlier run */
        mode_t old = umask(0077);    /* the socket is 0600 from birth */
        int r = bind(fd, (struct sockaddr *) &sa, sa_len);
        umask(old);
        if (r < 0)
                return log_error_errno(errno, "bind %s: %m", path);
        if (listen(fd, 16) < 0)
                return log_error_errno(errno, "listen: %m");
        return TAKE_FD(fd);
}

static int listen_vsock(unsigned port) {
        _cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 16) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Find /dev/vportNpM whose /sys/class/virtio-ports/<dev>/name is ours. */
static int open_serial_by_name(void) {
        DIR *d = opendir("/sys/class/virtio-ports");
        if (!d)
                return -ENOENT;
        int fd = -ENOENT;
        for (struct dirent *de; fd < 0 && (de = readdir(d));) {
                char path[512], name[128] = "";
                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
                _cleanup_close_ int nfd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t n = nfd >= 0 ? read(nfd, name, sizeof(name) - 1) : -1;
                if (n <= 0)
                        continue;
                name[n] = 0;
                name[strcspn(name, "\n")] = 0;
                if (!streq(name, AGENT_SERIAL_PORT_NAME))
                        continue;
                snprintf(path, sizeof(path), "/dev/%s", de->d_name);
                fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        fd = -errno;
        }
        closedir(d);
        return fd;
}

typedef struct Agent {
        Args args;
        int listeners[2];
        size_t n_listeners;
        int sigfd;
        unsigned n_sessions;
        pid_t serial_pid;
        bool serial_missing_logged;
        bool vsock_listening;
        bool vsock_missing_logged;
        SessionOptions sopt;
} Agent;

static void close_parent_fds(Agent *a) {
        for (size_t i = 0; i < a->n_listeners; i++)
                a->listeners[i] = safe_close(a->listeners[i]);
        a->sigfd = safe_close(a->sigfd);
}

static pid_t fork_session(Agent *a, int fd, bool stream) {
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        /* A session must not outlive the agent (a respawned agent would
         * find the serial port still held by an orphan). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);
        close_parent_fds(a);
        sigset_t none;
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        SessionOptions o = a->sopt;
        o.stream = stream;
        int r = stream ? agent_stream_serve(fd, &o) : agent_session_run(fd, &o);
        _exit(r < 0 ? 1 : 0);
}

static void start_serial(Agent *a) {
        if (a->serial_pid > 0 || (a->args.listen_unix && !a->args.serial))
                return;
        int fd = a->args.serial ? open(a->args.serial, O_RDWR | O_CLOEXEC | O_NOCTTY) : open_serial_by_name();
        if (fd < 0 && a->args.serial)
                fd = -errno;
        if (fd < 0) {
                if (!a->serial_missing_logged)
                        log_full_errno(a->args.serial ? LOG_ERR : LOG_INFO, fd, "no serial transport (%s): %m",
                                       a->args.serial ?: AGENT_SERIAL_PORT_NAME);
                a->serial_missing_logged = true;
                return;
        }
        pid_t pid = fork_session(a, fd, true);
        safe_close(fd);
        if (pid < 0)
                log_error_errno(errno, "fork: %m");
        else
                a->serial_pid = pid;
}

static void accept_one(Agent *a, int lfd) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return;
        if (a->n_sessions >= MAX_SESSIONS) {
                log_warning("refusing connection: %u sessions already", a->n_sessions);
                safe_close(fd);
                return;
        }
        pid_t pid = fork_session(a, fd, false);
        safe_close(fd);
        if (pid < 0)
                log_error_errno(errno, "fork: %m");
        else
                a->n_sessions++;
}

/* Reap sessions and, when we are PID 1 of a namespace, any orphan. */
static void reap(Agent *a) {
        struct signalfd_siginfo si;
        while (read(a->sigfd, &si, sizeof(si)) > 0)
                ;
        for (pid_t p; (p = waitpid(-1, NULL, WNOHANG)) > 0;) {
                if (p == a->serial_pid)
                        a->serial_pid = 0;
                else if (a->n_sessions > 0)
                        a->n_sessions--;
        }
}

static int setup_listeners(Agent *a) {
        if (a->args.listen_unix) {
                int fd = listen_unix(a->args.listen_unix);
                if (fd < 0)
                        return fd;
                a->listeners[a->n_listeners++] = fd;
                return 0;
        }
        return 0;
}

/* The vsock transport module may load after the agent starts: retry. */
static void start_vsock(Agent *a) {
        if (a->vsock_listening || a->args.no_vsock || a->args.listen_unix)
                return;
        int fd = listen_vsock(a->args.vsock_port);
        if (fd < 0) {
                if (!a->vsock_missing_logged)
                        log_info_errno(fd, "cannot listen on vsock port %u (will retry): %m", a->args.vsock_port);
                a->vsock_missing_logged = true;
                return;
        }
        log_info("listening on vsock port %u", a->args.vsock_port);
        a->listeners[a->n_listeners++] = fd;
        a->vsock_listening = true;
}

static int serve(Agent *a) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "sigprocmask: %m");
        a->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (a->sigfd < 0)
                return log_error_errno(errno, "signalfd: %m");
        int r = setup_listeners(a);
        if (r < 0)
                return r;
        log_info("banger-agent %s starting", BANGER_VERSION);
        for (;;) {
                start_vsock(a);
                start_serial(a);
                struct pollfd p[3] = { { .fd = a->sigfd, .events = POLLIN } };
                for (size_t i = 0; i < a->n_listeners; i++)
                        p[1 + i] = (struct pollfd){ .fd = a->listeners[i], .events = POLLIN };
                bool retry = (a->serial_pid == 0 && (!a->args.listen_unix || a->args.serial)) ||
                             (!a->vsock_listening && !a->args.no_vsock && !a->args.listen_unix);
                if (poll(p, 1 + a->n_listeners, retry ? TRANSPORT_RETRY_MS : -1) < 0 && errno != EINTR)
                        return log_error_errno(errno, "poll: %m");
                if (p[0].revents)
                        reap(a);
                for (size_t i = 0; i < a->n_listeners; i++)
                        if (p[1 + i].revents)
                                accept_one(a, a->listeners[i]);
        }
}

/* Exec'd commands are wired to pipes, but make sure fds 0-2 exist so a
 * pipe can never land on them. */
static void ensure_stdio(void) {
        for (int i = 0; i < 3; i++)
                if (fcntl(i, F_GETFD) < 0 && errno == EBADF)
                        (void) open("/dev/null", O_RDWR); /* lowest free fd: i */
}

int main(int argc, char **argv) {
        log_set_program("banger-agent");
        (void) log_parse_environment();
        ensure_stdio();
        Agent a = { .sigfd = -EBADF, .listeners = { -EBADF, -EBADF } };
        if (parse_args(argc, argv, &a.args) < 0)
                return 2;
        if (a.args.setup_network) {
                int r = agent_network_setup(a.args.root);
                if (r < 0)
                        log_error_errno(r, "network setup failed: %m");
                if (!a.args.serve)
                        return r < 0 ? 1 : 0;
        }
        (void) signal(SIGPIPE, SIG_IGN);
        /* Test mode must never power off the machine running the tests; the
         * only safe place is a PID namespace of its own, where reboot() only
         * ends that namespace. */
        a.sopt = (SessionOptions){
                .allow_poweroff = !a.args.listen_unix || getpid() == 1,
                .guest = !a.args.listen_unix,
                .root = a.args.root,
                .proc_root = "/proc",
        };
        return serve(&a) < 0 ? 1 : 0;
}
