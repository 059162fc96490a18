/* SPDX-License-Identifier: MIT */
/* The real Firecracker driver against tests/fakes/fake-firecracker (this
 * machine has no KVM). Each test gets a private directory holding a symlink
 * named "firecracker" to the fake (so the kernel names the process
 * "firecracker", as PID verification expects), the fake's option file, the
 * request record, disk and kernel files and the VM's run dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "firecracker-api.h"
#include "firecracker.h"
#include "fs-util.h"
#include "string-util.h"

#define FAKE TEST_DATA_DIR "/../fakes/fake-firecracker"
#define LAUNCH_TIMEOUT (10 * USEC_PER_SEC)

typedef struct Env {
        char tmp[32];
        char *bin, *record, *run, *log, *kernel, *initrd, *rootfs, *work;
        VmmConfig c;
        VmmInstance vm;
} Env;

static const VmmDriver *drv = &vmm_driver_firecracker;

static void make_file(const char *dir, const char *name, const char *content) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, name, content, strlen(content), 0644), 0);
}

static char *tmp_path(Env *e, const char *name) {
        char *p = path_join(e->tmp, name);
        assert_non_null(p);
        return p;
}

/* fake_opts: the JSON object for fake-firecracker.json, "record" added here. */
static Env *env_new(const char *fake_opts) {
        Env *e = calloc(1, sizeof(Env));
        assert_non_null(e);
        strcpy(e->tmp, "/tmp/bfc-XXXXXX");
        assert_non_null(mkdtemp(e->tmp));
        e->bin = tmp_path(e, "firecracker");
        e->record = tmp_path(e, "record.jsonl");
        e->run = tmp_path(e, "run");
        e->log = tmp_path(e, "vm.log");
        e->kernel = tmp_path(e, "vmlinux");
        e->initrd = tmp_path(e, "initrd.img");
        e->rootfs = tmp_path(e, "rootfs.ext4");
        e->work = tmp_path(e, "work.ext4");
        assert_int_equal(symlink(FAKE, e->bin), 0);
        json_t *o = json_loads(fake_opts ? fake_opts : "{}", 0, NULL);
        assert_non_null(o);
        json_object_set_new(o, "record", json_string(e->record));
        _cleanup_free_ char *s = json_dumps(o, 0);
        json_decref(o);
        make_file(e->tmp, "fake-firecracker.json", s);
        make_file(e->tmp, "vmlinux", "not really a kernel");
        make_file(e->tmp, "initrd.img", "not really an initrd");
        make_file(e->tmp, "rootfs.ext4", "root");
        make_file(e->tmp, "work.ext4", "work");
        e->c = (VmmConfig){
                .vm_id = "t1",
                .run_dir = e->run,
                .log_path = e->log,
                .binary = e->bin,
                .kernel = e->kernel,
                .initrd = e->initrd,
                .cmdline = "console=ttyS0 reboot=k panic=1",
                .vcpus = 2,
                .mem_mib = 256,
                .drives = { { .id = "rootfs", .path = e->rootfs, .is_root = true },
                            { .id = "work", .path = e->work, .read_only = true } },
                .n_drives = 2,
                .nics = { { .id = "eth0", .tap = "tap-t1", .mac = "02:fc:00:00:00:01" } },
                .n_nics = 1,
                .vsock_cid = 3,
        };
        e->vm.proc = PROCESS_NULL;
        return e;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

static void env_free(Env *e) {
        if (e->vm.proc.pidfd >= 0)
                (void) drv->kill(&e->vm);
        vmm_instance_done(&e->vm);
        (void) nftw(e->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(e->bin), free(e->record), free(e->run), free(e->log);
        free(e->kernel), free(e->initrd), free(e->rootfs), free(e->work);
        free(e);
}

static int setup(void **state) {
        *state = env_new(NULL);
        return 0;
}

static int setup_ignore_cad(void **state) {
        *state = env_new("{\"ignore_ctrl_alt_del\": true}");
        return 0;
}

static int setup_old_version(void **state) {
        *state = env_new("{\"version\": \"1.4.1\"}");
        return 0;
}

static int setup_agent(void **state) {
        *state = env_new("{\"agent_ports\": [52]}");
        return 0;
}

/* Runs even when an assertion failed, so no fake outlives its test. */
static int teardown(void **state) {
        env_free(*state);
        return 0;
}

/* The fake's record: one JSON object per event. */
static json_t *record_load(Env *e) {
        _cleanup_free_ char *s = NULL;
        assert_int_equal(read_file_at(AT_FDCWD, e->record, 1 << 20, &s, NULL), 0);
        json_t *a = json_array();
        char *save = NULL;
        for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                json_t *j = json_loads(line, 0, NULL);
                assert_non_null(j);
                json_array_append_new(a, j);
        }
        return a;
}

/* The body of the n-th request (0-based) to method+path, NULL when absent. */
static json_t *record_body(json_t *rec, const char *method, const char *path, size_t nth) {
        size_t i;
        json_t *ev;
        json_array_foreach (rec, i, ev) {
                if (!streq_ptr(json_string_value(json_object_get(ev, "method")), method) ||
                    !streq_ptr(json_string_value(json_object_get(ev, "path")), path))
                        continue;
                if (nth-- == 0)
                        return ev;
        }
        return NULL;
}

static char *replace_all(const char *s, const char *from, const char *to) {
        size_t n = 0, lf = strlen(from), lt = strlen(to);
        for (const char *p = s; (p = strstr(p, from)); p += lf)
                n++;
        char *out = malloc(strlen(s) + n * lt + 1), *o = out;
        assert_non_null(out);
        for (const char *p = s;;) {
                const char *q = strstr(p, from);
                if (!q) {
                        strcpy(o, p);
                        return out;
                }
                memcpy(o, p, (size_t) (q - p));
                o += q - p;
                memcpy(o, to, lt);
                o += lt;
                p = q + lf;
        }
}

/* The request body the fake received equals the golden file (JSON equality,
 * with the test's temp dir written as @TMP@ in the golden). */
static void assert_request_golden(Env *e, json_t *rec, const char *method, const char *path, size_t nth,
                                  const char *golden) {
        json_t *ev = record_body(rec, method, path, nth);
        if (!ev)
                fail_msg("the fake never received %s %s (#%zu)", method, path, nth);
        /* Every body came with a Content-Length and without "Expect: 100-continue". */
        assert_non_null(json_string_value(json_object_get(ev, "content_length")));
        assert_true(json_is_null(json_object_get(ev, "expect")));
        _cleanup_free_ char *gpath = path_join(TEST_DATA_DIR "/firecracker", golden), *gtext = NULL;
        assert_int_equal(read_file_at(AT_FDCWD, gpath, 65536, &gtext, NULL), 0);
        _cleanup_free_ char *expanded = replace_all(gtext, "@TMP@", e->tmp);
        json_t *want = json_loads(expanded, 0, NULL);
        json_t *got = json_loads(json_string_value(json_object_get(ev, "body")), 0, NULL);
        assert_non_null(want);
        assert_non_null(got);
        if (!json_equal(want, got)) {
                _cleanup_free_ char *g = json_dumps(got, JSON_SORT_KEYS);
                fail_msg("%s %s body differs from %s: got %s", method, path, golden, g);
        }
        json_decref(want);
        json_decref(got);
}

static void assert_state(Env *e, const char *want) {
        const char *s = NULL;
        assert_int_equal(drv->query_state(&e->vm, &s), 0);
        assert_string_equal(s, want);
}

static bool pid_exists(pid_t pid) {
        char p[32];
        snprintf(p, sizeof(p), "/proc/%d", (int) pid);
        return access(p, F_OK) == 0;
}

static void test_launch_configure_start(void **state) {
        Env *e = *state;
        error_clear();
        int r = drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm);
        if (r < 0)
                fail_msg("launch: %s (%s)", strerror(-r), error_last_message());
        assert_int_equal(e->vm.kind, VMM_FIRECRACKER);
        assert_true(e->vm.proc.pid > 0 && e->vm.proc.pidfd >= 0);
        assert_true(e->vm.agent_needs_handshake);
        _cleanup_free_ char *sock = path_join(e->run, "fc.sock"), *vsock = path_join(e->run, "v.sock");
        assert_string_equal(e->vm.api_socket, sock);
        assert_string_equal(e->vm.agent_socket, vsock);
        assert_int_equal(vmm_process_verify(e->vm.proc.pid, "firecracker", sock), 0);
        assert_state(e, "not started");

        json_t *rec = record_load(e);
        assert_request_golden(e, rec, "PUT", "/boot-source", 0, "boot-source.json");
        assert_request_golden(e, rec, "PUT", "/machine-config", 0, "machine-config.json");
        assert_request_golden(e, rec, "PUT", "/drives/rootfs", 0, "drive-rootfs.json");
        assert_request_golden(e, rec, "PUT", "/drives/work", 0, "drive-work.json");
        assert_request_golden(e, rec, "PUT", "/network-interfaces/eth0", 0, "network-interface-eth0.json");
        assert_request_golden(e, rec, "PUT", "/vsock", 0, "vsock.json");
        assert_null(record_body(rec, "PUT", "/actions", 0)); /* configured, not started */
        json_decref(rec);

        assert_int_equal(drv->start(&e->vm), 0);
        assert_state(e, "running");
        assert_int_equal(drv->pause(&e->vm), 0);
        assert_state(e, "paused");
        assert_int_equal(drv->resume(&e->vm), 0);
        assert_state(e, "running");

        rec = record_load(e);
        assert_request_golden(e, rec, "PUT", "/actions", 0, "action-instance-start.json");
        assert_request_golden(e, rec, "PATCH", "/vm", 0, "vm-paused.json");
        assert_request_golden(e, rec, "PATCH", "/vm", 1, "vm-resumed.json");
        json_decref(rec);
        /* Drives are symlinks in the run dir, named relatively (above), so a
         * saved state names no VM's own paths. */
        _cleanup_free_ char *link = path_join(e->run, "drive-rootfs");
        char target[256] = "";
        assert_true(readlink(link, target, sizeof(target) - 1) > 0);
        assert_string_equal(target, e->rootfs);
}

