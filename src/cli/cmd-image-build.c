/* SPDX-License-Identifier: MIT */
/* banger image build: a Debian image made by the daemon with debootstrap
 * (image.build), with its stages shown as they happen. */
#include "cmd-image.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-vm.h"
#include "config.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"

static void build_help(void) {
        printf("Usage: banger image build [NAME] [--debootstrap SUITE] [--mirror URL] [--json]\n"
               "\n"
               "Build a Debian image with debootstrap: systemd, openssh-server and banger-agent\n"
               "on an ext4 root filesystem, booting Debian's own kernel (imported as\n"
               "NAME-kernel). Needs root on the daemon's side and a few minutes; the stages\n"
               "(debootstrap, kernel, initramfs, rootfs, register) show as they run.\n"
               "\n"
               "  NAME               image name; default: config default_image\n"
               "  --debootstrap SUITE  Debian suite, like bookworm; default: config debootstrap_suite\n"
               "  --mirror URL       Debian mirror; default: config debootstrap_mirror\n");
}

/* The name is the config's default_image when none is given, so that
 * `banger image build` makes exactly what `vm create` looks for. */
static char *default_image_name(Cli *cli) {
        BangerConfig cfg;
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, cli->paths.config_dir);
        int r = dfd >= 0 ? config_load(dfd, CONFIG_FILE_NAME, &cfg) : config_init(&cfg);
        if (r < 0)
                return NULL;
        char *name = cfg.default_image ? strdup(cfg.default_image) : NULL;
        config_done(&cfg);
        return name;
}

int image_build_cmd(Cli *cli, int argc, char **argv) {
        enum { OPT_DEBOOTSTRAP = CLI_OPT_FIRST_PRIVATE, OPT_MIRROR };
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "debootstrap", required_argument, NULL, OPT_DEBOOTSTRAP },
                                              { "mirror", required_argument, NULL, OPT_MIRROR },
                                              {} };
        const char *suite = NULL, *mirror = NULL;
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        build_help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case OPT_DEBOOTSTRAP:
                        suite = optarg;
                        break;
                case OPT_MIRROR:
                        mirror = optarg;
                        break;
                default:
                        return cli_option_error("image build", argv);
                }
        }
        if (argc - optind > 1)
                return cli_usage_error("image build", "unexpected argument '%s'", argv[optind + 1]);
        _cleanup_free_ char *name = argc > optind ? strdup(argv[optind]) : default_image_name(cli);
        if (!name)
                return cli_usage_error("image build", "no NAME given and none configured (default_image)");
        if (!name_is_valid(name))
                return cli_invalid_name("image build", name);
        json_t *params = json_pack("{s:s}", "name", name);
        if (params && suite)
                json_object_set_new(params, "suite", json_string(suite));
        if (params && mirror)
                json_object_set_new(params, "mirror", json_string(mirror));
        json_t *img = NULL;
        int r = cli_call_progress(cli, "image.build", params, &img);
        if (r != 0)
                return r;
        image_print_made(cli, "built", img, name);
        json_decref(img);
        return EXIT_OK;
}
