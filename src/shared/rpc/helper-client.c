/* SPDX-License-Identifier: MIT */
#include "helper-client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "banger-build.h"
#include "error.h"
#include "fs-util.h"
#include "io-util.h"
#include "log.h"
#include "socket-util.h"
#include "string-util.h"

static int errno_from_name(const char *name) {
        for (int e = 1; name && e < 4096; e++) {
                const char *n = strerrorname_np(e);
                if (n && streq(n, name))
                        return -e;
        }
        return -EIO;
}

static int connect_helper(const char *path, int *ret_fd) {
        int fd = unix_connect(path, SOCK_NONBLOCK);
        if (fd == -EINVAL)
                return error_setf(fd, "the helper socket path is empty");
        if (fd == -ENAMETOOLONG)
                return fd; /* the message names the path and what to do */
        if (fd < 0)
                return error_setf(fd, "cannot reach the privileged helper at %s: %s", path, strerror(-fd));
        *ret_fd = fd;
        return 0;
}

/* A write failure (the helper refused us and closed) is not final: its
 * reply with the reason may still be waiting to be read. */
static void send_request(int fd, const char *text, usec_t deadline) {
        size_t len = strlen(text), off = 0;
        while (off < len) {
                ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
                if (n < 0 && errno == EAGAIN && fd_wait_until(fd, POLLOUT, deadline) >= 0)
                        continue;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                off += (size_t) n;
        }
        (void) shutdown(fd, SHUT_WR);
}