/* Index of the first record event matching method and path at or after from. */
static ssize_t record_index(json_t *rec, const char *method, const char *path, size_t from) {
        for (size_t i = from; i < json_array_size(rec); i++) {
                json_t *ev = json_array_get(rec, i);
                if (streq_ptr(json_string_value(json_object_get(ev, "method")), method) &&
                    streq_ptr(json_string_value(json_object_get(ev, "path")), path))
                        return (ssize_t) i;
        }
        return -1;
}

static void assert_mode(const char *dir, const char *name, mode_t mode) {
        _cleanup_free_ char *p = path_join(dir, name);
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, mode);
}

/* Save a running VM: paused first, Full snapshot into temporary names,
 * renamed 0600 files, nothing else left; it stays paused. */
static char *save_running_vm(Env *e, VmmSavedState *saved) {
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), 0);
        assert_int_equal(drv->start(&e->vm), 0);
        char *snap = tmp_path(e, "snap");
        assert_int_equal(mkdir(snap, 0700), 0);
        error_clear();
        int r = drv->save_state(&e->vm, snap, 30 * USEC_PER_SEC, saved);
        if (r < 0)
                fail_msg("save_state: %s (%s)", strerror(-r), error_last_message());
        assert_state(e, "paused");
        assert_mode(snap, VMM_STATE_FILE, 0600);
        assert_mode(snap, VMM_MEMORY_FILE, 0600);
        _cleanup_free_ char *tmp_state = path_join(snap, ".vm.state.tmp");
        assert_int_equal(access(tmp_state, F_OK), -1);
        assert_true(saved->state_bytes > 0);
        json_t *rec = record_load(e);
        ssize_t paused = record_index(rec, "PATCH", "/vm", 0),
                created = record_index(rec, "PUT", "/snapshot/create", 0);
        assert_true(paused >= 0 && created > paused); /* the paused precondition */
        assert_request_golden(e, rec, "PUT", "/snapshot/create", 0, "snapshot-create.json");
        json_decref(rec);
        return snap;
}

