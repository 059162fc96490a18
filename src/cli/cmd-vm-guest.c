/* SPDX-License-Identifier: MIT */
/* banger vm ssh / ports / stats / logs: reaching into a running guest. ssh
 * execs the system ssh with banger's key and known_hosts; exec and cp live in
 * cmd-vm-exec.c and cmd-vm-cp.c. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmd-vm.h"
#include "crypto-dl.h"
#include "error.h"
#include "macro.h"
#include "spawn.h"
#include "string-util.h"
#include "verbs.h"

/* ---- ssh ---- */

_printf_(1, 2) static char *strf(const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

int vm_ssh_argv(Cli *cli, RpcClient *c, const char *ref, char *const *cmd, char ***ret) {
        _cleanup_free_ char *ssh = find_executable("ssh");
        if (!ssh) {
                fprintf(stderr, "banger: ssh not found in PATH (install openssh-client)\n");
                return -ENOENT;
        }
        json_t *info = NULL;
        if (cli_call_waking(cli, c, "vm.ssh_info", json_pack("{s:s}", "vm", ref), &info) < 0)
                return -EIO;
        const char *ip = json_str(info, "ip", NULL), *key = json_str(info, "key", NULL);
        const char *kh = json_str(info, "known_hosts", NULL), *user = json_str(info, "user", "root");
        if (!ip || !key || !kh) {
                fprintf(stderr, "banger: the daemon gave no address or key for %s\n", ref);
                json_decref(info);
                return -EBADMSG;
        }
        size_t n = strv_length(cmd);
        char **a = calloc(14 + n, sizeof(char *));
        size_t i = 0;
        if (a) {
                a[i++] = TAKE_PTR(ssh);
                a[i++] = strdup("-i");
                a[i++] = strdup(key);
                a[i++] = strdup("-o");
                a[i++] = strf("UserKnownHostsFile=%s", kh);
                a[i++] = strdup("-o");
                a[i++] = strdup("StrictHostKeyChecking=accept-new");
                a[i++] = strdup("-o");
                a[i++] = strdup("IdentitiesOnly=yes");
                a[i++] = strdup("-o");
                a[i++] = strdup("LogLevel=ERROR");
                a[i++] = strf("%s@%s", user, ip);
                /* ssh hands its command to the remote shell as one line:
                 * quoted, each argument arrives as given (as with vm exec). */
                if (n) {
                        a[i++] = strdup("--");
                        a[i++] = shell_quote_argv(cmd);
                }
        }
        json_decref(info);
        for (size_t k = 0; a && k < i; k++)
                if (!a[k]) {
                        /* A failed strdup leaves a hole: free around it. */
                        for (size_t j = 0; j < i; j++)
                                free(a[j]);
                        free(a);
                        a = NULL;
                }
        if (!a)
                return -ENOMEM;
        *ret = a;
        return 0;
}

static void ssh_help(void) {
        printf("Usage: banger vm ssh VM [-- COMMAND [ARGS...]]\n"
               "\n"
               "Open an SSH session to the VM as root, or run COMMAND over SSH. Uses banger's\n"
               "key and its own known_hosts file (the host key is trusted on first use and\n"
               "checked afterwards), never your ~/.ssh/known_hosts. COMMAND and its ARGS\n"
               "arrive as given, each quoted for the remote shell (as with 'banger vm exec');\n"
               "the exit code is the command's, 255 when ssh itself failed. Waits (up to 60 s)\n"
               "for the guest's SSH server; 'banger vm exec' needs none. There is no --json\n"
               "output: 'banger vm exec --json' reports a command's exit code and output.\n");
}

int vm_ssh_cmd(Cli *cli, int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS, {} };
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                if (o == 'h') {
                        ssh_help();
                        return EXIT_OK;
                }
                if (o != CLI_OPT_JSON)
                        return cli_option_error("vm ssh", argv);
                cli->json = true;
                break;
        }
        /* ssh owns the terminal and the output: nothing to put in JSON. */
        if (cli->json)
                return cli_usage_error("vm ssh", "has no --json output: 'banger vm exec --json VM -- COMMAND' "
                                                 "reports a command's exit code and output as JSON");
        if (optind >= argc)
                return cli_usage_error("vm ssh", "expects a VM");
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        _cleanup_strv_free_ char **a = NULL;
        if (vm_ssh_argv(cli, c, argv[optind], argv + optind + 1, &a) < 0)
                return EXIT_FAIL;
        fflush(NULL);
        execv(a[0], a);
        fprintf(stderr, "banger: cannot run %s: %s\n", a[0], strerror(errno));
        return EXIT_FAIL;
}

