/* SPDX-License-Identifier: MIT */
/* The Firecracker driver and the agent client against the FAKE Firecracker's
 * guest emulation (tests/fakes/fake-firecracker, "agent" key): InstanceStart
 * runs the real banger-agent as PID 1 of its own namespaces, the vsock socket
 * proxies to it, and the agent's poweroff ends the guest and the fake. Needs
 * root (namespaces, mounts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent-client.h"
#include "error.h"
#include "firecracker.h"
#include "fs-util.h"
#include "string-util.h"

#define FAKE TEST_DATA_DIR "/../fakes/fake-firecracker"
#define AGENT_BIN TEST_BUILD_DIR "/src/agent/banger-agent"
#define LAUNCH_TIMEOUT (10 * USEC_PER_SEC)
#define AGENT_TIMEOUT (10 * USEC_PER_SEC)
#define T_SEC (5 * USEC_PER_SEC)

typedef struct Env {
        char tmp[32];
        char *bin, *record, *run, *log, *kernel, *rootfs;
        VmmConfig c;
        VmmInstance vm;
} Env;

static const VmmDriver *drv = &vmm_driver_firecracker;

static char *tmp_path(Env *e, const char *name) {
        char *p = path_join(e->tmp, name);
        assert_non_null(p);
        return p;
}

static void make_file(Env *e, const char *name, const char *content) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, e->tmp);
        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, name, content, strlen(content), 0644), 0);
}

static int setup(void **state) {
        Env *e = calloc(1, sizeof(Env));
        assert_non_null(e);
        strcpy(e->tmp, "/tmp/bfg-XXXXXX");
        assert_non_null(mkdtemp(e->tmp));
        e->bin = tmp_path(e, "firecracker");
        e->record = tmp_path(e, "record.jsonl");
        e->run = tmp_path(e, "run");
        e->log = tmp_path(e, "vm.log");
        e->kernel = tmp_path(e, "vmlinux");
        e->rootfs = tmp_path(e, "rootfs.ext4");
        assert_int_equal(symlink(FAKE, e->bin), 0);
        json_t *o = json_pack("{s:s, s:s}", "record", e->record, "agent", AGENT_BIN);
        _cleanup_free_ char *s = json_dumps(o, 0);
        json_decref(o);
        make_file(e, "fake-firecracker.json", s);
        make_file(e, "vmlinux", "not really a kernel");
        make_file(e, "rootfs.ext4", "root");
        e->c = (VmmConfig){
                .vm_id = "g1",
                .run_dir = e->run,
                .log_path = e->log,
                .binary = e->bin,
                .kernel = e->kernel,
                .cmdline = "console=ttyS0 reboot=k panic=1 ip=172.16.0.2::172.16.0.1:255.255.255.0:fcguest:eth0:off",
                .vcpus = 1,
                .mem_mib = 128,
                .drives = { { .id = "rootfs", .path = e->rootfs, .is_root = true } },
                .n_drives = 1,
                .vsock_cid = 3,
        };
        e->vm.proc = PROCESS_NULL;
        *state = e;
        return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        Env *e = *state;
        if (e->vm.proc.pidfd >= 0)
                (void) drv->kill(&e->vm);
        vmm_instance_done(&e->vm);
        (void) nftw(e->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(e->bin), free(e->record), free(e->run), free(e->log), free(e->kernel), free(e->rootfs);
        free(e);
        return 0;
}

/* The n-th (0-based) record event named `event`, as a new reference; NULL when absent. */
static json_t *record_event(Env *e, const char *event, size_t nth) {
        _cleanup_free_ char *s = NULL;
        if (read_file_at(AT_FDCWD, e->record, 1 << 20, &s, NULL) < 0)
                return NULL;
        char *save = NULL;
        for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                json_t *j = json_loads(line, 0, NULL);
                if (j && streq_ptr(json_string_value(json_object_get(j, "event")), event) && nth-- == 0)
                        return j;
                json_decref(j);
        }
        return NULL;
}

static bool record_has_request(Env *e, const char *path_, const char *body_part) {
        for (size_t i = 0;; i++) {
                json_t *j = record_event(e, "request", i);
                if (!j)
                        return false;
                bool hit = streq_ptr(json_string_value(json_object_get(j, "path")), path_) &&
                           strstr(json_string_value(json_object_get(j, "body")) ?: "", body_part);
                json_decref(j);
                if (hit)
                        return true;
        }
}

/* Processes whose PID namespace is `pidns` ("pid:[N]"). */
static unsigned count_ns_processes(const char *pidns) {
        unsigned n = 0;
        DIR *d = opendir("/proc");
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));) {
                char link[300], target[64];
                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                snprintf(link, sizeof(link), "/proc/%s/ns/pid", de->d_name);
                ssize_t l = readlink(link, target, sizeof(target) - 1);
                if (l <= 0)
                        continue;
                target[l] = 0;
                n += streq(target, pidns);
        }
        closedir(d);
        return n;
}

