/* SPDX-License-Identifier: MIT */
/* banger vm cp SRC VM:DST | VM:SRC DST: files and trees between the host and
 * a guest, as a tar stream (pax) on one agent stream (cp-stream.h); the
 * guest side is the agent itself (no tar, ssh or shell needed in the
 * image). Both sides apply the same rules (agent-paths.h): one top-level
 * entry, no absolute names or "..", no symlinks pointing out of the tree,
 * nothing created through a symlink. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-client.h"
#include "cmd-vm.h"
#include "cp-stream.h"
#include "workspace-report.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"

typedef struct Side {
        char *vm; /* NULL: the host */
        char *path;
} Side;

/* "VM:PATH" names the guest: a colon, and no slash before it. */
static int parse_side(const char *arg, Side *ret) {
        const char *colon = strchr(arg, ':');
        const char *slash = strchr(arg, '/');
        *ret = (Side){};
        if (colon && colon != arg && (!slash || slash > colon)) {
                ret->vm = strndup(arg, (size_t) (colon - arg));
                ret->path = strdup(colon + 1);
        } else
                ret->path = strdup(arg);
        return ret->path && (!colon || ret->vm || !ret->vm) ? 0 : -ENOMEM;
}

static void side_done(Side *s) {
        free(s->vm);
        free(s->path);
}

static void cp_help(void) {
        printf("Usage: banger vm cp SRC VM:DST\n"
               "       banger vm cp VM:SRC DST\n"
               "\n"
               "Copy a file or a directory tree into or out of a running VM, through its agent\n"
               "(the image needs no tar, ssh or shell). Modes, numeric owners, symlinks, hard\n"
               "links and modification times are kept. Like cp -r and docker cp: when DST is\n"
               "an existing directory, SRC is copied into it; otherwise SRC is copied as DST\n"
               "(whose parent must exist). SRC/. copies the contents of the directory SRC.\n"
               "Guest paths are absolute. Entries with absolute names or \"..\", and symlinks\n"
               "pointing out of the copied tree, are refused on both sides; nothing is ever\n"
               "written through a symlink. A large copy shows its progress on a terminal.\n");
}

int vm_cp_cmd(Cli *cli, int argc, char **argv) {
        static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
        for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) >= 0;) {
                if (o == 'h') {
                        cp_help();
                        return EXIT_OK;
                }
                return cli_option_error("vm cp", argv);
        }
        if (argc - optind != 2)
                return cli_usage_error("vm cp", "expects a source and a destination, one of them VM:PATH");
        Side src, dst;
        if (parse_side(argv[optind], &src) < 0 || parse_side(argv[optind + 1], &dst) < 0)
                return EXIT_FAIL;
        int r = EXIT_USAGE;
        Side *guest = src.vm ? &src : &dst;
        if (!src.vm == !dst.vm)
                cli_usage_error("vm cp", "exactly one of SRC and DST must be VM:PATH");
        else if (guest->path[0] != '/')
                cli_usage_error("vm cp", "the guest path %s is not absolute", guest->path);
        else {
                (void) signal(SIGPIPE, SIG_IGN); /* a side that stops early is an error, not a death */
                _cleanup_rpc_client_ RpcClient *c = NULL;
                _cleanup_(agent_client_freep) AgentClient *a = NULL;
                r = EXIT_FAIL;
                if (cli_connect(cli, &c) >= 0 && vm_agent_client(cli, c, guest->vm, &a) >= 0) {
                        size_t n = strlen(src.path);
                        uint32_t flags = n >= 2 && streq(src.path + n - 2, "/.") ? AGENT_FILES_FLAG_CONTENTS : 0;
                        r = (src.vm ? cp_stream_get(a, CLI_REPORT("vm cp"), src.path, flags, dst.path)
                                    : cp_stream_put_path(a, CLI_REPORT("vm cp"), src.path, dst.path)) < 0
                                    ? EXIT_FAIL
                                    : EXIT_OK;
                }
        }
        side_done(&src);
        side_done(&dst);
        return r;
}