/* ---- ports / stats ---- */

static void ports_help(void) {
        printf("Usage: banger vm ports VM [--json]\n"
               "\n"
               "List the sockets listening in the guest (from its agent) with the owning\n"
               "process and the endpoint to use from the host: <name>.vm:<port> where the\n"
               "host's resolver answers VM names (systemd-resolved), else <address>:<port>;\n"
               "then the VM's port forwards (banger vm port).\n");
}

static void port_row(json_t *p, const char **row, char (*buf)[TABLE_CELL_MAX]) {
        json_int_t pid = json_integer_value(json_object_get(p, "pid"));
        snprintf(buf[2], TABLE_CELL_MAX, "%lld", json_integer_value(json_object_get(p, "port")));
        snprintf(buf[3], TABLE_CELL_MAX, pid > 0 ? "%lld" : "-", pid);
        row[0] = json_str(p, "proto", "-");
        row[1] = json_str(p, "address", "-");
        row[2] = buf[2];
        row[3] = buf[3];
        row[4] = json_str(p, "process", "-");
        row[5] = json_str(p, "endpoint", "-");
}

static void print_ports(json_t *res) {
        static const char *const hdr[] = { "PROTO", "ADDRESS", "PORT", "PID", "PROCESS", "ENDPOINT" };
        table_print_items(json_object_get(res, "ports"), hdr, ELEMENTSOF(hdr), port_row);
        json_t *fw = json_object_get(res, "forwards");
        if (json_array_size(fw) > 0) {
                printf("\nForwards:\n");
                vm_print_forwards(fw);
        }
}

int vm_ports_cmd(Cli *cli, int argc, char **argv) {
        return cli_show_one(cli, "vm ports", ports_help, argc, argv, "vm.ports", "vm", print_ports);
}

static void stats_help(void) {
        printf("Usage: banger vm stats VM [--json]\n"
               "\n"
               "Show the VMM process's CPU time and resident memory (from /proc on the host)\n"
               "and the guest's memory and load averages (from its agent).\n");
}

static void print_stats(json_t *res) {
        json_t *v = json_object_get(res, "vmm"), *g = json_object_get(res, "guest");
        char rss[16], tot[16], avail[16];
        printf("vmm:    pid %lld, cpu %.2f s, rss %s\n", json_integer_value(json_object_get(v, "pid")),
               json_number_value(json_object_get(v, "cpu_sec")), format_json_size(rss, sizeof(rss), v, "rss_bytes"));
        if (!json_is_object(g)) {
                printf("guest:  agent not answering\n");
                return;
        }
        uint64_t t = (uint64_t) json_integer_value(json_object_get(g, "mem_total_kib")) << 10;
        uint64_t a = (uint64_t) json_integer_value(json_object_get(g, "mem_available_kib")) << 10;
        printf("guest:  memory %s total, %s available (%.0f%% used)\n", format_size(tot, sizeof(tot), t),
               format_size(avail, sizeof(avail), a), t ? 100.0 * (double) (t - MIN(a, t)) / (double) t : 0.0);
        printf("        load %.2f %.2f %.2f\n", json_number_value(json_object_get(g, "load1")),
               json_number_value(json_object_get(g, "load5")), json_number_value(json_object_get(g, "load15")));
}

int vm_stats_cmd(Cli *cli, int argc, char **argv) {
        return cli_show_one(cli, "vm stats", stats_help, argc, argv, "vm.stats", "vm", print_stats);
}

/* ---- logs ---- */

static void logs_help(void) {
        printf("Usage: banger vm logs VM [-f] [--tail SIZE] [--raw] [--json]\n"
               "\n"
               "Print the VM's serial console log (kernel and init messages, the agent's ready\n"
               "line). On a terminal, control characters the guest wrote (escape sequences)\n"
               "are shown as '?'; --raw prints the bytes as they are.\n"
               "\n"
               "Options:\n"
               "  -f, --follow   keep printing new output until the VM stops or Ctrl-C\n"
               "  --tail SIZE    start with the last SIZE bytes (default 64K, at most 8M)\n"
               "  --raw          the bytes as the guest wrote them, even to a terminal\n"
               "  --json         print the daemon's result ({data, encoding, offset, size, path};\n"
               "                 with --raw, data is base64)\n");
}

