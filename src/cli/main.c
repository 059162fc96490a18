/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banger-build.h"
#include "cli.h"
#include "cmd-ssh-config.h"
#include "error.h"
#include "log.h"
#include "verbs.h"
#include "string-util.h"

const CliCommand cli_commands[] = {
        { "catalog", cmd_catalog, "build the catalog of a directory of image and kernel bundles" },
        { "completion", cmd_completion, "print a bash, zsh or fish completion script" },
        { "daemon", cmd_daemon, "start, stop or inspect the banger daemon" },
        { "doctor", cmd_doctor, "check this host for what banger needs" },
        { "events", cmd_events, "print VM, image, kernel and snapshot events as they happen" },
        { "image", cmd_image, "register, promote, list and delete images" },
        { "kernel", cmd_kernel, "import, list and remove kernels" },
        { "operations", cmd_operations, "list, follow and cancel long operations in flight" },
        { "ps", cmd_ps, "list VMs (same as 'vm list')" },
        { "snapshot", cmd_snapshot, "list, show and delete VM snapshots and warm-start templates" },
        { "ssh-config", cmd_ssh_config, "reach VMs as NAME.vm with plain ssh, scp and rsync" },
        { "ssh-proxy", cmd_ssh_proxy, "relay stdin/stdout to a VM's port (ssh's ProxyCommand)" },
        { "system", cmd_system, "install, inspect or remove banger's system services (root)" },
        { "version", cmd_version, "print the version" },
        { "vm", cmd_vm, "create, run, inspect and delete VMs" },
        {},
};

static void help(void) {
        printf("Usage: banger [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
               "\n"
               "Persistent, fast, disposable Linux microVMs on this host.\n"
               "\n"
               "Commands:\n");
        for (const CliCommand *c = cli_commands; c->name; c++)
                printf("  %-10s %s\n", c->name, c->summary);
        printf("\n"
               "Global options:\n"
               "  --json          machine-readable output\n"
               "  --socket PATH   talk to the daemon on PATH instead of the default socket\n"
               "  --system        use the system-wide daemon and paths (/run/banger, /var/lib/banger)\n"
               "  --version       print the version\n"
               "  -h, --help      show this help; 'banger COMMAND --help' for a command\n"
               "\n"
               "Exit codes: 0 success, 1 failure, 2 usage error.\n");
}

int main(int argc, char **argv) {
        Cli cli = { .argv0 = argv[0] };
        log_set_program("banger");
        log_set_max_level(LOG_WARNING);
        (void) log_parse_environment();

        enum { ARG_JSON = 0x100, ARG_SOCKET, ARG_SYSTEM, ARG_VERSION };
        static const struct option opts[] = {
                { "json", no_argument, NULL, ARG_JSON },     { "socket", required_argument, NULL, ARG_SOCKET },
                { "system", no_argument, NULL, ARG_SYSTEM }, { "version", no_argument, NULL, ARG_VERSION },
                { "help", no_argument, NULL, 'h' },          {},
        };
        int c;
        opterr = 0; /* getopt's own messages name the binary by its path */
        while ((c = getopt_long(argc, argv, "+h", opts, NULL)) >= 0) {
                switch (c) {
                case ARG_JSON:
                        cli.json = true;
                        break;
                case ARG_SOCKET:
                        if (optarg[0] != '/') {
                                fprintf(stderr, "banger: --socket needs an absolute path\n");
                                return EXIT_USAGE;
                        }
                        cli.socket_override = optarg;
                        break;
                case ARG_SYSTEM:
                        cli.system = true;
                        break;
                case ARG_VERSION:
                        return cmd_version(&cli, 0, NULL);
                case 'h':
                        help();
                        return EXIT_OK;
                default:
                        return cli_option_error(NULL, argv);
                }
        }
        if (optind >= argc) {
                help();
                return EXIT_USAGE;
        }
        const char *name = argv[optind];
        const CliCommand *cmd = NULL;
        for (const CliCommand *k = cli_commands; k->name; k++)
                if (streq(k->name, name))
                        cmd = k;
        if (!cmd) {
                fprintf(stderr, "banger: unknown command '%s'. Try 'banger --help'.\n", name);
                return EXIT_USAGE;
        }
        int r = paths_resolve(cli.system, &cli.paths);
        if (r < 0) {
                fprintf(stderr, "banger: %s\n", error_last_message() ? error_last_message() : strerror(-r));
                return EXIT_FAIL;
        }
        cli.socket_path = cli.socket_override ? cli.socket_override : cli.paths.socket_path;
        int first = optind;
        /* Subcommands run their own getopt (argv[0] is the command name) and
         * report bad options themselves. */
        optind = 0;
        opterr = 0;
        r = cmd->fn(&cli, argc - first, argv + first);
        if (r == EXIT_FAIL && cli.usage_failed)
                r = EXIT_USAGE;
        if (r != EXIT_OK && cli.exit_status)
                r = cli.exit_status;
        paths_done(&cli.paths);
        return r;
}
