/* SPDX-License-Identifier: MIT */
/* banger vm exec: a command in the guest through its agent, as one stream
 * on the VM's agent multiplexer (the daemon owns the agent's channel; stdio
 * flows between this process and the mux, not through the daemon's RPC
 * loop). With -t the command gets a terminal in the guest; with -it ours is
 * in raw mode meanwhile and put back on every way out. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "agent-client.h"
#include "cmd-vm.h"
#include "error.h"
#include "macro.h"
#include "socket-util.h"
#include "string-util.h"
#include "time-util.h"
#include "verbs.h"

#define AGENT_CONNECT_TIMEOUT (10 * USEC_PER_SEC)

int vm_agent_client(Cli *cli, RpcClient *c, const char *ref, AgentClient **ret) {
        json_t *res = NULL;
        if (cli_call_waking(cli, c, "vm.agent", json_pack("{s:s}", "vm", ref), &res) < 0)
                return -EIO;
        const char *path = json_str(res, "socket", NULL);
        int fd = path ? unix_connect(path, 0) : -EBADMSG;
        if (fd < 0)
                fprintf(stderr, "banger: cannot connect to the guest agent of %s at %s: %s\n", ref,
                        path ? path : "(none)", strerror(-fd));
        json_decref(res);
        if (fd < 0)
                return fd;
        _cleanup_(agent_client_freep) AgentClient *a = NULL;
        error_clear();
        int r = agent_client_new(fd, &a);
        if (r >= 0)
                r = agent_client_hello(a, AGENT_CONNECT_TIMEOUT, NULL);
        if (r == -EPROTONOSUPPORT) {
                fprintf(stderr, "banger: %s\n", error_last_message() ? error_last_message() : strerror(-r));
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "banger: the guest agent of %s does not answer: %s\n", ref,
                        error_last_message() ? error_last_message() : strerror(-r));
                return r;
        }
        *ret = TAKE_PTR(a);
        return 0;
}

/* ---- the terminal ---- */

typedef struct Tty {
        int fd;
        struct termios saved;
        bool raw;
} Tty;

static void tty_restore(Tty *t) {
        if (t->raw)
                (void) tcsetattr(t->fd, TCSADRAIN, &t->saved);
        t->raw = false;
}

static int tty_make_raw(Tty *t, int fd) {
        struct termios raw;
        if (tcgetattr(fd, &t->saved) < 0)
                return -errno;
        raw = t->saved;
        cfmakeraw(&raw);
        if (tcsetattr(fd, TCSADRAIN, &raw) < 0)
                return -errno;
        t->fd = fd;
        t->raw = true;
        return 0;
}

/* Signals become events while a command runs: forwarded, or a resize. */
static int block_signals(sigset_t *old) {
        sigset_t set;
        sigemptyset(&set);
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH };
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                sigaddset(&set, sigs[i]);
        if (sigprocmask(SIG_BLOCK, &set, old) < 0)
                return -errno;
        int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (fd < 0) {
                int e = -errno;
                (void) sigprocmask(SIG_SETMASK, old, NULL);
                return e;
        }
        return fd;
}

/* ---- running ---- */

typedef struct ExecRequest {
        char *const *argv;
        const char *workdir;
        usec_t timeout;
        bool tty;         /* a terminal in the guest */
        bool interactive; /* with tty: forward our stdin */
        bool signals;     /* forward SIGINT, SIGTERM, SIGHUP, SIGQUIT */
        bool capture;     /* --json: keep stdout and stderr for the report */
} ExecRequest;

/* What --json keeps of each stream, at most. */
#define EXEC_CAPTURE_MAX (16U * 1024U * 1024U)

typedef struct ExecOutcome {
        int status; /* what banger exits with */
        bool timed_out;
        int signal; /* it was killed by this signal; 0: it was not */
        AgentCapture out, err;
} ExecOutcome;

static void exec_outcome_done(ExecOutcome *x) {
        free(x->out.data);
        free(x->err.data);
}

/* timeout(1)'s convention: the command did not end in time. */
#define EXIT_TIMED_OUT 124