static bool ns_empty_within(const char *pidns, usec_t timeout) {
        usec_t deadline = now_monotonic() + timeout;
        while (count_ns_processes(pidns) > 0) {
                if (now_monotonic() >= deadline)
                        return false;
                (void) poll(NULL, 0, 20);
        }
        return true;
}

/* Launch, start, wait for the agent's hello like the daemon does; returns
 * the guest's PID namespace ("pid:[N]") in pidns. */
static AgentClient *boot(Env *e, char pidns[static 64]) {
        error_clear();
        int r = drv->launch(&e->c, LAUNCH_TIMEOUT, &e->vm);
        if (r < 0)
                fail_msg("launch: %s (%s)", strerror(-r), error_last_message());
        assert_int_equal(drv->start(&e->vm), 0);
        int fd = drv->connect_agent(&e->vm, AGENT_VSOCK_PORT, AGENT_TIMEOUT);
        if (fd < 0)
                fail_msg("connect_agent: %s (%s)", strerror(-fd), error_last_message());
        AgentClient *c = NULL;
        assert_int_equal(agent_client_new(fd, &c), 0);
        assert_int_equal(agent_client_hello(c, T_SEC, NULL), 0);
        json_t *ev = record_event(e, "guest-boot", 0);
        assert_non_null(ev);
        const char *ns = json_string_value(json_object_get(ev, "pidns"));
        assert_non_null(ns);
        snprintf(pidns, 64, "%s", ns);
        json_decref(ev);
        assert_true(count_ns_processes(pidns) >= 1);
        return c;
}

static char *exec_output(AgentClient *c, char *const *argv) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        AgentExecOptions o = { .argv = argv, .stdin_fd = -1, .stdout_fd = p[1], .stderr_fd = -1 };
        AgentExecResult res;
        assert_int_equal(agent_client_exec(c, &o, T_SEC, &res), 0);
        close(p[1]);
        assert_int_equal(res.kind, AGENT_EXIT_CODE);
        assert_int_equal(res.code, 0);
        char *out = calloc(1, 4096);
        assert_non_null(out);
        ssize_t n = loop_read(p[0], out, 4095);
        close(p[0]);
        assert_true(n >= 0);
        out[strcspn(out, "\n")] = 0;
        return out;
}