static int read_reply(int fd, usec_t deadline, char **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        for (;;) {
                if (cap - len < 4096) {
                        if (cap >= HELPER_MAX_REPLY)
                                return error_setf(-EBADMSG, "reply from the helper is larger than %d bytes",
                                                  HELPER_MAX_REPLY);
                        char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                }
                ssize_t n = read(fd, buf + len, cap - len - 1);
                if (n < 0 && errno == EAGAIN) {
                        int r = fd_wait_until(fd, POLLIN, deadline);
                        if (r < 0)
                                return r == -ETIMEDOUT ? error_setf(r, "the helper did not answer in time") : r;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                /* The helper may close on a request it refused before reading
                 * all of it; its reply is still queued ahead of the reset. */
                if (n < 0 && errno == ECONNRESET && len > 0)
                        break;
                if (n < 0)
                        return errno == ECONNRESET ? error_setf(-ECONNRESET, "the helper closed the connection")
                                                   : -errno;
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int parse_reply(const char *method, const char *text, size_t len, json_t **ret_result) {
        json_error_t e;
        json_auto_t *reply = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
        json_t *ok = reply ? json_object_get(reply, "ok") : NULL;
        if (!json_is_boolean(ok))
                return error_setf(-EBADMSG, "%s: the helper sent no valid reply%s", method,
                                  len == 0 ? " (connection closed)" : "");
        if (json_is_false(ok)) {
                const char *msg = json_string_value(json_object_get(reply, "error"));
                int r = errno_from_name(json_string_value(json_object_get(reply, "errno")));
                return error_setf(r, "%s", msg ? msg : strerror(-r));
        }
        json_t *result = json_object_get(reply, "result");
        if (!json_is_object(result))
                return error_setf(-EBADMSG, "%s: the helper's reply has no result object", method);
        if (ret_result)
                *ret_result = json_incref(result);
        return 0;
}

int helper_call(const char *socket_path, const char *method, json_t *params, usec_t timeout, json_t **ret_result) {
        json_auto_t *req = json_pack("{s:s, s:o*}", "method", method, "params", params);
        if (!req)
                return -ENOMEM;
        _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        usec_t deadline = deadline_from_timeout(timeout);
        _cleanup_close_ int fd = -EBADF;
        int r = connect_helper(socket_path, &fd);
        if (r < 0)
                return r;
        send_request(fd, text, deadline);
        _cleanup_free_ char *reply = NULL;
        size_t len = 0;
        if ((r = read_reply(fd, deadline, &reply, &len)) < 0)
                return r;
        return parse_reply(method, reply, len, ret_result);
}

int helper_ping(const char *socket_path, usec_t timeout, json_t **ret_info) {
        return helper_call(socket_path, "helper.ping", NULL, timeout, ret_info);
}

static int call_simple(const char *socket_path, const char *method, json_t *params) {
        if (!params)
                return -ENOMEM;
        return helper_call(socket_path, method, params, HELPER_CALL_TIMEOUT, NULL);
}

int helper_bridge_ensure(const char *socket_path, bool *ret_created) {
        json_auto_t *res = NULL;
        int r = helper_call(socket_path, "bridge.ensure", NULL, HELPER_CALL_TIMEOUT, &res);
        if (r >= 0 && ret_created)
                *ret_created = json_is_true(json_object_get(res, "created"));
        return r;
}

int helper_tap_create(const char *socket_path, const char *name) {
        return call_simple(socket_path, "tap.create", json_pack("{s:s}", "name", name));
}

int helper_tap_delete(const char *socket_path, const char *name) {
        return call_simple(socket_path, "tap.delete", json_pack("{s:s}", "name", name));
}

static int json_to_strv(json_t *a, char ***ret) {
        size_t i, n = json_array_size(a);
        _cleanup_strv_free_ char **l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        json_t *v;
        json_array_foreach (a, i, v) {
                if (!json_is_string(v))
                        return error_setf(-EBADMSG, "the helper sent a non-string list entry");
                if (!(l[i] = strdup(json_string_value(v))))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int helper_tap_list(const char *socket_path, char ***ret) {
        json_auto_t *res = NULL;
        int r = helper_call(socket_path, "tap.list", NULL, HELPER_CALL_TIMEOUT, &res);
        return r < 0 ? r : json_to_strv(json_object_get(res, "taps"), ret);
}

int helper_nat_apply(const char *socket_path, const HelperNatEntry *entries, size_t n) {
        json_t *list = json_array();
        for (size_t i = 0; list && i < n; i++) {
                char ip[INET_ADDRSTRLEN];
                if (!inet_ntop(AF_INET, &entries[i].guest, ip, sizeof ip)) {
                        json_decref(list);
                        return -errno;
                }
                if (json_array_append_new(list, json_pack("{s:s, s:s}", "ip", ip, "tap", entries[i].tap)) < 0) {
                        json_decref(list);
                        return -ENOMEM;
                }
        }
        return call_simple(socket_path, "nat.apply", list ? json_pack("{s:o}", "entries", list) : NULL);
}

static int call_for_string(const char *socket_path, const char *method, json_t *params, const char *key, char **ret) {
        json_auto_t *res = NULL;
        if (!params)
                return -ENOMEM;
        int r = helper_call(socket_path, method, params, HELPER_CALL_TIMEOUT, &res);
        if (r < 0)
                return r;
        const char *s = json_string_value(json_object_get(res, key));
        if (!s)
                return error_setf(-EBADMSG, "%s: the helper's reply lacks '%s'", method, key);
        return (*ret = strdup(s)) ? 0 : -ENOMEM;
}

int helper_loop_attach(const char *socket_path, const char *relpath, bool read_only, char **ret_device) {
        return call_for_string(socket_path, "loop.attach",
                               json_pack("{s:s, s:b}", "path", relpath, "read_only", read_only), "device", ret_device);
}

int helper_loop_detach(const char *socket_path, const char *device) {
        return call_simple(socket_path, "loop.detach", json_pack("{s:s}", "device", device));
}

int helper_dm_snapshot_create(const char *socket_path, const char *dm_name, const char *base_relpath,
                              const char *cow_relpath, char **ret_device) {
        return call_for_string(socket_path, "dm.snapshot.create",
                               json_pack("{s:s, s:s, s:s}", "name", dm_name, "base", base_relpath, "cow", cow_relpath),
                               "device", ret_device);
}

int helper_dm_snapshot_remove(const char *socket_path, const char *dm_name) {
        return call_simple(socket_path, "dm.snapshot.remove", json_pack("{s:s}", "name", dm_name));
}

int helper_resolved_configure(const char *socket_path) {
        return helper_call(socket_path, "resolved.configure", NULL, HELPER_CALL_TIMEOUT, NULL);
}

static json_t *strv_to_json(char *const *l) {
        json_t *a = json_array();
        for (; a && l && *l; l++)
                if (json_array_append_new(a, json_string(*l)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

int helper_reconcile(const char *socket_path, char *const *keep_taps, char *const *keep_files, char *const *keep_dm,
                     json_t **ret_removed) {
        json_t *params = json_pack("{s:o, s:o, s:o}", "keep_taps", strv_to_json(keep_taps), "keep_files",
                                   strv_to_json(keep_files), "keep_dm", strv_to_json(keep_dm));
        if (!params)
                return -ENOMEM;
        return helper_call(socket_path, "reconcile", params, HELPER_CALL_TIMEOUT, ret_removed);
}

static char *exe_sibling(const char *relative) {
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return NULL;
        exe[n] = '\0';
        _cleanup_free_ char *p = path_join(dirname(exe), relative);
        return p && access(p, X_OK) == 0 ? TAKE_PTR(p) : NULL;
}

char *helper_find_binary(void) {
        /* Installed next to bangerd (or in the build tree, src/helper next to
         * src/daemon) before the configured libexec dir, so a development
         * build never picks up an older installed helper. No PATH lookup: a
         * root daemon must not run whatever a PATH entry offers. */
        char *p = exe_sibling(HELPER_BINARY_NAME);
        if (!p)
                p = exe_sibling("../helper/" HELPER_BINARY_NAME);
        if (!p) /* installed: bangerd in bin/, the helper in libexec/banger/ */
                p = exe_sibling("../libexec/banger/" HELPER_BINARY_NAME);
        if (!p) {
                p = path_join(BANGER_LIBEXECDIR, HELPER_BINARY_NAME);
                if (p && access(p, X_OK) < 0) {
                        free(p);
                        p = NULL;
                }
        }
        return p;
}

/* An existing helper is reusable only when it serves the same owner. */
static int helper_check_existing(const HelperSpawnOptions *o, json_t *info) {
        json_int_t uid = json_integer_value(json_object_get(info, "owner_uid"));
        if (uid != (json_int_t) o->owner_uid)
                return error_setf(-EADDRINUSE, "a helper for uid %lld already listens on %s", (long long) uid,
                                  o->socket_path);
        return 0;
}

static int spawn_argv_add(char **argv, size_t *n, const char *opt, const char *value) {
        if (!value)
                return 0;
        argv[(*n)++] = (char *) opt;
        argv[(*n)++] = (char *) value;
        return 0;
}

static int helper_start(const HelperSpawnOptions *o, const char *binary, Process *ret) {
        char uid[16], gid[16], port[8], pool[16];
        snprintf(uid, sizeof(uid), "%u", (unsigned) o->owner_uid);
        snprintf(gid, sizeof(gid), "%u", (unsigned) o->owner_gid);
        snprintf(port, sizeof(port), "%u", o->dns_port);
        snprintf(pool, sizeof(pool), "%u", o->tap_pool);
        char *argv[32];
        size_t n = 0;
        argv[n++] = (char *) binary;
        spawn_argv_add(argv, &n, "--owner-uid", uid);
        spawn_argv_add(argv, &n, "--owner-gid", gid);
        spawn_argv_add(argv, &n, "--state-dir", o->state_dir);
        spawn_argv_add(argv, &n, "--socket", o->socket_path);
        spawn_argv_add(argv, &n, "--cidr", o->cidr);
        spawn_argv_add(argv, &n, "--bridge", o->bridge);
        spawn_argv_add(argv, &n, "--bridge-ip", o->bridge_ip);
        spawn_argv_add(argv, &n, "--uplink", o->uplink);
        spawn_argv_add(argv, &n, "--dns-port", o->dns_port ? port : NULL);
        spawn_argv_add(argv, &n, "--tap-pool", o->tap_pool ? pool : NULL);
        argv[n] = NULL;
        SpawnOptions so;
        spawn_options_init(&so);
        so.stderr_fd = o->log_fd;
        so.new_session = true;
        int r = spawn_process(argv, &so, ret);
        if (r < 0)
                return error_setf(r, "cannot start %s: %s", binary, strerror(-r));
        return 0;
}

/* Poll helper.ping until it answers; between tries wait on the pidfd so a
 * helper that dies is noticed at once instead of at the deadline. */
static int helper_wait_ready(const HelperSpawnOptions *o, Process *p, usec_t deadline) {
        for (;;) {
                json_auto_t *info = NULL;
                int r = helper_ping(o->socket_path, 2 * USEC_PER_SEC, &info);
                if (r >= 0)
                        return 0;
                if (r != -ENOENT && r != -ECONNREFUSED)
                        return r;
                struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
                int ms = deadline_poll_ms(deadline);
                if (ms == 0)
                        return error_setf(-ETIMEDOUT, "bangerd-root did not answer on %s in time", o->socket_path);
                if (poll(&pfd, 1, MIN(ms, 20)) > 0) {
                        int status = 0;
                        (void) process_wait(p, 0, &status);
                        return error_setf(-ECHILD,
                                          "bangerd-root exited before it was ready (wait status %d); "
                                          "see its log",
                                          status);
                }
        }
}

int helper_spawn(const HelperSpawnOptions *o, Process *ret) {
        if (!o || !o->socket_path || !o->state_dir)
                return -EINVAL;
        json_auto_t *info = NULL;
        int r = helper_ping(o->socket_path, 2 * USEC_PER_SEC, &info);
        if (r >= 0) {
                if ((r = helper_check_existing(o, info)) < 0)
                        return r;
                *ret = PROCESS_NULL;
                return 0;
        }
        _cleanup_free_ char *found = o->binary ? NULL : helper_find_binary();
        const char *binary = o->binary ?: found;
        if (!binary)
                return error_setf(-ENOENT,
                                  "cannot find " HELPER_BINARY_NAME " next to this program or in " BANGER_LIBEXECDIR);
        Process p = PROCESS_NULL;
        if ((r = helper_start(o, binary, &p)) < 0)
                return r;
        usec_t deadline = now_monotonic() + (o->timeout ? o->timeout : 10 * USEC_PER_SEC);
        error_clear();
        if ((r = helper_wait_ready(o, &p, deadline)) < 0) {
                if (r != -ECHILD)
                        process_kill_and_reap(&p);
                else
                        process_release(&p);
                return r;
        }
        log_debug("started %s as pid %d on %s", binary, (int) p.pid, o->socket_path);
        *ret = p;
        return 1;
}
