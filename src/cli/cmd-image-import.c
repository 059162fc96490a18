/* SPDX-License-Identifier: MIT */
/* banger image import: an OCI or Docker image turned into a root
 * filesystem by the daemon (image.import), with download, layer and write
 * progress shown as it happens. */
#include "cmd-image.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd-vm.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"

static void import_help(void) {
        printf("Usage: banger image import SOURCE --name NAME [--kernel-ref KERNEL] [--json]\n"
               "\n"
               "Import an OCI or Docker image as a root filesystem (ext4, at least 1 GiB) in\n"
               "banger's store, with banger-agent installed (a systemd unit, or an /etc/inittab\n"
               "entry for busybox/sysvinit images). SOURCE is, when a file or directory of that\n"
               "name exists, a 'docker save' archive, an OCI layout directory or an OCI archive;\n"
               "otherwise a registry reference [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST],\n"
               "pulled anonymously over HTTPS (plain HTTP for localhost and 127.0.0.1 only).\n"
               "Every blob's digest is verified; nothing is left behind on failure.\n"
               "\n"
               "Options:\n"
               "  --name NAME        image name (a-z, 0-9 and '-' inside, at most 63)\n"
               "  --kernel-ref NAME  the kernel it boots; default: the default image's kernel,\n"
               "                     else the newest imported one\n");
}

/* The daemon opens local sources itself, from its own working directory:
 * a path that exists here is made absolute; anything else is a reference. */
static int source_param(const char *arg, char **ret) {
        struct stat st;
        if (lstat(arg, &st) < 0) {
                *ret = strdup(arg);
                return *ret ? 0 : -ENOMEM;
        }
        return cli_absolute_path("image import", "SOURCE", arg, ret);
}

int image_import_cmd(Cli *cli, int argc, char **argv) {
        enum { OPT_NAME = CLI_OPT_FIRST_PRIVATE, OPT_KERNEL };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "name", required_argument, NULL, OPT_NAME },
                                              { "kernel-ref", required_argument, NULL, OPT_KERNEL },
                                              {} };
        const char *name = NULL, *kernel = NULL;
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        import_help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case OPT_NAME:
                        name = optarg;
                        break;
                case OPT_KERNEL:
                        kernel = optarg;
                        break;
                default:
                        return cli_option_error("image import", argv);
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("image import", "expects one SOURCE");
        if (!name)
                return cli_usage_error("image import", "--name NAME is required");
        if (!name_is_valid(name))
                return cli_invalid_name("image import", name);
        if (kernel && !name_is_valid(kernel))
                return cli_usage_error("image import", "invalid kernel name '%s'", kernel);
        _cleanup_free_ char *source = NULL;
        int r = source_param(argv[optind], &source);
        if (r != 0)
                return r < 0 ? EXIT_FAIL : r;
        json_t *params = json_pack("{s:s, s:s}", "name", name, "source", source);
        if (params && kernel)
                json_object_set_new(params, "kernel", json_string(kernel));
        json_t *img = NULL;
        r = cli_call_progress(cli, "image.import", params, &img);
        if (r != 0)
                return r;
        image_print_made(cli, "imported", img, name);
        json_decref(img);
        return EXIT_OK;
}
