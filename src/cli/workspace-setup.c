/* SPDX-License-Identifier: MIT */
/* A workspace's setup (workspace.h, docs/workspaces.md): `mise install`
 * for .mise.toml / .tool-versions when the image has mise, then an
 * executable .banger/setup, both run as root in the guest's copy through
 * the agent, their output streamed to our stderr and kept in a log on the
 * host and in the guest; and the hash of what the setup was made from. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "cp-stream.h"
#include "crypto-dl.h"
#include "error.h"
#include "file-tree.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"
#include "workspace-git.h"
#include "workspace.h"

#define SETUP_PATH ".banger/setup"
#define SETUP_MAX (1u << 20)
#define INPUTS_TAG "# banger-inputs:"
#define INPUTS_MAX_LISTED 256
#define INPUTS_MAX_FILES 10000
#define LOGS_KEPT 50

static const char *const mise_files[] = { ".mise.toml", ".tool-versions" };

void ws_setup_done(WsSetup *s) {
        free(s->inputs_hash);
        *s = (WsSetup){};
}

/* The paths the "# banger-inputs:" lines of the setup name, as literal
 * pathspecs appended to args (from *n on). */
static int listed_inputs(const char *cmd, int top_fd, char **args, size_t *n, size_t max) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file_at(top_fd, SETUP_PATH, SETUP_MAX, &text, &len);
        if (r < 0)
                return r;
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (!startswith(line, INPUTS_TAG))
                        continue;
                for (char *save = NULL, *p = strtok_r(line + strlen(INPUTS_TAG), " \t\r", &save); p;
                     p = strtok_r(NULL, " \t\r", &save)) {
                        if (p[0] == '/' || streq(p, "..") || startswith(p, "../") || strstr(p, "/../")) {
                                fprintf(stderr, "banger: %s: %s: input %s is outside the work tree: ignored\n", cmd,
                                        SETUP_PATH, p);
                                continue;
                        }
                        if (*n >= max)
                                return fprintf(stderr, "banger: %s: %s lists more than %d inputs\n", cmd, SETUP_PATH,
                                               INPUTS_MAX_LISTED),
                                       -E2BIG;
                        if (asprintf(&args[(*n)++], ":(literal)%s", p) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

/* The existing regular files among git's NUL-separated list, as an argv
 * tail for hash-object. */
static int existing_files(int top_fd, const char *list, size_t len, char **args, size_t *n, size_t max) {
        for (const char *s = list; s < list + len; s += strlen(s) + 1) {
                struct stat st;
                if (!*s || fstatat(top_fd, s, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (*n >= max)
                        return -E2BIG;
                args[(*n)++] = (char *) s;
        }
        return 0;
}

/* The text hashed: the setup's mode, each input's path, and git's blob ids
 * of them in the same order. */
static int inputs_text(int top_fd, char *const *paths, size_t n, const char *ids, char **ret) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        struct stat st = {};
        (void) fstatat(top_fd, SETUP_PATH, &st, AT_SYMLINK_NOFOLLOW);
        fprintf(f, "banger-workspace-setup 1\nsetup-mode %o\n", (unsigned) (st.st_mode & 0777));
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s\n", paths[i]);
        fputs(ids ? ids : "", f);
        if (fclose(f) != 0) {
                free(text);
                return -ENOMEM;
        }
        *ret = text;
        return 0;
}

/* sha256 over the inputs (the mise files, the setup, what it lists). */
static int hash_inputs(const char *cmd, const char *top, int top_fd, bool script, char **ret) {
        char *spec[INPUTS_MAX_LISTED + 16] = { "ls-files", "-co", "--exclude-standard", "-z", "--" };
        size_t n = 5;
        for (size_t i = 0; i < ELEMENTSOF(mise_files); i++)
                spec[n++] = (char *) mise_files[i];
        spec[n++] = (char *) SETUP_PATH;
        size_t own = n;
        int r = script ? listed_inputs(cmd, top_fd, spec, &n, INPUTS_MAX_LISTED + own) : 0;
        WsGitCall ls = { .cwd = top, .stdout_fd = -1 }, h = { .cwd = top, .stdout_fd = -1 };
        char **hash = calloc(INPUTS_MAX_FILES + 8, sizeof(char *));
        size_t m = 0, files = 3;
        if (r >= 0 && !hash)
                r = -ENOMEM;
        if (r >= 0)
                r = ws_git_ok(CLI_REPORT(cmd), &ls, spec);
        if (r >= 0) {
                hash[m++] = "hash-object";
                hash[m++] = "--no-filters";
                hash[m++] = "--";
                r = existing_files(top_fd, ls.out, ls.out_len, hash, &m, INPUTS_MAX_FILES + 3);
                if (r >= 0 && m > files)
                        r = ws_git_ok(CLI_REPORT(cmd), &h, hash);
        }
        _cleanup_free_ char *text = NULL;
        if (r >= 0)
                r = inputs_text(top_fd, hash + files, m - files, h.out, &text);
        for (size_t i = own; i < n; i++)
                free(spec[i]);
        free(hash);
        ws_git_call_done(&ls);
        ws_git_call_done(&h);
        if (r == -E2BIG)
                fprintf(stderr, "banger: %s: the setup's inputs are more than %d files\n", cmd, INPUTS_MAX_FILES);
        char hex[SHA256_HEX_LEN + 1];
        if (r >= 0) {
                r = crypto_dl_sha256(text, strlen(text), hex);
                if (r == -ENOPKG)
                        fprintf(stderr, "banger: %s: %s\n", cmd, error_last_message());
        }
        if (r < 0)
                return r;
        return (*ret = strdup(hex)) ? 0 : -ENOMEM;
}

int ws_setup_find(const char *cmd, const char *top, bool want_hash, WsSetup *ret) {
        _cleanup_close_ int top_fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (top_fd < 0)
                return -errno;
        WsSetup s = {};
        struct stat st;
        if (fstatat(top_fd, SETUP_PATH, &st, AT_SYMLINK_NOFOLLOW) >= 0) {
                if (S_ISREG(st.st_mode) && (st.st_mode & S_IXUSR))
                        s.script = true;
                else if (!want_hash) /* said once: by the call before the run, not the key's */
                        fprintf(stderr, "banger: %s: %s is not an executable file: not run (chmod +x it)\n", cmd,
                                SETUP_PATH);
        }
        for (size_t i = 0; i < ELEMENTSOF(mise_files); i++)
                if (fstatat(top_fd, mise_files[i], &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISREG(st.st_mode))
                        s.mise = true;
        if (want_hash && (s.script || s.mise)) {
                int r = hash_inputs(cmd, top, top_fd, s.script, &s.inputs_hash);
                if (r < 0)
                        return r;
        }
        *ret = s;
        return 0;
}

/* ---- running it ---- */

typedef struct Tee {
        int in, log;
} Tee;

/* The setup's output, as it comes, to our stderr and to the log. */
static void *tee_main(void *userdata) {
        Tee *t = userdata;
        char buf[16384];
        for (;;) {
                ssize_t n = read(t->in, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                (void) loop_write(STDERR_FILENO, buf, (size_t) n);
                (void) loop_write(t->log, buf, (size_t) n);
        }
        return NULL;
}

/* Run argv in guest with stdout and stderr into the tee; *ret_status: its
 * exit code, 128+N for a signal. */
static int run_teed(AgentClient *a, char *const *argv, char *const *env, const char *guest, int log_fd,
                    int *ret_status) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        Tee t = { .in = p[0], .log = log_fd };
        pthread_t th;
        int r = -pthread_create(&th, NULL, tee_main, &t);
        if (r < 0) {
                safe_close(p[0]);
                safe_close(p[1]);
                return r;
        }
        AgentExecOptions o = { .argv = argv,
                               .env = env,
                               .cwd = guest,
                               .stdin_fd = -1,
                               .stdout_fd = p[1],
                               .stderr_fd = p[1],
                               .signal_fd = -1,
                               .tty_fd = -1 };
        AgentExecResult res = {};
        r = agent_client_exec(a, &o, USEC_INFINITY, &res);
        safe_close(p[1]);
        (void) pthread_join(th, NULL);
        safe_close(p[0]);
        if (r >= 0)
                *ret_status = res.kind == AGENT_EXIT_CODE ? res.code : 128 + res.code;
        return r;
}

/* <state dir>/workspace-logs/<vm id>.log, made anew; the oldest logs beyond
 * LOGS_KEPT go. */
int ws_setup_log_path(Cli *cli, const char *vm_id, char **ret) {
        if (!name_is_valid(vm_id))
                return -EINVAL;
        return asprintf(ret, "%s/workspace-logs/%s.log", cli->paths.state_dir, vm_id) < 0 ? -ENOMEM : 0;
}

static int keep_newest_logs(const char *dir) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, dir);
        DIR *d = dfd < 0 ? NULL : fdopendir(fcntl(dfd, F_DUPFD_CLOEXEC, 3));
        if (!d)
                return -errno;
        char oldest[256] = "";
        time_t oldest_t = 0;
        unsigned n = 0;
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                if (!endswith(de->d_name, ".log") || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                n++;
                if (!oldest[0] || st.st_mtime < oldest_t) {
                        oldest_t = st.st_mtime;
                        snprintf(oldest, sizeof(oldest), "%s", de->d_name);
                }
        }
        closedir(d);
        if (n > LOGS_KEPT && oldest[0])
                (void) unlinkat(dfd, oldest, 0);
        return 0;
}

static int open_log(Cli *cli, const char *vm_id, char **ret_path) {
        _cleanup_free_ char *dir = path_join(cli->paths.state_dir, "workspace-logs"), *path = NULL;
        int r = dir ? mkdir_p(dir, 0700) : -ENOMEM;
        if (r >= 0)
                r = ws_setup_log_path(cli, vm_id, &path);
        if (r < 0)
                return r;
        (void) keep_newest_logs(dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        *ret_path = TAKE_PTR(path);
        return fd;
}

/* mise install; an image without mise is said once and is no failure. */
static int run_mise(AgentClient *a, const char *cmd, const char *guest, int log_fd, int *ret_status) {
        _cleanup_free_ char *trust = NULL;
        if (asprintf(&trust, "MISE_TRUSTED_CONFIG_PATHS=%s", guest) < 0)
                return -ENOMEM;
        char *const argv[] = { "mise", "install", NULL };
        char *const env[] = { trust, "MISE_YES=1", NULL };
        dprintf(log_fd, "$ mise install\n");
        int r = run_teed(a, argv, env, guest, log_fd, ret_status);
        if (r == -ENOENT) {
                const char *why = "the image has no mise: the tools of .mise.toml / .tool-versions are not "
                                  "installed (install mise in the image to have them)";
                fprintf(stderr, "banger: %s: %s\n", cmd, why);
                dprintf(log_fd, "%s\n", why);
                *ret_status = 0;
                return 0;
        }
        return r;
}

int workspace_setup_run(Cli *cli, AgentClient *a, const char *cmd, const char *vm_id, const char *guest,
                        const WsSetup *s, int *ret_status, char **ret_log) {
        _cleanup_free_ char *log = NULL, *script = NULL, *ws_env = NULL;
        _cleanup_close_ int fd = open_log(cli, vm_id, &log);
        if (fd < 0) {
                fprintf(stderr, "banger: %s: cannot make the setup's log: %s\n", cmd, strerror(-fd));
                return fd;
        }
        if (asprintf(&script, "%s/" SETUP_PATH, guest) < 0 || asprintf(&ws_env, "BANGER_WORKSPACE=%s", guest) < 0)
                return -ENOMEM;
        fprintf(stderr, "setup: %s in %s (log: %s, in the guest %s)\n",
                s->script && s->mise ? "mise install, " SETUP_PATH
                : s->script          ? SETUP_PATH
                                     : "mise install",
                guest, log, WS_SETUP_GUEST_LOG);
        usec_t t0 = now_monotonic();
        int status = 0, r = s->mise ? run_mise(a, cmd, guest, fd, &status) : 0;
        if (r >= 0 && status == 0 && s->script) {
                dprintf(fd, "$ %s\n", SETUP_PATH);
                r = run_teed(a, (char *const[]){ script, NULL }, (char *const[]){ ws_env, NULL }, guest, fd, &status);
        }
        if (r < 0) {
                fprintf(stderr, "banger: %s: cannot run the setup in the guest: %s; its log: %s\n", cmd, strerror(-r),
                        log);
                return r;
        }
        dprintf(fd, "exit status %d after %.1f s\n", status, (double) (now_monotonic() - t0) / USEC_PER_SEC);
        if (cp_stream_put_path(a, CLI_REPORT(cmd), log, WS_SETUP_GUEST_LOG) < 0)
                fprintf(stderr, "banger: %s: the setup's log was not copied into the guest\n", cmd);
        if (status == 0)
                fprintf(stderr, "setup: done in %.1f s\n", (double) (now_monotonic() - t0) / USEC_PER_SEC);
        *ret_status = status;
        if (ret_log)
                *ret_log = TAKE_PTR(log);
        return 0;
}