static int exec_status(const ExecRequest *q, usec_t begun, int r, const AgentExecResult *res, ExecOutcome *x) {
        const char *cmd = q->argv[0];
        if (r == -ETIMEDOUT && q->timeout != USEC_INFINITY && now_monotonic() - begun >= q->timeout) {
                /* The agent killed the command's process group on our CLOSE. */
                fprintf(stderr, "banger: vm exec: '%s' did not finish within %g s and was killed (exit %d)\n", cmd,
                        (double) q->timeout / USEC_PER_SEC, EXIT_TIMED_OUT);
                x->status = EXIT_TIMED_OUT;
                x->timed_out = true;
                return 0;
        }
        if (r == -ENOENT || r == -EACCES || r == -ENOEXEC) {
                /* As a shell reports it: 127 not found, 126 not executable. */
                fprintf(stderr, "banger: %s: %s\n", cmd, strerror(-r));
                x->status = r == -ENOENT ? 127 : 126;
                return 0;
        }
        if (r < 0) {
                fprintf(stderr, "banger: %s: %s\n", cmd, error_last_message() ? error_last_message() : strerror(-r));
                return r;
        }
        x->signal = res->kind == AGENT_EXIT_SIGNAL ? res->code : 0;
        x->status = x->signal ? 128 + res->code : res->code;
        return 0;
}

static int run_exec(AgentClient *a, const ExecRequest *q, ExecOutcome *x) {
        struct winsize ws = {};
        int tty_fd = isatty(STDIN_FILENO) ? STDIN_FILENO : isatty(STDOUT_FILENO) ? STDOUT_FILENO : -1;
        if (q->tty && tty_fd >= 0)
                (void) ioctl(tty_fd, TIOCGWINSZ, &ws);
        const char *term = getenv("TERM");
        _cleanup_free_ char *term_env = NULL;
        if (q->tty && term && strlen(term) < 64 && asprintf(&term_env, "TERM=%s", term) < 0)
                term_env = NULL;
        char *env[] = { term_env, NULL };
        AgentExecOptions o = { .argv = q->argv,
                               .env = term_env ? env : NULL,
                               .cwd = q->workdir,
                               .stdin_fd = !q->tty || q->interactive ? STDIN_FILENO : -1,
                               .stdout_fd = q->capture ? -1 : STDOUT_FILENO,
                               .stderr_fd = q->capture ? -1 : STDERR_FILENO,
                               .stdout_capture = &x->out,
                               .stderr_capture = &x->err,
                               .pty = q->tty,
                               .rows = ws.ws_row,
                               .cols = ws.ws_col,
                               .signal_fd = -1,
                               .tty_fd = tty_fd };
        sigset_t old;
        _cleanup_close_ int sigfd = q->signals || q->tty ? block_signals(&old) : -EBADF;
        o.signal_fd = sigfd >= 0 ? sigfd : -1;
        Tty t = {};
        if (q->tty && q->interactive && isatty(STDIN_FILENO) && tty_make_raw(&t, STDIN_FILENO) < 0)
                fprintf(stderr, "banger: cannot put the terminal in raw mode: %s\n", strerror(errno));
        x->out.max = x->err.max = EXEC_CAPTURE_MAX;
        fflush(NULL);
        AgentExecResult res = {};
        error_clear();
        usec_t begun = now_monotonic();
        int r = agent_client_exec(a, &o, q->timeout, &res);
        tty_restore(&t);
        if (sigfd >= 0)
                (void) sigprocmask(SIG_SETMASK, &old, NULL);
        return exec_status(q, begun, r, &res, x);
}

int vm_exec_in_guest(Cli *cli, RpcClient *c, const char *ref, char *const *argv, const char *workdir, usec_t timeout,
                     int *ret_status) {
        _cleanup_(agent_client_freep) AgentClient *a = NULL;
        int r = vm_agent_client(cli, c, ref, &a);
        if (r < 0)
                return r;
        ExecRequest q = { .argv = argv, .workdir = workdir, .timeout = timeout };
        _cleanup_(exec_outcome_done) ExecOutcome x = {};
        r = run_exec(a, &q, &x);
        if (r >= 0)
                *ret_status = x.status;
        return r;
}

int vm_shell_in_guest(Cli *cli, RpcClient *c, const char *ref, const char *workdir, int *ret_status) {
        /* A fixed command line: bash where the image has it, else sh. */
        static char *const shell[] = { "/bin/sh", "-c",
                                       "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l", NULL };
        _cleanup_(agent_client_freep) AgentClient *a = NULL;
        int r = vm_agent_client(cli, c, ref, &a);
        if (r < 0)
                return r;
        bool tty = isatty(STDIN_FILENO);
        ExecRequest q = { .argv = shell,
                          .workdir = workdir,
                          .timeout = USEC_INFINITY,
                          .tty = tty,
                          .interactive = true,
                          .signals = true };
        _cleanup_(exec_outcome_done) ExecOutcome x = {};
        r = run_exec(a, &q, &x);
        if (r >= 0)
                *ret_status = x.status;
        return r;
}

static json_t *captured_json(const AgentCapture *k) {
        size_t n = 0;
        _cleanup_free_ char *s = utf8_strndup_valid(k->data ? k->data : "", k->len, &n);
        return s ? json_stringn(s, n) : NULL;
}

