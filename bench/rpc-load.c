/* SPDX-License-Identifier: MIT */
/* Load generator for bench/rpc: CLIENTS threads, each with its own Unix
 * stream connection, each sending REQUEST as one line and waiting for the
 * one-line reply before the next (closed loop, one request in flight per
 * client). The same program drives bangerd and the echo server, so any
 * difference between them is the server's.
 *
 * Usage: rpc-load SOCKET CLIENTS REQUESTS-PER-CLIENT REQUEST-LINE EXPECT
 * Every reply must contain EXPECT (else exit 1). Prints one line:
 *   requests=N seconds=S ops_per_sec=X p50_us=A p99_us=B max_us=C
 * Each client first sends up to 100 untimed requests (warm-up); the timed
 * part starts for all clients at once. Built by bench/rpc with cc. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 100
#define REPLY_MAX 65536

struct client {
        pthread_t thread;
        int fd;
        uint64_t *lat_ns;
        int failed;
};

static const char *sock_path, *request, *expect;
static size_t request_len;
static long per_client;
static pthread_barrier_t start_barrier;

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int connect_to(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return -1;
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* One request and its whole reply line; 0, or -1 on any failure. */
static int round_trip(int fd, char *buf) {
        for (size_t off = 0; off < request_len;) {
                ssize_t k = write(fd, request + off, request_len - off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -1;
                off += (size_t) k;
        }
        size_t len = 0;
        for (;;) {
                ssize_t k = read(fd, buf + len, REPLY_MAX - 1 - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -1;
                len += (size_t) k;
                if (buf[len - 1] == '\n')
                        break;
                if (len == REPLY_MAX - 1)
                        return -1;
        }
        buf[len] = '\0';
        return strstr(buf, expect) ? 0 : -1;
}

static void *client_main(void *arg) {
        struct client *c = arg;
        char *buf = malloc(REPLY_MAX);
        c->failed = !buf;
        for (long i = 0; !c->failed && i < WARMUP && i < per_client; i++)
                c->failed = round_trip(c->fd, buf) < 0;
        pthread_barrier_wait(&start_barrier);
        for (long i = 0; !c->failed && i < per_client; i++) {
                uint64_t t0 = now_ns();
                c->failed = round_trip(c->fd, buf) < 0;
                c->lat_ns[i] = now_ns() - t0;
        }
        if (c->failed && buf)
                fprintf(stderr, "rpc-load: a round trip failed; last reply: %.200s\n", buf);
        free(buf);
        return NULL;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *s, size_t n, double p) {
        size_t k = (size_t) ((p / 100.0) * (double) n + 0.999999);
        k = k == 0 ? 0 : k - 1;
        return (double) s[k < n ? k : n - 1] / 1000.0;
}

static int report(struct client *cs, long nclients, uint64_t elapsed_ns) {
        size_t n = (size_t) nclients * (size_t) per_client;
        uint64_t *all = malloc(n * sizeof(uint64_t));
        if (!all)
                return 1;
        for (long i = 0; i < nclients; i++)
                memcpy(all + (size_t) i * (size_t) per_client, cs[i].lat_ns, (size_t) per_client * sizeof(uint64_t));
        qsort(all, n, sizeof(uint64_t), cmp_u64);
        double secs = (double) elapsed_ns / 1e9;
        printf("requests=%zu seconds=%.6f ops_per_sec=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f\n", n, secs,
               (double) n / secs, pct_us(all, n, 50), pct_us(all, n, 99), (double) all[n - 1] / 1000.0);
        free(all);
        return 0;
}

int main(int argc, char **argv) {
        if (argc != 6) {
                fprintf(stderr, "usage: rpc-load SOCKET CLIENTS REQUESTS-PER-CLIENT REQUEST-LINE EXPECT\n");
                return 2;
        }
        sock_path = argv[1];
        long nclients = strtol(argv[2], NULL, 10);
        per_client = strtol(argv[3], NULL, 10);
        expect = argv[5];
        if (nclients < 1 || nclients > 1024 || per_client < 1 || asprintf((char **) &request, "%s\n", argv[4]) < 0)
                return 2;
        request_len = strlen(request);
        struct client *cs = calloc((size_t) nclients, sizeof(*cs));
        if (!cs)
                return 1;
        for (long i = 0; i < nclients; i++) {
                cs[i].lat_ns = calloc((size_t) per_client, sizeof(uint64_t));
                if (!cs[i].lat_ns || (cs[i].fd = connect_to(sock_path)) < 0) {
                        fprintf(stderr, "rpc-load: cannot connect to %s: %s\n", sock_path, strerror(errno));
                        return 1;
                }
        }
        pthread_barrier_init(&start_barrier, NULL, (unsigned) nclients + 1);
        for (long i = 0; i < nclients; i++)
                if (pthread_create(&cs[i].thread, NULL, client_main, &cs[i]) != 0)
                        return 1;
        pthread_barrier_wait(&start_barrier);
        uint64_t t0 = now_ns();
        int failed = 0;
        for (long i = 0; i < nclients; i++) {
                pthread_join(cs[i].thread, NULL);
                failed |= cs[i].failed;
        }
        uint64_t elapsed = now_ns() - t0;
        if (failed)
                return 1;
        return report(cs, nclients, elapsed);
}