/* A second VM's configuration: its own run dir, TAP and disk copies. */
static VmmConfig restore_config(Env *e, const char *snap, const char *version) {
        VmmConfig c = e->c;
        c.vm_id = "t2";
        c.run_dir = tmp_path(e, "run2");
        c.drives[0].path = tmp_path(e, "rootfs2.ext4");
        c.drives[1].path = tmp_path(e, "work2.ext4");
        make_file(e->tmp, "rootfs2.ext4", "root copy");
        make_file(e->tmp, "work2.ext4", "work copy");
        c.nics[0].tap = "tap-t2";
        c.nics[0].mac = "02:fc:00:00:00:02";
        c.restore_dir = snap;
        c.restore_version = version;
        return c;
}

static void restore_config_done(VmmConfig *c) {
        free((char *) c->run_dir);
        free((char *) c->drives[0].path);
        free((char *) c->drives[1].path);
}

static void test_snapshot_save_and_load(void **state) {
        Env *e = *state;
        VmmSavedState saved = {};
        _cleanup_free_ char *snap = save_running_vm(e, &saved), *version = NULL;
        assert_int_equal(drv->kill(&e->vm), 0);
        assert_int_equal(drv->version(e->bin, &version), 0);
        assert_string_equal(version, "Firecracker v1.7.0");

        VmmConfig c = restore_config(e, snap, version);
        VmmInstance vm = { .proc = PROCESS_NULL };
        error_clear();
        int r = drv->launch(&c, LAUNCH_TIMEOUT, &vm);
        if (r < 0)
                fail_msg("restore: %s (%s)", strerror(-r), error_last_message());
        const char *st = NULL;
        assert_int_equal(drv->query_state(&vm, &st), 0);
        assert_string_equal(st, "paused");
        assert_int_equal(drv->start(&vm), 0);
        assert_int_equal(drv->query_state(&vm, &st), 0);
        assert_string_equal(st, "running");

        json_t *rec = record_load(e);
        ssize_t load = record_index(rec, "PUT", "/snapshot/load", 0);
        assert_true(load > 0);
        assert_request_golden(e, rec, "PUT", "/snapshot/load", 0, "snapshot-load.json");
        /* A fresh process gets the load and nothing that configures a boot;
         * then a resume, not an InstanceStart. */
        assert_int_equal(record_index(rec, "PUT", "/boot-source", (size_t) load), -1);
        assert_int_equal(record_index(rec, "PUT", "/actions", (size_t) load), -1);
        ssize_t resumed = record_index(rec, "PATCH", "/vm", (size_t) load);
        assert_true(resumed > load);
        json_decref(rec);
        assert_int_equal(drv->kill(&vm), 0);
        vmm_instance_done(&vm);
        restore_config_done(&c);
}

