/* SPDX-License-Identifier: MIT */
/* banger vm workspace export|sync, and the workspace steps of vm create
 * and vm run (workspace.h, docs/workspaces.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-client.h"
#include "cmd-vm.h"
#include "file-tree.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"
#include "workspace-git.h"
#include "workspace-push.h"
#include "workspace.h"

int workspace_check(const char *cmd, const char *dir, const char *branch) {
        _cleanup_(ws_repo_done) WsRepo repo = {};
        _cleanup_free_ char *rev = NULL, *sha = NULL;
        int r = ws_repo_open(CLI_REPORT(cmd), dir, &repo);
        if (r < 0)
                return r;
        if (asprintf(&rev, "%s^{commit}", branch ? branch : "HEAD") < 0)
                return -ENOMEM;
        return ws_repo_rev(CLI_REPORT(cmd), &repo, rev, &sha);
}

int vm_workspace_push(Cli *cli, RpcClient *c, const char *cmd, const char *vm_id, const char *dir, const char *branch,
                      char **ret_guest) {
        _cleanup_(agent_client_freep) AgentClient *a = NULL;
        (void) signal(SIGPIPE, SIG_IGN); /* a side that stops early is an error, not a death */
        int r = vm_agent_client(cli, c, vm_id, &a);
        return r < 0 ? r : workspace_push(a, CLI_REPORT(cmd), cli->paths.state_dir, vm_id, dir, branch, ret_guest);
}

int vm_workspace_setup(Cli *cli, RpcClient *c, const char *cmd, const char *vm_id, const char *dir, const char *guest) {
        _cleanup_(ws_setup_done) WsSetup s = {};
        _cleanup_(agent_client_freep) AgentClient *a = NULL;
        _cleanup_free_ char *log = NULL;
        int r = ws_setup_find(cmd, dir, false, &s);
        if (r < 0) {
                fprintf(stderr, "banger: %s: cannot read the setup of %s: %s\n", cmd, dir, strerror(-r));
                return r;
        }
        if (!s.script && !s.mise)
                return 0;
        int status = 0;
        r = vm_agent_client(cli, c, vm_id, &a);
        if (r >= 0)
                r = workspace_setup_run(cli, a, cmd, vm_id, guest, &s, &status, &log);
        if (r < 0)
                return r;
        if (status != 0)
                fprintf(stderr,
                        "banger: %s: the workspace's setup failed with exit code %d: its log is %s (in the guest "
                        "%s); 'banger vm workspace log VM' prints it\n",
                        cmd, status, log, WS_SETUP_GUEST_LOG);
        return status;
}

void vm_workspace_forget(Cli *cli, const char *vm_id) {
        _cleanup_free_ char *dir = NULL;
        if (ws_state_dir(cli->paths.state_dir, vm_id, false, &dir) >= 0)
                (void) rm_rf_at(AT_FDCWD, dir);
}

/* The VM (by reference), its record, the state directory and an agent. */
typedef struct WsTarget {
        RpcClient *rpc;
        AgentClient *agent;
        WsRecord rec;
        char *state;
} WsTarget;

static void ws_target_done(WsTarget *t) {
        agent_client_free(t->agent);
        rpc_client_free(t->rpc);
        ws_record_done(&t->rec);
        free(t->state);
}

static int ws_target_open(Cli *cli, const char *cmd, const char *ref, WsTarget *t) {
        json_t *vm = NULL;
        if (cli_connect(cli, &t->rpc) < 0 || cli_call(cli, t->rpc, "vm.show", json_pack("{s:s}", "vm", ref), &vm) < 0)
                return -EIO;
        _cleanup_free_ char *id = strdup(json_str(vm, "id", ""));
        json_decref(vm);
        if (!id)
                return -ENOMEM;
        int r = ws_state_dir(cli->paths.state_dir, id, false, &t->state);
        if (r >= 0)
                r = ws_record_load(t->state, &t->rec);
        if (r == -ENOENT) {
                fprintf(stderr,
                        "banger: %s: vm %s has no workspace: create it with 'banger vm create --workspace "
                        "DIR' or 'banger vm run DIR'\n",
                        cmd, ref);
                return r;
        }
        if (r >= 0 && !streq(t->rec.vm_id, id))
                r = -EBADMSG;
        if (r < 0) {
                fprintf(stderr, "banger: %s: the workspace record of vm %s in %s is unreadable: %s\n", cmd, ref,
                        t->state ? t->state : "?", strerror(-r));
                return r;
        }
        return vm_agent_client(cli, t->rpc, id, &t->agent);
}

static void export_help(void) {
        printf("Usage: banger vm workspace export VM [--base-commit C] [-o FILE | --apply]\n"
               "\n"
               "The guest's changes to its workspace (committed or not, new and deleted files\n"
               "included; files its .gitignore ignores left out) as a git patch against what\n"
               "the workspace started from (the copied work tree or --branch commit), on stdout.\n"
               "\n"
               "  --base-commit C   diff against the commit C of the host's repository instead\n"
               "  -o, --output FILE write the patch to FILE\n"
               "  --apply           apply it to the host's work tree (git apply); refused, with\n"
               "                    the conflicting paths named and nothing changed, when it does\n"
               "                    not apply cleanly\n");
}