/* --json: what happened, with the output, on stdout. */
static int print_exec_json(const char *vm, const ExecRequest *q, const ExecOutcome *x) {
        json_t *argv = json_array();
        for (size_t i = 0; argv && q->argv[i]; i++)
                json_array_append_new(argv, json_string(q->argv[i]));
        json_t *j = json_pack("{s:s, s:o, s:i, s:o, s:b, s:o, s:o, s:b, s:b}", "vm", vm, "command", argv, "exit_code",
                              x->status, "signal", x->signal ? json_integer(x->signal) : json_null(), "timed_out",
                              x->timed_out, "stdout", captured_json(&x->out), "stderr", captured_json(&x->err),
                              "stdout_truncated", x->out.truncated, "stderr_truncated", x->err.truncated);
        if (!j)
                return -ENOMEM;
        cli_print_json(j);
        json_decref(j);
        return 0;
}

static void exec_help(void) {
        printf("Usage: banger vm exec [-t] [-i] [--json] [--timeout SEC] [--workdir DIR] VM -- COMMAND [ARGS...]\n"
               "\n"
               "Run COMMAND in the guest through banger's agent (no SSH needed). stdin, stdout\n"
               "and stderr stream through; the exit code is the command's, 128+N when it was\n"
               "killed by signal N, 127 when it was not found, 126 when it could not run, 124\n"
               "when --timeout ended it, and 1 when banger itself failed. Ctrl-C, SIGTERM,\n"
               "SIGHUP and SIGQUIT are passed to the command (a third Ctrl-C kills it). Many\n"
               "execs may run at once.\n"
               "\n"
               "Options:\n"
               "  -t, --tty          give the command a terminal in the guest, sized like ours\n"
               "                     and resized with it (stdout and stderr arrive together)\n"
               "  -i, --interactive  with -t: pass our stdin, our terminal in raw mode meanwhile\n"
               "                     (without -t stdin is always passed)\n"
               "  --json             print one JSON object when the command ends: vm, command,\n"
               "                     exit_code, signal, timed_out, stdout, stderr (the first\n"
               "                     16 MiB of each as UTF-8), stdout_truncated, stderr_truncated;\n"
               "                     the exit code is the same (not with -t)\n"
               "  --timeout SEC      kill the command after SEC seconds and exit 124, as\n"
               "                     timeout(1) does (default: no limit)\n"
               "  -w, --workdir DIR  working directory in the guest (default /)\n");
}

static int parse_exec_args(Cli *cli, int argc, char **argv, ExecRequest *q) {
        enum { OPT_TIMEOUT = CLI_OPT_FIRST_PRIVATE };
        static const struct option opts[] = {
                CLI_COMMON_LONG_OPTIONS,
                { "tty", no_argument, NULL, 't' },
                { "interactive", no_argument, NULL, 'i' },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "workdir", required_argument, NULL, 'w' },
                {},
        };
        int o, r;
        while ((o = getopt_long(argc, argv, "htiw:", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        exec_help();
                        return -1;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case 't':
                        q->tty = true;
                        break;
                case 'i':
                        q->interactive = true;
                        break;
                case OPT_TIMEOUT:
                        if ((r = vm_parse_seconds_arg("vm exec", "--timeout", optarg, &q->timeout)) != 0)
                                return r;
                        break;
                case 'w':
                        if (optarg[0] != '/')
                                return cli_usage_error("vm exec", "--workdir needs an absolute path");
                        q->workdir = optarg;
                        break;
                default:
                        return cli_option_error("vm exec", argv);
                }
        }
        if (argc - optind < 2)
                return cli_usage_error("vm exec", "expects a VM and a command: banger vm exec VM -- COMMAND");
        q->capture = cli->json;
        if (q->capture && q->tty)
                return cli_usage_error("vm exec", "--json keeps stdout and stderr apart: it cannot be used with -t");
        return 0;
}

int vm_exec_cmd(Cli *cli, int argc, char **argv) {
        ExecRequest q = { .timeout = USEC_INFINITY, .signals = true };
        int r = parse_exec_args(cli, argc, argv, &q);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        q.argv = argv + optind + 1;
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        _cleanup_(agent_client_freep) AgentClient *a = NULL;
        if (vm_agent_client(cli, c, argv[optind], &a) < 0)
                return EXIT_FAIL;
        _cleanup_(exec_outcome_done) ExecOutcome x = {};
        if (run_exec(a, &q, &x) < 0)
                return EXIT_FAIL;
        if (q.capture && print_exec_json(argv[optind], &q, &x) < 0)
                return EXIT_FAIL;
        return x.status;
}
