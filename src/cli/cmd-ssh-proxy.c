/* SPDX-License-Identifier: MIT */
/* banger ssh-proxy HOST PORT: ssh's ProxyCommand for NAME.vm. The VM is
 * found by name through the daemon (so no resolver set-up is needed), then
 * stdin and stdout are relayed to its TCP port: one thread per direction, so
 * neither can stall the other. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd-ssh-config.h"
#include "fs-util.h"
#include "output.h"
#include "string-util.h"
#include "time-util.h"
#include "verbs.h"

#define CONNECT_TIMEOUT (10 * USEC_PER_SEC)
#define RELAY_BUFFER (64 * 1024)

static void help(void) {
        printf("Usage: banger ssh-proxy HOST PORT\n"
               "\n"
               "Connect stdin and stdout to TCP PORT of the running VM HOST (NAME or NAME.vm),\n"
               "for ssh's ProxyCommand. The VM's address comes from the daemon, so NAME.vm\n"
               "needs no DNS. 'banger ssh-config install' sets it up as:\n"
               "  Host *.vm\n"
               "      ProxyCommand banger ssh-proxy %%h %%p\n");
}

/* The address of the VM: for port 22 through vm.ssh_info, which waits for
 * sshd to answer after a boot; for any other port from vm.show. */
static int vm_address(Cli *cli, RpcClient *c, const char *name, unsigned port, char **ret) {
        json_t *res = NULL;
        if (cli_call(cli, c, port == 22 ? "vm.ssh_info" : "vm.show", json_pack("{s:s}", "vm", name), &res) < 0)
                return -EIO;
        const char *ip = json_str(res, "ip", NULL), *state = json_str(res, "state", "running");
        int r = 0;
        if (!streq(state, "running")) {
                fprintf(stderr, "banger: VM %s is %s; start it with 'banger vm start %s'\n", name, state, name);
                r = -ESRCH;
        } else if (!ip || !*ip) {
                fprintf(stderr, "banger: the daemon gave no address for VM %s\n", name);
                r = -EBADMSG;
        } else if (!(*ret = strdup(ip)))
                r = -ENOMEM;
        json_decref(res);
        return r;
}

static int tcp_connect(const char *ip, unsigned port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
                return -EINVAL;
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (errno != EINPROGRESS)
                        return -errno;
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                int n = poll(&p, 1, (int) (CONNECT_TIMEOUT / USEC_PER_MSEC));
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ETIMEDOUT;
                int err = 0;
                socklen_t l = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                        return -errno;
                if (err)
                        return -err;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Copy until EOF on from; 0, or -errno on a read or write error. */
static int copy_stream(int from, int to) {
        char buf[RELAY_BUFFER];
        for (;;) {
                ssize_t n = read(from, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                int r = loop_write(to, buf, (size_t) n);
                if (r < 0)
                        return r;
        }
}

static void *stdin_to_guest(void *userdata) {
        int fd = (int) (intptr_t) userdata;
        /* ssh closed its end: tell the guest, which then closes too. */
        if (copy_stream(STDIN_FILENO, fd) == 0)
                (void) shutdown(fd, SHUT_WR);
        else
                (void) shutdown(fd, SHUT_RDWR);
        return NULL;
}

static int relay(int fd) {
        pthread_t t;
        int r = -pthread_create(&t, NULL, stdin_to_guest, (void *) (intptr_t) fd);
        if (r < 0)
                return r;
        (void) pthread_detach(t);
        /* The guest's end closing ends the session; the process exit takes
         * the other thread with it (so fd stays open until then). */
        return copy_stream(fd, STDOUT_FILENO);
}

int cmd_ssh_proxy(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "ssh-proxy", help, argc, argv, 2, 2);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        const char *host = argv[optind];
        unsigned long long port = 0;
        _cleanup_free_ char *name = strdup(host);
        if (!name)
                return EXIT_FAIL;
        if (endswith(name, ".vm"))
                name[strlen(name) - 3] = '\0';
        if (!name_is_valid(name))
                return cli_usage_error("ssh-proxy", "'%s' is not a VM: give NAME or NAME.vm", host);
        if (safe_atou64(argv[optind + 1], &port) < 0 || port == 0 || port > 65535)
                return cli_usage_error("ssh-proxy", "invalid port '%s'", argv[optind + 1]);

        _cleanup_free_ char *ip = NULL;
        {
                _cleanup_rpc_client_ RpcClient *c = NULL;
                if (cli_connect(cli, &c) < 0 || vm_address(cli, c, name, (unsigned) port, &ip) < 0)
                        return EXIT_FAIL;
        } /* no daemon connection is held for the session */
        int fd = tcp_connect(ip, (unsigned) port);
        if (fd < 0) {
                fprintf(stderr, "banger: cannot connect to VM %s at %s port %llu: %s\n", name, ip, port, strerror(-fd));
                return EXIT_FAIL;
        }
        r = relay(fd);
        if (r < 0) {
                fprintf(stderr, "banger: connection to VM %s: %s\n", name, strerror(-r));
                return EXIT_FAIL;
        }
        return EXIT_OK;
}