static void test_snapshot_load_failures(void **state) {
        Env *e = *state;
        VmmSavedState saved = {};
        _cleanup_free_ char *snap = save_running_vm(e, &saved);
        assert_int_equal(drv->kill(&e->vm), 0);
        VmmConfig c = restore_config(e, snap, "Firecracker v1.6.0");
        VmmInstance vm = { .proc = PROCESS_NULL };

        /* Another version's state is refused before any Firecracker runs. */
        json_t *rec = record_load(e);
        size_t events = json_array_size(rec);
        json_decref(rec);
        error_clear();
        assert_int_equal(drv->launch(&c, LAUNCH_TIMEOUT, &vm), -EPROTONOSUPPORT);
        assert_non_null(strstr(error_last_message(), "Firecracker v1.6.0"));
        assert_non_null(strstr(error_last_message(), "Firecracker v1.7.0"));
        rec = record_load(e);
        assert_int_equal(json_array_size(rec), events);
        json_decref(rec);

        /* A corrupt state file: Firecracker's words, and no process left. */
        c.restore_version = "Firecracker v1.7.0";
        make_file(snap, VMM_STATE_FILE, "garbage");
        error_clear();
        assert_int_equal(drv->launch(&c, LAUNCH_TIMEOUT, &vm), -EREMOTEIO);
        assert_non_null(strstr(error_last_message(), "Snapshot file is corrupt"));
        _cleanup_free_ char *sock = path_join(c.run_dir, "fc.sock");
        assert_int_equal(access(sock, F_OK), -1);
        restore_config_done(&c);
}

static void test_graceful_stop(void **state) {
        Env *e = *state;
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), 0);
        assert_int_equal(drv->start(&e->vm), 0);
        pid_t pid = e->vm.proc.pid;
        assert_int_equal(vmm_stop(drv, &e->vm, 5 * USEC_PER_SEC), 0); /* exited by itself */
        assert_false(pid_exists(pid));
        assert_int_equal(e->vm.proc.pidfd, -EBADF);
        assert_int_equal(access(e->vm.api_socket, F_OK), -1); /* sockets and pidfile removed */
        assert_int_equal(access(e->vm.pidfile, F_OK), -1);
        json_t *rec = record_load(e);
        assert_request_golden(e, rec, "PUT", "/actions", 1, "action-send-ctrl-alt-del.json");
        json_decref(rec);
}