/* Write a vm.logs reply's data: decoded when raw, cleaned of control
 * characters when it goes to a terminal (it is the guest's output). */
static void write_logs_data(json_t *res, bool raw) {
        json_t *d = json_object_get(res, "data");
        const char *s = json_string_value(d);
        size_t len = json_string_length(d);
        if (!s || len == 0)
                return;
        if (raw) {
                _cleanup_free_ unsigned char *out = malloc(len / 4 * 3 + 3);
                int n = out ? crypto_dl_base64_decode(s, len, out) : -ENOMEM;
                if (n == -ENOPKG)
                        fprintf(stderr, "banger: vm logs: %s\n", error_last_message());
                if (n < 0)
                        return;
                fwrite(out, 1, (size_t) n, stdout);
                return;
        }
        if (!isatty(STDOUT_FILENO)) {
                fwrite(s, 1, len, stdout);
                return;
        }
        _cleanup_free_ char *copy = strndup(s, len);
        if (copy)
                fputs(string_make_printable(copy, true), stdout);
}

static bool vm_is_up(Cli *cli, RpcClient *c, const char *ref) {
        json_t *vm = NULL;
        if (cli_call(cli, c, "vm.show", json_pack("{s:s}", "vm", ref), &vm) < 0)
                return false;
        const char *s = json_str(vm, "state", "");
        bool up = streq(s, "running") || streq(s, "starting") || streq(s, "stopping");
        json_decref(vm);
        return up;
}

/* Poll with the returned offset: the daemon has no push for console output. */
/* res (taken) is the last reply: its offset and file say where to go on,
 * across a rotation of the log. */
static int follow_logs(Cli *cli, RpcClient *c, const char *ref, json_t *res, bool raw) {
        for (unsigned tick = 1;; tick++) {
                json_int_t offset = json_integer_value(json_object_get(res, "offset"));
                json_int_t file = json_integer_value(json_object_get(res, "file"));
                json_decref(res);
                res = NULL;
                usleep(200 * 1000);
                if (cli_call(cli, c, "vm.logs",
                             json_pack("{s:s, s:I, s:I, s:b}", "vm", ref, "offset", offset, "file", file, "raw", raw),
                             &res) < 0)
                        return EXIT_FAIL;
                write_logs_data(res, raw);
                fflush(stdout);
                if (json_string_length(json_object_get(res, "data")) == 0 && tick % 5 == 0 && !vm_is_up(cli, c, ref)) {
                        json_decref(res);
                        return EXIT_OK;
                }
        }
}

int vm_logs_cmd(Cli *cli, int argc, char **argv) {
        enum { OPT_TAIL = CLI_OPT_FIRST_PRIVATE, OPT_RAW };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "follow", no_argument, NULL, 'f' },
                                              { "tail", required_argument, NULL, OPT_TAIL },
                                              { "raw", no_argument, NULL, OPT_RAW },
                                              {} };
        bool follow = false, raw = false;
        unsigned long long tail = 0;
        int o;
        while ((o = getopt_long(argc, argv, "hf", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        logs_help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case 'f':
                        follow = true;
                        break;
                case OPT_TAIL:
                        if (parse_size(optarg, &tail) < 0 || tail == 0 || tail > (8ULL << 20))
                                return cli_usage_error("vm logs", "invalid --tail '%s': give 1 .. 8M bytes", optarg);
                        break;
                case OPT_RAW:
                        raw = true;
                        break;
                default:
                        return cli_option_error("vm logs", argv);
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("vm logs", "expects exactly one VM");
        if (follow && cli->json)
                return cli_usage_error("vm logs", "--follow and --json exclude each other");
        const char *ref = argv[optind];
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        json_t *params = json_pack("{s:s, s:b}", "vm", ref, "raw", raw);
        if (tail)
                json_object_set_new(params, "tail_bytes", json_integer((json_int_t) tail));
        json_t *res = NULL;
        if (cli_call(cli, c, "vm.logs", params, &res) < 0)
                return EXIT_FAIL;
        if (cli->json)
                cli_print_json(res);
        else
                write_logs_data(res, raw);
        fflush(stdout);
        if (follow)
                return follow_logs(cli, c, ref, res, raw);
        json_decref(res);
        return EXIT_OK;
}