static void test_guest_health_exec_poweroff(void **state) {
        Env *e = *state;
        char pidns[64];
        AgentClient *c = boot(e, pidns);
        AgentHealth h = {};
        assert_int_equal(agent_client_health(c, T_SEC, &h), 0);
        /* The guest's own boot id, hostname (from ip=) and a fresh uptime;
         * the host's kernel. */
        json_t *ev = record_event(e, "guest-boot", 0);
        assert_string_equal(h.boot_id, json_string_value(json_object_get(ev, "boot_id")));
        json_decref(ev);
        _cleanup_free_ char *host_boot_id = NULL;
        assert_int_equal(read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", 64, &host_boot_id, NULL), 0);
        assert_null(strstr(host_boot_id, h.boot_id));
        assert_string_equal(h.hostname, "fcguest");
        assert_true(h.uptime_sec >= 0 && h.uptime_sec < 60);
        struct utsname u;
        assert_int_equal(uname(&u), 0);
        assert_string_equal(h.kernel, u.release);
        agent_health_done(&h);

        /* Commands run inside the guest's PID namespace, under the agent as PID 1. */
        _cleanup_free_ char *comm = exec_output(c, (char *[]){ "cat", "/proc/1/comm", NULL });
        assert_string_equal(comm, "banger-agent");

        /* Poweroff ends the guest's namespace, and the fake exits by itself
         * without any Ctrl-Alt-Del. */
        pid_t pid = e->vm.proc.pid;
        assert_int_equal(agent_client_poweroff(c, T_SEC), 0);
        agent_client_free(c);
        assert_int_equal(drv->wait_exit(&e->vm, T_SEC), 0);
        char p[32];
        snprintf(p, sizeof(p), "/proc/%d", (int) pid);
        assert_int_equal(access(p, F_OK), -1);
        assert_true(ns_empty_within(pidns, T_SEC));
        assert_false(record_has_request(e, "/actions", "SendCtrlAltDel"));
        ev = record_event(e, "guest-exit", 0);
        assert_non_null(ev);
        json_decref(ev);
}

static void test_kill_ends_guest_and_reboot_is_fresh(void **state) {
        Env *e = *state;
        char pidns[64];
        AgentClient *c = boot(e, pidns);
        AgentHealth first = {};
        assert_int_equal(agent_client_health(c, T_SEC, &first), 0);
        agent_client_free(c);
        /* SIGKILL of the VMM takes its guest along (no agent survives). */
        assert_int_equal(drv->kill(&e->vm), 0);
        assert_true(ns_empty_within(pidns, T_SEC));
        vmm_instance_done(&e->vm);
        e->vm = (VmmInstance){ .proc = PROCESS_NULL };

        /* The next boot is another guest with another boot id (namespace
         * inode numbers are recycled, so they prove nothing). */
        (void) unlink(e->record);
        c = boot(e, pidns);
        AgentHealth second = {};
        assert_int_equal(agent_client_health(c, T_SEC, &second), 0);
        agent_client_free(c);
        assert_string_not_equal(first.boot_id, second.boot_id);
        agent_health_done(&first);
        agent_health_done(&second);
}

static void test_paused_guest_does_not_answer(void **state) {
        Env *e = *state;
        char pidns[64];
        agent_client_free(boot(e, pidns));
        assert_int_equal(drv->pause(&e->vm), 0);
        /* A frozen guest accepts no vsock connection and ignores Ctrl-Alt-Del. */
        assert_int_equal(drv->connect_agent(&e->vm, AGENT_VSOCK_PORT, 500 * USEC_PER_MSEC), -ETIMEDOUT);
        assert_int_equal(drv->request_shutdown(&e->vm), 0);
        assert_int_equal(drv->wait_exit(&e->vm, 500 * USEC_PER_MSEC), -ETIMEDOUT);
        /* Resumed, it answers again, then acts on the pending Ctrl-Alt-Del. */
        assert_int_equal(drv->resume(&e->vm), 0);
        assert_int_equal(drv->wait_exit(&e->vm, T_SEC), 0);
        assert_true(ns_empty_within(pidns, T_SEC));
}

/* A snapshot keeps the guest: after a load in a fresh fake with its own run
 * dir, the agent answers with the same boot id and hostname, an uptime that
 * went on from the snapshot's, and a file the guest wrote is still there. */
static void test_guest_survives_snapshot_and_load(void **state) {
        Env *e = *state;
        char pidns[64];
        AgentClient *c = boot(e, pidns);
        _cleanup_free_ char *w = exec_output(c, (char *[]){ "sh", "-c", "echo kept > /tmp/marker", NULL });
        AgentHealth before = {};
        assert_int_equal(agent_client_health(c, T_SEC, &before), 0);
        agent_client_free(c);
        _cleanup_free_ char *snap = tmp_path(e, "snap"), *version = NULL, *run2 = tmp_path(e, "run2");
        assert_int_equal(mkdir(snap, 0700), 0);
        VmmSavedState saved;
        assert_int_equal(drv->save_state(&e->vm, snap, T_SEC, &saved), 0);
        assert_true(saved.memory_bytes > 0);
        assert_int_equal(drv->kill(&e->vm), 0);
        assert_true(ns_empty_within(pidns, T_SEC));
        vmm_instance_done(&e->vm);
        e->vm = (VmmInstance){ .proc = PROCESS_NULL };

        assert_int_equal(drv->version(e->bin, &version), 0);
        e->c.vm_id = "g2";
        e->c.run_dir = run2;
        e->c.restore_dir = snap;
        e->c.restore_version = version;
        (void) unlink(e->record);
        c = boot(e, pidns);
        AgentHealth after = {};
        assert_int_equal(agent_client_health(c, T_SEC, &after), 0);
        assert_string_equal(after.boot_id, before.boot_id);
        assert_string_equal(after.hostname, "fcguest");
        assert_true(after.uptime_sec >= before.uptime_sec);
        _cleanup_free_ char *kept = exec_output(c, (char *[]){ "cat", "/tmp/marker", NULL });
        assert_string_equal(kept, "kept");
        agent_client_free(c);
        json_t *ev = record_event(e, "guest-boot", 0);
        assert_true(json_is_true(json_object_get(ev, "restored")));
        json_decref(ev);
        agent_health_done(&before);
        agent_health_done(&after);
}

static void test_unknown_port_refused(void **state) {
        Env *e = *state;
        char pidns[64];
        agent_client_free(boot(e, pidns));
        /* Nobody listens on port 52 in the guest: the connection is closed. */
        assert_int_equal(drv->connect_agent(&e->vm, 52, 300 * USEC_PER_MSEC), -ETIMEDOUT);
}

int main(void) {
        if (geteuid() != 0) {
                printf("the fake Firecracker's guest emulation needs root (PID and mount namespaces)\n");
                return 77;
        }
        static const char *const needed[] = { "/usr/bin/python3", "/usr/bin/unshare", "/usr/bin/setpriv", AGENT_BIN };
        for (size_t i = 0; i < ELEMENTSOF(needed); i++)
                if (access(needed[i], X_OK) < 0) {
                        printf("%s is missing\n", needed[i]);
                        return 77;
                }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_guest_health_exec_poweroff, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kill_ends_guest_and_reboot_is_fresh, setup, teardown),
                cmocka_unit_test_setup_teardown(test_paused_guest_does_not_answer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_port_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_guest_survives_snapshot_and_load, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