static void test_stop_timeout_sigkill(void **state) {
        Env *e = *state;
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), 0);
        assert_int_equal(drv->start(&e->vm), 0);
        pid_t pid = e->vm.proc.pid;
        /* The wait on its own reports the distinct timeout, and the VM still runs. */
        assert_int_equal(drv->request_shutdown(&e->vm), 0);
        assert_int_equal(drv->wait_exit(&e->vm, 300 * USEC_PER_MSEC), -ETIMEDOUT);
        assert_true(pid_exists(pid));
        assert_state(e, "running");
        /* vmm_stop: shutdown ignored, deadline passes, SIGKILL through the pidfd. */
        assert_int_equal(vmm_stop(drv, &e->vm, 300 * USEC_PER_MSEC), 1);
        assert_false(pid_exists(pid));
        assert_int_equal(access(e->vm.api_socket, F_OK), -1);
}

static void test_fault_message(void **state) {
        Env *e = *state;
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), 0);
        assert_int_equal(drv->start(&e->vm), 0);
        /* Firecracker's own words reach the caller unchanged. */
        error_clear();
        assert_int_equal(fc_api_put_machine_config(e->vm.api_socket, 4, 512), -EREMOTEIO);
        assert_string_equal(error_last_message(),
                            "The requested operation is not supported after starting the microVM.");
        error_clear();
        assert_int_equal(drv->start(&e->vm), -EREMOTEIO);
        assert_string_equal(error_last_message(),
                            "The requested operation is not supported after starting the microVM.");
        /* An unknown field is refused the way serde's deny_unknown_fields does. */
        error_clear();
        assert_int_equal(
                fc_api_send(e->vm.api_socket, "PUT", "/logger", json_pack("{s:s}", "colour", "red"), FC_API_TIMEOUT),
                -EREMOTEIO);
        assert_non_null(strstr(error_last_message(), "unknown field `colour`"));
}

static void test_launch_error_cleans_up(void **state) {
        Env *e = *state;
        _cleanup_free_ char *missing = path_join(e->tmp, "no-such-vmlinux");
        e->c.kernel = missing;
        error_clear();
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), -EREMOTEIO);
        assert_string_equal(error_last_message(), "Boot source error: The kernel file cannot be opened: "
                                                  "No such file or directory (os error 2)");
        /* The half-configured VMM does not outlive the failure. */
        json_t *rec = record_load(e);
        pid_t pid = (pid_t) json_integer_value(json_object_get(json_array_get(rec, 0), "pid"));
        json_decref(rec);
        assert_true(pid > 0);
        assert_false(pid_exists(pid));
        _cleanup_free_ char *sock = path_join(e->run, "fc.sock");
        assert_int_equal(access(sock, F_OK), -1);
}

static void test_old_version_refused(void **state) {
        Env *e = *state;
        error_clear();
        assert_int_equal(drv->probe(e->bin), -EPROTONOSUPPORT);
        assert_non_null(strstr(error_last_message(), "1.4.1 is too old"));
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), -EPROTONOSUPPORT);
        assert_int_equal(access(e->record, F_OK), -1); /* never started for real */
}

/* The daemon's umask must not matter: the socket is 0600 from its first
 * existence. inotify proves nobody changed its attributes after creation
 * (no IN_ATTRIB), and the fake records the mode right after bind(). */