static int export_cmd(Cli *cli, int argc, char **argv) {
        enum { OPT_BASE = CLI_OPT_FIRST_PRIVATE, OPT_APPLY };
        static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
                                              { "base-commit", required_argument, NULL, OPT_BASE },
                                              { "output", required_argument, NULL, 'o' },
                                              { "apply", no_argument, NULL, OPT_APPLY },
                                              {} };
        WsExportOptions o = {};
        for (int c; (c = getopt_long(argc, argv, "ho:", opts, NULL)) >= 0;) {
                if (c == 'h') {
                        export_help();
                        return EXIT_OK;
                } else if (c == OPT_BASE)
                        o.base_commit = optarg;
                else if (c == 'o')
                        o.output = optarg;
                else if (c == OPT_APPLY)
                        o.apply = true;
                else
                        return cli_option_error("vm workspace export", argv);
        }
        if (argc - optind != 1)
                return cli_usage_error("vm workspace export", "expects one VM");
        if (o.apply && o.output)
                return cli_usage_error("vm workspace export", "-o and --apply exclude each other");
        _cleanup_(ws_target_done) WsTarget t = {};
        if (ws_target_open(cli, "vm workspace export", argv[optind], &t) < 0)
                return EXIT_FAIL;
        return workspace_export(t.agent, "vm workspace export", &t.rec, t.state, &o) < 0 ? EXIT_FAIL : EXIT_OK;
}

static void sync_help(void) {
        printf("Usage: banger vm workspace sync VM\n"
               "\n"
               "Copy the host's work tree into the VM's workspace again: only the files that\n"
               "changed since the last copy (by git's index), and files deleted on the host are\n"
               "removed in the guest. A file changed on both sides gets the host's version.\n");
}

static int sync_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "vm workspace sync", sync_help, argc, argv, 1, 1);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        _cleanup_(ws_target_done) WsTarget t = {};
        if (ws_target_open(cli, "vm workspace sync", argv[optind], &t) < 0)
                return EXIT_FAIL;
        _cleanup_free_ char *tree = NULL;
        if (workspace_sync(t.agent, CLI_REPORT("vm workspace sync"), &t.rec, t.state, &tree) < 0)
                return EXIT_FAIL;
        free(t.rec.tree);
        t.rec.tree = TAKE_PTR(tree);
        r = ws_record_save(t.state, &t.rec);
        if (r < 0)
                fprintf(stderr, "banger: vm workspace sync: cannot save the record in %s: %s\n", t.state, strerror(-r));
        return r < 0 ? EXIT_FAIL : EXIT_OK;
}

static void log_help(void) {
        printf("Usage: banger vm workspace log VM\n"
               "\n"
               "Print the log of the VM's workspace setup (mise install and .banger/setup, as\n"
               "run by 'vm run DIR' or 'vm create --workspace DIR'). The host keeps it in\n"
               "<state dir>/workspace-logs/<vm id>.log, the guest in " WS_SETUP_GUEST_LOG ".\n");
}

static int log_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "vm workspace log", log_help, argc, argv, 1, 1);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        _cleanup_rpc_client_ RpcClient *c = NULL;
        json_t *vm = NULL;
        if (cli_connect(cli, &c) < 0 || cli_call(cli, c, "vm.show", json_pack("{s:s}", "vm", argv[optind]), &vm) < 0)
                return EXIT_FAIL;
        _cleanup_free_ char *path = NULL, *text = NULL;
        r = ws_setup_log_path(cli, json_str(vm, "id", ""), &path);
        json_decref(vm);
        size_t len = 0;
        _cleanup_close_ int fd = r < 0 ? r : open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && r >= 0)
                fd = -errno;
        if (fd == -ENOENT) {
                fprintf(stderr, "banger: vm workspace log: vm %s ran no workspace setup\n", argv[optind]);
                return EXIT_FAIL;
        }
        r = fd < 0 ? fd : read_file_fd(fd, 64u << 20, &text, &len);
        if (r < 0) {
                fprintf(stderr, "banger: vm workspace log: cannot read %s: %s\n", path, strerror(-r));
                return EXIT_FAIL;
        }
        return loop_write(STDOUT_FILENO, text, len) < 0 ? EXIT_FAIL : EXIT_OK;
}

static void workspace_help(void) {
        printf("Usage: banger vm workspace COMMAND VM ...\n"
               "\n"
               "A VM's workspace: the git work tree that 'vm run DIR' or 'vm create --workspace\n"
               "DIR' copied to /root/<name> in the guest (docs/workspaces.md).\n"
               "\n"
               "Commands:\n"
               "  export   the guest's changes as a patch, or applied to the host (--apply)\n"
               "  sync     copy the host's work tree again (only what changed)\n"
               "  log      the log of its setup (.banger/setup, mise install)\n");
}

int vm_workspace_cmd(Cli *cli, int argc, char **argv) {
        if (argc < 2) {
                workspace_help();
                return EXIT_USAGE;
        }
        (void) signal(SIGPIPE, SIG_IGN);
        if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
                workspace_help();
                return EXIT_OK;
        }
        if (streq(argv[1], "export"))
                return export_cmd(cli, argc - 1, argv + 1);
        if (streq(argv[1], "sync"))
                return sync_cmd(cli, argc - 1, argv + 1);
        if (streq(argv[1], "log"))
                return log_cmd(cli, argc - 1, argv + 1);
        return cli_usage_error("vm workspace", "unknown command '%s': use export, sync or log", argv[1]);
}
