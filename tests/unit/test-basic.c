/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "io-util.h"
#include "log.h"
#include "socket-util.h"
#include "spawn.h"
#include "string-util.h"
#include "time-util.h"

static void test_name_is_valid(void **state) {
        assert_true(name_is_valid("a"));
        assert_true(name_is_valid("web-01"));
        assert_true(name_is_valid("0abc"));
        assert_false(name_is_valid(""));
        assert_false(name_is_valid("-a"));
        assert_false(name_is_valid("A"));
        assert_false(name_is_valid("a_b"));
        assert_false(name_is_valid("a.vm"));
        /* A hostname label: it cannot end with a hyphen either. */
        assert_false(name_is_valid("x-"));
        assert_false(name_is_valid("web-"));
        assert_true(name_is_valid("a-b"));
        char buf[80];
        memset(buf, 'a', 63);
        buf[63] = 0;
        assert_true(name_is_valid(buf));
        buf[63] = 'a';
        buf[64] = 0;
        assert_false(name_is_valid(buf));
}

static void test_parse_duration(void **state) {
        uint64_t v = 1;
        assert_int_equal(parse_duration_sec("off", 1000000, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_duration_sec("90", 1000000, &v), 0);
        assert_int_equal(v, 90);
        assert_int_equal(parse_duration_sec("5s", 1000000, &v), 0);
        assert_int_equal(v, 5);
        assert_int_equal(parse_duration_sec("15m", 1000000, &v), 0);
        assert_int_equal(v, 900);
        assert_int_equal(parse_duration_sec("1h30m", 1000000, &v), 0);
        assert_int_equal(v, 5400);
        assert_int_equal(parse_duration_sec("2d", 1000000, &v), 0);
        assert_int_equal(v, 172800);
        assert_int_equal(parse_duration_sec("12d", 1000000, &v), -ERANGE);
        assert_int_equal(parse_duration_sec("99999999999999999999999", 1000000, &v), -ERANGE);
        const char *bad[] = { "", "m", "5x", "5ss", "-5", "5 m", "1.5h", "on", NULL };
        for (size_t i = 0; bad[i]; i++)
                assert_int_equal(parse_duration_sec(bad[i], 1000000, &v), -EINVAL);
        assert_int_equal(parse_duration_sec(NULL, 1000000, &v), -EINVAL);
}

static void test_make_printable(void **state) {
        char osc[] = "\x1b]0;PWN\x07\x1b[2Jsshd";
        assert_string_equal(string_make_printable(osc, false), "?]0;PWN??[2Jsshd");
        char c1[] = "a\xc2\x9b"
                    "31mb\x7f\xff\xfe"; /* U+009B is CSI on some terminals */
        assert_string_equal(string_make_printable(c1, false), "a?31mb???");
        char lines[] = "one\r\ntwo\tthree\rfour\n";
        assert_string_equal(string_make_printable(lines, true), "one\r\ntwo\tthree?four\n");
        char flat[] = "one\nforged line";
        assert_string_equal(string_make_printable(flat, false), "one?forged line");
        char ok[] = "h\xc3\xa9llo \xe2\x82\xac";
        assert_string_equal(string_make_printable(ok, false), "h\xc3\xa9llo \xe2\x82\xac");
        assert_null(string_make_printable(NULL, false));

        _cleanup_free_ char *p = printable_strndup("\xff\xfe"
                                                   "err\x1b[0m\n",
                                                   10);
        assert_non_null(p);
        assert_string_equal(p, "\xef\xbf\xbd\xef\xbf\xbd"
                               "err?[0m?");
        assert_true(utf8_is_valid_n(p, strlen(p)));
        _cleanup_free_ char *z = printable_strndup("a\0b", 3);
        assert_string_equal(z, "a?b");
}

/* Guest text quoted in an error or a log line: the error stays valid UTF-8
 * without escapes; the log line stays one line. */
static void test_error_and_log_cleaned(void **state) {
        const char *guest = "name\xff\x1b]0;PWN\x07\nbangerd: forged";
        error_setf(-EINVAL, "entry \"%s\" is bad", guest);
        const char *m = error_last_message();
        assert_true(utf8_is_valid_n(m, strlen(m)));
        assert_null(strchr(m, 0x1b));
        assert_null(strchr(m, 0x07));
        char path[] = "/tmp/bg-log-XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC);
        assert_true(fd >= 0);
        unlink(path);
        log_set_file_fd(fd);
        log_warning("guest said %s", guest);
        log_set_file_fd(-EBADF);
        char buf[512] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        close(fd);
        assert_true(n > 0);
        assert_non_null(strstr(buf, "forged"));
        assert_ptr_equal(strchr(buf, '\n'), buf + n - 1); /* one line */
        assert_null(strchr(buf, 0x1b));
        assert_true(utf8_is_valid_n(buf, (size_t) n));
}

static void test_utf8_truncate(void **state) {
        const char *s = "ab\xe2\x82\xac"
                        "cd"; /* "ab€cd" */
        assert_int_equal(utf8_truncate_len(s, 7, 10), 7);
        assert_int_equal(utf8_truncate_len(s, 7, 2), 2);
        assert_int_equal(utf8_truncate_len(s, 7, 3), 2);
        assert_int_equal(utf8_truncate_len(s, 7, 4), 2);
        assert_int_equal(utf8_truncate_len(s, 7, 5), 5);
        assert_int_equal(utf8_truncate_len("\xf0\x9f\x98\x80x", 5, 3), 0);
}

static void test_utf8_strndup_valid(void **state) {
        size_t n = 0;
        _cleanup_free_ char *a = utf8_strndup_valid("a\0\x1b[0m\n\xc3\xa9", 9, &n);
        assert_int_equal(n, 9);
        assert_memory_equal(a, "a\0\x1b[0m\n\xc3\xa9", 9);
        _cleanup_free_ char *b = utf8_strndup_valid("x\xff\xc3", 3, &n);
        assert_int_equal(n, 7);
        assert_string_equal(b, "x\xef\xbf\xbd\xef\xbf\xbd");
        assert_true(utf8_is_valid_n(b, n));
}

static void test_shell_quote_argv(void **state) {
        char *argv[] = { "echo", "a   b", "$HOME", "it's", "", NULL };
        char *q = shell_quote_argv(argv);
        assert_string_equal(q, "'echo' 'a   b' '$HOME' 'it'\\''s' ''");
        free(q);
        char *none[] = { NULL };
        q = shell_quote_argv(none);
        assert_string_equal(q, "");
        free(q);
}

static void test_utf8(void **state) {
        assert_true(utf8_is_valid_n("héllo", strlen("héllo")));
        assert_false(utf8_is_valid_n("\xc3\x28", 2));
        assert_false(utf8_is_valid_n("\xc0\xaf", 2));         /* overlong */
        assert_false(utf8_is_valid_n("\xed\xa0\x80", 3));     /* surrogate */
        assert_false(utf8_is_valid_n("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
        assert_false(utf8_is_valid_n("\xe2\x82", 2));         /* truncated */

        /* Each length class round-trips through the validator. */
        static const struct {
                uint32_t cp;
                const char *utf8;
        } enc[] = {
                { 0x41, "A" },
                { 0x7F, "\x7f" },
                { 0x80, "\xc2\x80" },
                { 0xE9, "\xc3\xa9" },
                { 0x7FF, "\xdf\xbf" },
                { 0x800, "\xe0\xa0\x80" },
                { 0x20AC, "\xe2\x82\xac" },
                { 0xFFFF, "\xef\xbf\xbf" },
                { 0x10000, "\xf0\x90\x80\x80" },
                { 0x10FFFF, "\xf4\x8f\xbf\xbf" },
        };
        for (size_t i = 0; i < ELEMENTSOF(enc); i++) {
                char out[4];
                size_t n = utf8_encode_unichar(enc[i].cp, out);
                assert_int_equal(n, strlen(enc[i].utf8));
                assert_memory_equal(out, enc[i].utf8, n);
                assert_true(utf8_is_valid_n(out, n));
        }
}

static void test_parse_size(void **state) {
        unsigned long long v;
        assert_int_equal(parse_size("8G", &v), 0);
        assert_true(v == 8ULL << 30);
        assert_int_equal(parse_size("512MiB", &v), 0);
        assert_true(v == 512ULL << 20);
        assert_int_equal(parse_size("100", &v), 0);
        assert_true(v == 100);
        assert_int_equal(parse_size("-1", &v), -EINVAL);
        assert_int_equal(parse_size("1X", &v), -EINVAL);
        assert_int_equal(parse_size("99999999999T", &v), -ERANGE);
}

static void test_atomic_write(void **state) {
        char tmpl[] = "/tmp/banger-test-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, tmpl);
        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, "f", "hello", 5, 0600), 0);
        assert_int_equal(write_file_atomic_at(dfd, "f", "world!", 6, 0600), 0);
        _cleanup_free_ char *s = NULL;
        size_t l;
        assert_int_equal(read_file_at(dfd, "f", 100, &s, &l), 0);
        assert_string_equal(s, "world!");
        struct stat st;
        assert_int_equal(fstatat(dfd, "f", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        /* A symlink is never followed. */
        assert_int_equal(symlinkat("/etc/passwd", dfd, "link"), 0);
        _cleanup_free_ char *s2 = NULL;
        assert_int_equal(read_file_at(dfd, "link", 100000, &s2, NULL), -ELOOP);
        assert_int_equal(read_file_at(dfd, "f", 3, &s2, NULL), -EFBIG);
        unlinkat(dfd, "f", 0);
        unlinkat(dfd, "link", 0);
        rmdir(tmpl);
}

static void test_atomic_write_owned(void **state) {
        char tmpl[] = "/tmp/banger-test-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, tmpl);
        assert_true(dfd >= 0);
        /* The umask does not narrow the mode; the owner is set too. */
        mode_t old = umask(077);
        uid_t uid = geteuid() == 0 ? 1234 : geteuid();
        gid_t gid = geteuid() == 0 ? 5678 : getegid();
        int r = write_file_atomic_at_owned(dfd, "unit", "[Unit]\n", 7, 0644, uid, gid);
        umask(old);
        assert_int_equal(r, 0);
        struct stat st;
        assert_int_equal(fstatat(dfd, "unit", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(st.st_uid, uid);
        assert_int_equal(st.st_gid, gid);
        assert_int_equal(st.st_size, 7);
        /* Replacing keeps the name atomic and leaves no temp file. */
        assert_int_equal(write_file_atomic_at_owned(dfd, "unit", "x", 1, 0600, uid, gid), 0);
        assert_int_equal(fstatat(dfd, "unit", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_size, 1);
        _cleanup_close_ int it = dup(dfd);
        DIR *d = fdopendir(TAKE_FD(it));
        assert_non_null(d);
        unsigned n = 0;
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] != '.';
        closedir(d);
        assert_int_equal(n, 1);
        assert_int_equal(unlinkat(dfd, "unit", 0), 0);
        assert_int_equal(rmdir(tmpl), 0);
}

static unsigned count_entries(DIR *d) {
        unsigned n = 0;
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] != '.';
        return n;
}

static void test_opendir_at(void **state) {
        char tmpl[] = "/tmp/banger-test-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, tmpl);
        assert_true(dfd >= 0);
        assert_int_equal(mkdirat(dfd, "sub", 0700), 0);
        assert_int_equal(write_file_atomic_at(dfd, "f", "x", 1, 0600), 0);
        assert_int_equal(symlinkat("sub", dfd, "link"), 0);
        /* Each stream reads the whole directory: no offset shared with
         * dfd or with another stream. */
        for (int i = 0; i < 2; i++) {
                _cleanup_closedir_ DIR *d = NULL;
                assert_int_equal(opendir_at(dfd, ".", &d), 0);
                assert_int_equal(count_entries(d), 3);
        }
        _cleanup_closedir_ DIR *sub = NULL;
        assert_int_equal(opendir_at(dfd, "sub", &sub), 0);
        assert_int_equal(count_entries(sub), 0);
        assert_true(fcntl(dirfd(sub), F_GETFD) & FD_CLOEXEC);
        /* A symlink is never followed, a file is not a directory. */
        DIR *none = NULL;
        assert_int_equal(opendir_at(dfd, "link", &none), -ENOTDIR); /* followed, it would open sub */
        assert_int_equal(opendir_at(dfd, "f", &none), -ENOTDIR);
        assert_int_equal(opendir_at(dfd, "missing", &none), -ENOENT);
        assert_null(none);
        assert_int_equal(rm_rf_at(AT_FDCWD, tmpl), 0);
}

static void test_read_virtual_file(void **state) {
        _cleanup_free_ char *comm = NULL, *cut = NULL, *status = NULL;
        size_t len = 0;
        /* procfs reports size 0; the content is read anyway. */
        assert_int_equal(read_virtual_file_at(AT_FDCWD, "/proc/self/comm", 64, &comm, &len), 0);
        assert_string_equal(comm, "test-basic\n");
        assert_int_equal(len, 11);
        /* Longer than max: cut there, still terminated. */
        assert_int_equal(read_virtual_file_at(AT_FDCWD, "/proc/self/comm", 4, &cut, &len), 0);
        assert_string_equal(cut, "test");
        assert_int_equal(len, 4);
        char self[32];
        snprintf(self, sizeof(self), "/proc/%d", (int) getpid());
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, self);
        assert_true(dfd >= 0);
        assert_int_equal(read_virtual_file_at(dfd, "status", 1 << 16, &status, NULL), 0);
        assert_non_null(strstr(status, "Name:\ttest-basic\n"));
        char *none = NULL;
        assert_int_equal(read_virtual_file_at(AT_FDCWD, "/proc/self/no-such-file", 64, &none, NULL), -ENOENT);
        assert_null(none);
}

static void test_spawn(void **state) {
        _cleanup_free_ char *out = NULL;
        char *argv[] = { "sh", "-c", "echo hi; echo err >&2; exit 3", NULL };
        assert_int_equal(spawn_run_capture(argv, 5 * USEC_PER_SEC, 100, true, &out), 3);
        assert_string_equal(out, "hi\nerr\n");

        char *argv2[] = { "sleep", "10", NULL };
        usec_t t0 = now_monotonic();
        assert_int_equal(spawn_run_capture(argv2, 200 * USEC_PER_MSEC, 100, false, NULL), -ETIMEDOUT);
        assert_true(now_monotonic() - t0 < 3 * USEC_PER_SEC);

        char *argv3[] = { "/nonexistent/prog", NULL };
        Process p = PROCESS_NULL;
        assert_int_equal(spawn_process(argv3, NULL, &p), -ENOENT);

        /* The environment is cleared: only PATH is passed. */
        setenv("BANGER_SECRET", "x", 1);
        _cleanup_free_ char *env = NULL;
        char *argv4[] = { "env", NULL };
        assert_int_equal(spawn_run_capture(argv4, 5 * USEC_PER_SEC, 4096, false, &env), 0);
        assert_null(strstr(env, "BANGER_SECRET"));

        /* Signals through the pidfd; wait reports it. */
        char *argv5[] = { "sleep", "10", NULL };
        assert_int_equal(spawn_process(argv5, NULL, &p), 0);
        assert_int_equal(process_wait(&p, 50 * USEC_PER_MSEC, NULL), -ETIMEDOUT);
        assert_int_equal(process_signal(&p, SIGTERM), 0);
        int status = 0;
        assert_int_equal(process_wait(&p, 5 * USEC_PER_SEC, &status), 0);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGTERM);
        process_release(&p);
}

static void test_spawn_umask_and_fds(void **state) {
        /* The child's umask is the one we ask for, and it sees no fds beyond stdio. */
        _cleanup_close_ int leak = open("/dev/null", O_RDONLY); /* deliberately not CLOEXEC */
        assert_true(leak >= 0);
        _cleanup_free_ char *out = NULL;
        char *argv[] = { "sh", "-c", "umask; ls /proc/self/fd | wc -l", NULL };
        assert_int_equal(spawn_run_capture(argv, 5 * USEC_PER_SEC, 100, false, &out), 0);
        /* 0,1,2 plus the fd ls itself opens for the directory listing. */
        assert_string_equal(out, "0077\n4\n");
}

static unsigned count_entries_at(int dfd) {
        DIR *d = fdopendir(fcntl(dfd, F_DUPFD_CLOEXEC, 3));
        assert_non_null(d);
        rewinddir(d); /* the dup shares dfd's offset */
        unsigned n = count_entries(d);
        closedir(d);
        return n;
}

static bool ofd_lock_held(int dfd, const char *name) {
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        assert_int_equal(fcntl(fd, F_OFD_GETLK, &l), 0);
        return l.l_type != F_UNLCK;
}

static void test_spawn_pidfile_and_kept_lock(void **state) {
        char tmpl[] = "/tmp/banger-test-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, tmpl);
        assert_true(dfd >= 0);
        int lock = openat(dfd, "vmm.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        assert_true(lock >= 0);
        struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        assert_int_equal(fcntl(lock, F_OFD_SETLK, &l), 0);

        /* The child writes its own pid; the kept fd is its fd 3 and nothing else leaks. */
        SpawnOptions o;
        spawn_options_init(&o);
        o.pidfile_dir_fd = dfd;
        o.pidfile_name = "child.pid";
        o.keep_fd = lock;
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        o.stdout_fd = p[1];
        char *argv[] = { "sh", "-c", "ls /proc/self/fd | wc -l; readlink /proc/self/fd/3; exec sleep 10", NULL };
        Process proc = PROCESS_NULL;
        assert_int_equal(spawn_process(argv, &o, &proc), 0);
        close(p[1]);
        lock = safe_close(lock); /* the child's copy alone holds the lock now */
        char out[512] = {};
        for (size_t len = 0; !strstr(out, ".lock\n") && len < sizeof(out) - 1;) {
                ssize_t n = read(p[0], out + len, sizeof(out) - 1 - len);
                assert_true(n > 0);
                len += (size_t) n;
        }
        close(p[0]);
        _cleanup_free_ char *want = NULL;
        assert_true(asprintf(&want, "5\n%s/vmm.lock\n", tmpl) > 0);
        assert_string_equal(out, want);
        _cleanup_free_ char *pid = NULL, *pid_want = NULL;
        assert_int_equal(read_file_at(dfd, "child.pid", 64, &pid, NULL), 0);
        assert_true(asprintf(&pid_want, "%d\n", (int) proc.pid) > 0);
        assert_string_equal(pid, pid_want);
        assert_int_equal(count_entries_at(dfd), 2); /* no temporary file left */

        /* Held exactly as long as the child lives. */
        assert_true(ofd_lock_held(dfd, "vmm.lock"));
        assert_int_equal(process_wait(&proc, 100 * USEC_PER_MSEC, NULL), -ETIMEDOUT);
        assert_true(ofd_lock_held(dfd, "vmm.lock"));
        assert_int_equal(process_signal(&proc, SIGKILL), 0);
        assert_int_equal(process_wait(&proc, 5 * USEC_PER_SEC, NULL), 0);
        process_release(&proc);
        assert_false(ofd_lock_held(dfd, "vmm.lock"));

        /* A child that cannot write its pidfile never runs the program, and leaves none. */
        char long_name[300];
        memset(long_name, 'x', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = '\0';
        o = (SpawnOptions){};
        spawn_options_init(&o);
        o.pidfile_dir_fd = dfd;
        o.pidfile_name = long_name;
        char *argv2[] = { "true", NULL };
        assert_int_equal(spawn_process(argv2, &o, &proc), -ENAMETOOLONG);
        assert_int_equal(count_entries_at(dfd), 2);
        assert_int_equal(rm_rf_at(AT_FDCWD, tmpl), 0);
}

static void test_deadline_poll_ms(void **state) {
        assert_int_equal(deadline_poll_ms(USEC_INFINITY), -1);
        assert_int_equal(deadline_poll_ms(0), 0);
        assert_int_equal(deadline_poll_ms(now_monotonic() - 1), 0);
        /* Rounded up: a poll never wakes before the deadline. */
        int ms = deadline_poll_ms(now_monotonic() + 10 * USEC_PER_SEC);
        assert_true(ms > 9000 && ms <= 10000);
        usec_t d = now_monotonic() + 1500;
        ms = deadline_poll_ms(d);
        usec_t after = now_monotonic();
        assert_true(ms >= 0 && ms <= 2);
        if (after < d) /* still time left: ms covers all of it */
                assert_true((usec_t) ms * USEC_PER_MSEC >= d - after);
        assert_int_equal(deadline_poll_ms(USEC_INFINITY - 1), INT_MAX);
}

static void test_deadline_from_timeout(void **state) {
        assert_true(deadline_from_timeout(USEC_INFINITY) == USEC_INFINITY);
        /* A sum past the clock's range saturates instead of wrapping into the past. */
        assert_true(deadline_from_timeout(USEC_INFINITY - 1) == USEC_INFINITY);
        usec_t before = now_monotonic();
        usec_t d = deadline_from_timeout(5 * USEC_PER_SEC);
        assert_true(d >= before + 5 * USEC_PER_SEC && d <= now_monotonic() + 5 * USEC_PER_SEC);
        assert_true(deadline_from_timeout(0) <= now_monotonic());
}

static void on_alarm(int sig) {
}

/* A SIGALRM (no SA_RESTART) every 5 ms for the test's duration, so the
 * waits below are interrupted again and again. */
static void start_alarm_storm(void) {
        struct sigaction sa = { .sa_handler = on_alarm };
        assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
        struct itimerval it = { .it_interval = { 0, 5000 }, .it_value = { 0, 5000 } };
        assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void stop_alarm_storm(void) {
        struct itimerval it = {};
        assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
        signal(SIGALRM, SIG_DFL);
}

static void test_sleep_ms(void **state) {
        usec_t t0 = now_monotonic();
        sleep_ms(30);
        assert_true(now_monotonic() - t0 >= 30 * USEC_PER_MSEC);
        /* Signals do not cut it short. */
        start_alarm_storm();
        t0 = now_monotonic();
        sleep_ms(100);
        usec_t took = now_monotonic() - t0;
        stop_alarm_storm();
        assert_true(took >= 100 * USEC_PER_MSEC);
        assert_true(took < 2 * USEC_PER_SEC);
}

static void test_fd_wait_until(void **state) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        _cleanup_close_ int rd = p[0], wr = p[1];

        /* Nothing to read: the deadline ends the wait, not earlier, even
         * with signals arriving throughout. */
        start_alarm_storm();
        usec_t t0 = now_monotonic();
        int r = fd_wait_until(rd, POLLIN, t0 + 80 * USEC_PER_MSEC);
        usec_t took = now_monotonic() - t0;
        stop_alarm_storm();
        assert_int_equal(r, -ETIMEDOUT);
        assert_true(took >= 80 * USEC_PER_MSEC);
        assert_true(took < 2 * USEC_PER_SEC);

        /* Ready fds answer at once, even when the deadline already passed. */
        assert_int_equal(fd_wait_until(wr, POLLOUT, USEC_INFINITY), POLLOUT);
        assert_int_equal(write(wr, "x", 1), 1);
        assert_int_equal(fd_wait_until(rd, POLLIN, 0), POLLIN);
        assert_int_equal(fd_wait_until(rd, POLLIN, USEC_INFINITY), POLLIN);

        /* The writer gone: the reader sees the hangup. */
        wr = safe_close(wr);
        char c;
        assert_int_equal(read(rd, &c, 1), 1);
        assert_true(fd_wait_until(rd, POLLIN, now_monotonic() + USEC_PER_SEC) & POLLHUP);
        /* A closed fd is reported, not waited on. */
        int closed = rd;
        rd = safe_close(rd);
        assert_int_equal(fd_wait_until(closed, POLLIN, USEC_INFINITY), POLLNVAL);
}

static void test_unix_socket_path(void **state) {
        char path[200];
        memset(path, 'a', sizeof(path));
        path[0] = '/';
        path[107] = '\0'; /* 107 bytes + NUL: exactly fits sun_path */
        assert_int_equal(unix_socket_path_check(path), 0);
        struct sockaddr_un sa;
        socklen_t len = 0;
        assert_int_equal(sockaddr_un_set(&sa, path, &len), 0);
        assert_int_equal(sa.sun_family, AF_UNIX);
        assert_string_equal(sa.sun_path, path);
        assert_int_equal(len, sizeof(sa));

        path[107] = 'a';
        path[108] = '\0';
        error_clear();
        assert_int_equal(unix_socket_path_check(path), -ENAMETOOLONG);
        assert_non_null(strstr(error_last_message(), path));
        assert_non_null(strstr(error_last_message(), "longer than the 107"));
        assert_int_equal(sockaddr_un_set(&sa, path, NULL), -ENAMETOOLONG);
        assert_int_equal(unix_connect(path, 0), -ENAMETOOLONG);

        assert_int_equal(unix_socket_path_check(NULL), -EINVAL);
        assert_int_equal(unix_socket_path_check(""), -EINVAL);
        assert_int_equal(unix_connect("", 0), -EINVAL);
}

static void test_unix_connect(void **state) {
        char dir[] = "/tmp/banger-test-XXXXXX";
        assert_non_null(mkdtemp(dir));
        _cleanup_free_ char *path = path_join(dir, "s.sock");
        assert_int_equal(unix_connect(path, 0), -ENOENT);

        struct sockaddr_un sa;
        socklen_t len;
        assert_int_equal(sockaddr_un_set(&sa, path, &len), 0);
        _cleanup_close_ int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, len), 0);
        /* Bound but not listening: refused, as when a daemon died. */
        assert_int_equal(unix_connect(path, 0), -ECONNREFUSED);
        assert_int_equal(listen(lfd, 4), 0);

        _cleanup_close_ int fd = unix_connect(path, 0);
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
        _cleanup_close_ int nb = unix_connect(path, SOCK_NONBLOCK);
        assert_true(nb >= 0);
        assert_true(fcntl(nb, F_GETFD) & FD_CLOEXEC);
        assert_true(fcntl(nb, F_GETFL) & O_NONBLOCK);

        /* What one end writes, the accepted peer reads. */
        _cleanup_close_ int peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(peer >= 0);
        assert_int_equal(write(fd, "ping", 4), 4);
        char buf[8] = {};
        assert_int_equal(read(peer, buf, sizeof(buf)), 4);
        assert_string_equal(buf, "ping");

        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_name_is_valid),
                cmocka_unit_test(test_shell_quote_argv),
                cmocka_unit_test(test_utf8_strndup_valid),
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_make_printable),
                cmocka_unit_test(test_error_and_log_cleaned),
                cmocka_unit_test(test_utf8_truncate),
                cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_atomic_write),
                cmocka_unit_test(test_atomic_write_owned),
                cmocka_unit_test(test_opendir_at),
                cmocka_unit_test(test_read_virtual_file),
                cmocka_unit_test(test_spawn),
                cmocka_unit_test(test_spawn_umask_and_fds),
                cmocka_unit_test(test_spawn_pidfile_and_kept_lock),
                cmocka_unit_test(test_deadline_poll_ms),
                cmocka_unit_test(test_deadline_from_timeout),
                cmocka_unit_test(test_sleep_ms),
                cmocka_unit_test(test_fd_wait_until),
                cmocka_unit_test(test_unix_socket_path),
                cmocka_unit_test(test_unix_connect),
                cmocka_unit_test(test_parse_duration),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