static void test_socket_mode_umask_000(void **state) {
        Env *e = *state;
        assert_int_equal(vmm_prepare_run_dir(e->run), 0);
        _cleanup_close_ int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        assert_true(ifd >= 0);
        assert_true(inotify_add_watch(ifd, e->run, IN_CREATE | IN_ATTRIB) >= 0);
        mode_t old = umask(0);
        int r = drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm);
        umask(old);
        assert_int_equal(r, 0);

        bool created = false, attrib = false;
        char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t n;
        while ((n = read(ifd, buf, sizeof(buf))) > 0)
                for (char *p = buf; p < buf + n;) {
                        struct inotify_event *ev = (struct inotify_event *) p;
                        if (ev->len && streq(ev->name, "fc.sock")) {
                                created |= !!(ev->mask & IN_CREATE);
                                attrib |= !!(ev->mask & IN_ATTRIB);
                        }
                        p += sizeof(*ev) + ev->len;
                }
        assert_true(created);
        assert_false(attrib);
        struct stat st;
        assert_int_equal(lstat(e->vm.api_socket, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        json_t *rec = record_load(e);
        json_t *bind = json_array_get(rec, 0);
        assert_string_equal(json_string_value(json_object_get(bind, "event")), "bind");
        assert_int_equal(json_integer_value(json_object_get(bind, "mode")), 0600);
        json_decref(rec);
        /* The log file too is private despite umask 000. */
        assert_int_equal(lstat(e->log, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_attach_after_restart(void **state) {
        Env *e = *state;
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), 0);
        VmmInstance again = { .proc = PROCESS_NULL };
        assert_int_equal(drv->attach(&e->c, &again), 0);
        assert_int_equal(again.proc.pid, e->vm.proc.pid);
        assert_string_equal(again.api_socket, e->vm.api_socket);
        vmm_instance_done(&again);

        /* A pidfile naming a reused pid (another program) is not trusted: the
         * socket's listener is found instead. */
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, e->run);
        assert_int_equal(write_file_atomic_at(dfd, "fc.pid", buf, (size_t) len, 0600), 0);
        assert_int_equal(drv->attach(&e->c, &again), 0);
        assert_int_equal(again.proc.pid, e->vm.proc.pid);
        vmm_instance_done(&again);

        assert_int_equal(drv->kill(&e->vm), 0);
        assert_int_equal(drv->attach(&e->c, &again), -ESRCH);
}

static void test_launch_refuses_live_socket(void **state) {
        Env *e = *state;
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), 0);
        VmmInstance second = { .proc = PROCESS_NULL };
        error_clear();
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &second), -EBUSY);
        assert_non_null(strstr(error_last_message(), "still runs"));
}

/* A Firecracker of this VM that runs but does not answer (stopped here) is
 * still alive: a second launch fails and leaves its socket and pidfile. */
static void test_launch_keeps_files_of_a_silent_vmm(void **state) {
        Env *e = *state;
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), 0);
        _cleanup_free_ char *api = path_join(e->run, FC_API_SOCKET_NAME);
        _cleanup_free_ char *pidfile = path_join(e->run, FC_PIDFILE_NAME);
        assert_int_equal(kill(e->vm.proc.pid, SIGSTOP), 0);
        VmmInstance second = { .proc = PROCESS_NULL };
        error_clear();
        int r = drv->launch(&e->c, LAUNCH_TIMEOUT, &second);
        bool api_kept = access(api, F_OK) == 0, pidfile_kept = access(pidfile, F_OK) == 0;
        assert_int_equal(kill(e->vm.proc.pid, SIGCONT), 0);
        assert_int_equal(r, -EBUSY);
        assert_non_null(strstr(error_last_message(), "vmm.lock"));
        assert_true(api_kept);
        assert_true(pidfile_kept);
        long status = 0;
        assert_true(fc_api_request(api, "GET", "/", NULL, LAUNCH_TIMEOUT, &status, NULL) >= 0);
}

static void test_connect_agent(void **state) {
        Env *e = *state;
        assert_int_equal(drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm), 0);
        assert_int_equal(drv->start(&e->vm), 0);
        _cleanup_close_ int fd = drv->connect_agent(&e->vm, 52, 2 * USEC_PER_SEC);
        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, "ping\n", 5), 0);
        char buf[8] = "";
        assert_int_equal(loop_read(fd, buf, 5), 5);
        assert_memory_equal(buf, "ping\n", 5);
        /* Nobody listens on port 53: the connection is closed until the deadline. */
        assert_int_equal(drv->connect_agent(&e->vm, 53, 300 * USEC_PER_MSEC), -ETIMEDOUT);
}

int main(void) {
        if (access("/usr/bin/python3", X_OK) < 0) {
                printf("fake-firecracker needs /usr/bin/python3, which is missing\n");
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_launch_configure_start, setup, teardown),
                cmocka_unit_test_setup_teardown(test_graceful_stop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_snapshot_save_and_load, setup, teardown),
                cmocka_unit_test_setup_teardown(test_snapshot_load_failures, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stop_timeout_sigkill, setup_ignore_cad, teardown),
                cmocka_unit_test_setup_teardown(test_fault_message, setup, teardown),
                cmocka_unit_test_setup_teardown(test_launch_error_cleans_up, setup, teardown),
                cmocka_unit_test_setup_teardown(test_old_version_refused, setup_old_version, teardown),
                cmocka_unit_test_setup_teardown(test_socket_mode_umask_000, setup, teardown),
                cmocka_unit_test_setup_teardown(test_attach_after_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_launch_keeps_files_of_a_silent_vmm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_launch_refuses_live_socket, setup, teardown),
                cmocka_unit_test_setup_teardown(test_connect_agent, setup_agent, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
