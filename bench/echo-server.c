/* SPDX-License-Identifier: MIT */
/* The baseline for bench/rpc: the least a line-framed request/response
 * server over a Unix stream socket can do. One thread, epoll, and for every
 * complete line received the same line written back. No parsing, no
 * allocation per request, so what bangerd takes beyond this is the cost of
 * its JSON-RPC handling and its event loop.
 *
 * Usage: echo-server SOCKET-PATH
 * Prints "ready" on stdout once listening; SIGTERM or SIGINT ends it and
 * removes the socket. Built by bench/rpc with cc, not by meson. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define MAX_FD 4096

struct conn {
        char buf[BUF_SIZE];
        size_t len;
};

static struct conn *conns[MAX_FD];
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
        (void) sig;
        stop = 1;
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static void conn_close(int ep, int fd) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
        free(conns[fd]);
        conns[fd] = NULL;
}

/* Read what is there and answer every complete line; the client waits for
 * its reply, so replies are small and a blocking write never stalls. */
static void conn_readable(int ep, int fd) {
        struct conn *c = conns[fd];
        ssize_t n = read(fd, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n < 0 && errno == EINTR)
                return;
        if (n <= 0) {
                conn_close(ep, fd);
                return;
        }
        c->len += (size_t) n;
        size_t start = 0;
        for (char *nl; (nl = memchr(c->buf + start, '\n', c->len - start));) {
                size_t end = (size_t) (nl - c->buf) + 1;
                if (write_all(fd, c->buf + start, end - start) < 0) {
                        conn_close(ep, fd);
                        return;
                }
                start = end;
        }
        memmove(c->buf, c->buf + start, c->len - start);
        c->len -= start;
        if (c->len == sizeof(c->buf)) /* a line longer than the buffer */
                conn_close(ep, fd);
}

static int listen_on(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "echo-server: socket path too long\n");
                return -1;
        }
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 256) < 0) {
                perror("echo-server: listen");
                return -1;
        }
        return fd;
}

static int serve(int lfd) {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
                return -1;
        while (!stop) {
                struct epoll_event evs[64];
                int n = epoll_wait(ep, evs, 64, -1);
                for (int i = 0; i < n; i++) {
                        int fd = evs[i].data.fd;
                        if (fd != lfd) {
                                conn_readable(ep, fd);
                                continue;
                        }
                        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (cfd < 0)
                                continue;
                        if (cfd >= MAX_FD || !(conns[cfd] = calloc(1, sizeof(struct conn)))) {
                                close(cfd);
                                continue;
                        }
                        struct epoll_event cev = { .events = EPOLLIN, .data.fd = cfd };
                        if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev) < 0)
                                conn_close(ep, cfd);
                }
        }
        return 0;
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: echo-server SOCKET-PATH\n");
                return 2;
        }
        struct sigaction sa = { .sa_handler = on_signal };
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        int lfd = listen_on(argv[1]);
        if (lfd < 0)
                return 1;
        printf("ready\n");
        fflush(stdout);
        int r = serve(lfd);
        unlink(argv[1]);
        return r < 0 ? 1 : 0;
}
