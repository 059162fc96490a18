/* SPDX-License-Identifier: MIT */
#include "agent-info.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent-protocol.h"
#include "agent-workdisk.h"
#include "fs-util.h"
#include "banger-build.h"
#include "macro.h"
#include "strbuf.h"
#include "string-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* procfs files report size 0: read until EOF (up to max bytes). */
static int read_proc_text(const char *path, size_t max, char **ret) {
        return read_virtual_file_at(AT_FDCWD, path, max, ret, NULL);
}

static void strip_newline(char *s) {
        s[strcspn(s, "\n")] = 0;
}

int agent_health_json(char **ret, size_t *ret_len) {
        _cleanup_free_ char *boot_id = NULL, *uptime = NULL;
        int r = read_proc_text("/proc/sys/kernel/random/boot_id", 64, &boot_id);
        if (r < 0)
                return r;
        strip_newline(boot_id);
        r = read_proc_text("/proc/uptime", 128, &uptime);
        if (r < 0)
                return r;
        double up = strtod(uptime, NULL);
        struct utsname u;
        if (uname(&u) < 0)
                return -errno;

        StrBuf b = {};
        strbuf_printf(&b, "{\"agent_version\":");
        strbuf_json_string(&b, BANGER_VERSION);
        strbuf_printf(&b, ",\"agent_commit\":");
        strbuf_json_string(&b, BANGER_COMMIT);
        strbuf_printf(&b, ",\"protocol\":%u,\"boot_id\":", AGENT_PROTOCOL_VERSION);
        strbuf_json_string(&b, boot_id);
        strbuf_printf(&b, ",\"uptime_sec\":%.2f,\"hostname\":", up);
        strbuf_json_string(&b, u.nodename);
        strbuf_puts(&b, ",\"kernel\":");
        strbuf_json_string(&b, u.release);
        /* Only when the fstab names the work disk: a guest's readiness waits
         * for it (an unreadable fstab is no reason to fail health). */
        _cleanup_(agent_work_disk_done) AgentWorkDisk w = {};
        if (agent_work_disk_get(&w) > 0) {
                strbuf_puts(&b, ",\"work_disk\":{\"device\":");
                strbuf_json_string(&b, w.device);
                strbuf_puts(&b, ",\"mount\":");
                strbuf_json_string(&b, w.mount);
                strbuf_printf(&b, ",\"mounted\":%s}", w.mounted ? "true" : "false");
        }
        strbuf_puts(&b, "}");
        return strbuf_finish(&b, ret, ret_len);
}

static const struct {
        const char *key, *json;
} meminfo_fields[] = {
        { "MemTotal:", "mem_total_kib" }, { "MemFree:", "mem_free_kib" }, { "MemAvailable:", "mem_available_kib" },
        { "Buffers:", "buffers_kib" },    { "Cached:", "cached_kib" },    { "SwapTotal:", "swap_total_kib" },
        { "SwapFree:", "swap_free_kib" },
};

int agent_stats_json(char **ret, size_t *ret_len) {
        _cleanup_free_ char *mem = NULL, *load = NULL;
        int r = read_proc_text("/proc/meminfo", 16384, &mem);
        if (r < 0)
                return r;
        r = read_proc_text("/proc/loadavg", 256, &load);
        if (r < 0)
                return r;
        double l1, l5, l15;
        unsigned running, total;
        if (sscanf(load, "%lf %lf %lf %u/%u", &l1, &l5, &l15, &running, &total) != 5)
                return -EBADMSG;

        StrBuf b = {};
        strbuf_printf(&b, "{\"load1\":%.2f,\"load5\":%.2f,\"load15\":%.2f,\"procs_running\":%u,\"procs_total\":%u", l1,
                      l5, l15, running, total);
        for (size_t i = 0; i < ELEMENTSOF(meminfo_fields); i++) {
                unsigned long long v = 0;
                for (const char *line = mem; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                        const char *rest = startswith(line, meminfo_fields[i].key);
                        if (rest) {
                                v = strtoull(rest, NULL, 10);
                                break;
                        }
                }
                strbuf_printf(&b, ",\"%s\":%llu", meminfo_fields[i].json, v);
        }
        strbuf_puts(&b, "}");
        return strbuf_finish(&b, ret, ret_len);
}

typedef struct SockOwner {
        unsigned long inode;
        int pid;
        char comm[32];
} SockOwner;

typedef struct Owners {
        SockOwner *v;
        size_t n, cap;
} Owners;

/* Room for one more element in *v (n used of *cap, each size bytes),
 * doubling from 64. */
static int grow_for_one(void **v, size_t n, size_t *cap, size_t size) {
        if (n < *cap)
                return 0;
        size_t c = MAX(*cap * 2, (size_t) 64);
        void *nv = reallocarray(*v, c, size);
        if (!nv)
                return -ENOMEM;
        *v = nv;
        *cap = c;
        return 0;
}

static int owners_add(Owners *o, unsigned long inode, int pid, const char *comm) {
        int r = grow_for_one((void **) &o->v, o->n, &o->cap, sizeof(*o->v));
        if (r < 0)
                return r;
        SockOwner *s = &o->v[o->n++];
        *s = (SockOwner){ .inode = inode, .pid = pid };
        snprintf(s->comm, sizeof(s->comm), "%s", comm);
        return 0;
}

static void read_comm(const char *proc_root, const char *pid, char *buf, size_t len) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s/comm", proc_root, pid);
        _cleanup_free_ char *c = NULL;
        if (read_proc_text(path, 64, &c) < 0) {
                snprintf(buf, len, "?");
                return;
        }
        strip_newline(c);
        snprintf(buf, len, "%s", c);
}

/* Map socket inodes to the first process holding them, via /proc/<pid>/fd/<n> links. */
static int scan_process(const char *proc_root, const char *pid, Owners *o) {
        char path[256], comm[32] = "";
        snprintf(path, sizeof(path), "%s/%s/fd", proc_root, pid);
        _cleanup_(closedirp) DIR *d = opendir(path);
        if (!d)
                return 0; /* gone, or not ours to read */
        for (struct dirent *de; (de = readdir(d));) {
                char target[64];
                if (de->d_name[0] == '.')
                        continue;
                ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
                if (n <= 0)
                        continue;
                target[n] = 0;
                unsigned long inode;
                if (sscanf(target, "socket:[%lu]", &inode) != 1)
                        continue;
                if (!comm[0])
                        read_comm(proc_root, pid, comm, sizeof(comm));
                int r = owners_add(o, inode, atoi(pid), comm);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int scan_owners(const char *proc_root, Owners *o) {
        _cleanup_(closedirp) DIR *d = opendir(proc_root);
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                if (strspn(de->d_name, "0123456789") != strlen(de->d_name))
                        continue;
                int r = scan_process(proc_root, de->d_name, o);
                if (r < 0)
                        return r;
        }
        return 0;
}

static const SockOwner *owners_find(const Owners *o, unsigned long inode) {
        for (size_t i = 0; i < o->n; i++)
                if (o->v[i].inode == inode)
                        return &o->v[i];
        return NULL;
}

/* /proc/net/tcp6 prints an address as four 32-bit words in host order. */
static int parse_proc_addr(const char *hex, bool v6, char *buf, size_t len) {
        uint8_t raw[16];
        size_t words = v6 ? 4 : 1;
        if (strlen(hex) != words * 8)
                return -EBADMSG;
        for (size_t i = 0; i < words; i++) {
                char w[9];
                memcpy(w, hex + i * 8, 8);
                w[8] = 0;
                uint32_t v = (uint32_t) strtoul(w, NULL, 16);
                memcpy(raw + i * 4, &v, 4);
        }
        return inet_ntop(v6 ? AF_INET6 : AF_INET, raw, buf, (socklen_t) len) ? 0 : -errno;
}

/* One listening socket read from /proc/net/<proto>. */
typedef struct PortRow {
        const char *proto;
        char addr[INET6_ADDRSTRLEN];
        unsigned port;
        unsigned long inode;
} PortRow;

typedef struct PortRows {
        PortRow *v;
        size_t n, cap;
} PortRows;

/* A guest with more listening sockets than this gets the first ones. */
#define PORT_ROWS_MAX 65536

static int rows_add(PortRows *rows, const PortRow *row) {
        if (rows->n == PORT_ROWS_MAX)
                return 0;
        int r = grow_for_one((void **) &rows->v, rows->n, &rows->cap, sizeof(*rows->v));
        if (r < 0)
                return r;
        rows->v[rows->n++] = *row;
        return 0;
}

static int read_proto(const char *proc_root, const char *proto, PortRows *rows) {
        bool v6 = endswith(proto, "6"), tcp = startswith(proto, "tcp");
        char path[256];
        snprintf(path, sizeof(path), "%s/net/%s", proc_root, proto);
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : -errno; /* no IPv6 in this guest */
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                char local[64], remote[64];
                unsigned state;
                PortRow row = { .proto = proto };
                if (sscanf(line, " %*u: %63[0-9A-Fa-f]:%x %63[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", local,
                           &row.port, remote, &state, &row.inode) != 5)
                        continue; /* the header line */
                /* TCP: LISTEN (0x0A). UDP: bound sockets are "closed" (0x07) with no peer. */
                if (tcp ? state != 0x0A : (state != 0x07 || strspn(remote, "0") != strlen(remote)))
                        continue;
                if (parse_proc_addr(local, v6, row.addr, sizeof(row.addr)) < 0)
                        continue;
                int r = rows_add(rows, &row);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void emit_rows(const PortRows *rows, const Owners *o, StrBuf *b) {
        for (size_t i = 0; i < rows->n; i++) {
                const PortRow *row = &rows->v[i];
                const SockOwner *s = owners_find(o, row->inode);
                strbuf_printf(b, "%s{\"proto\":\"%s\",\"address\":\"%s\",\"port\":%u,\"pid\":%d,\"process\":",
                              i == 0 ? "" : ",", row->proto, row->addr, row->port, s ? s->pid : 0);
                strbuf_json_string(b, s ? s->comm : "");
                strbuf_puts(b, "}");
        }
}

/* The sockets are read first and their owners looked up after: a socket
 * listed is then held by its process while /proc is scanned (unless it
 * closed meanwhile), where the other order missed the owner of a port that
 * began listening between the two passes. */
int agent_ports_json(const char *proc_root, char **ret, size_t *ret_len) {
        PortRows rows = {};
        Owners o = {};
        int r = 0;
        static const char *const protos[] = { "tcp", "tcp6", "udp", "udp6" };
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(protos); i++)
                r = read_proto(proc_root, protos[i], &rows);
        if (r >= 0)
                r = scan_owners(proc_root, &o);
        StrBuf b = {};
        if (r >= 0) {
                strbuf_puts(&b, "{\"ports\":[");
                emit_rows(&rows, &o, &b);
                strbuf_puts(&b, "]}");
        }
        free(o.v);
        free(rows.v);
        if (r < 0)
                return r;
        return strbuf_finish(&b, ret, ret_len);
}
