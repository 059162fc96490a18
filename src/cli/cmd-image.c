/* SPDX-License-Identifier: MIT */
/* banger image register|promote|list|show|delete */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-catalog.h"
#include "cmd-image.h"
#include "cmd-vm.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"

static int image_register_cmd(Cli *cli, int argc, char **argv);
static int image_promote_cmd(Cli *cli, int argc, char **argv);
static int image_list_cmd(Cli *cli, int argc, char **argv);
static int image_show_cmd(Cli *cli, int argc, char **argv);
static int image_delete_cmd(Cli *cli, int argc, char **argv);
static int image_cache_cmd(Cli *cli, int argc, char **argv);

const CliVerb cli_image_verbs[] = {
        { "build", NULL, image_build_cmd, "build a Debian image with debootstrap (as root)",
          "--debootstrap= --mirror= --json --help", "" },
        { "import", NULL, image_import_cmd, "import an OCI/Docker image (registry, archive or layout)",
          "--name= --kernel-ref= --json --help", "" },
        { "register", NULL, image_register_cmd, "register an existing root filesystem image with a kernel",
          "--name= --rootfs= --kernel-ref= --work-seed= --json --help", "" },
        { "promote", NULL, image_promote_cmd, "copy a registered image's rootfs into banger's store", "--json --help",
          "image" },
        { "list", "ls", image_list_cmd, "list images (--available: what the catalogs offer)",
          "--names --available --json --help", "" },
        { "show", NULL, image_show_cmd, "show one image", "--json --help", "image" },
        { "delete", "rm", image_delete_cmd, "delete images no VM uses", "-f --force --json --help", "image" },
        { "pull", NULL, image_pull_cmd, "fetch an image from a catalog, or a bundle file or URL",
          "--sha256= --json --help", "file" },
        { "bundle", NULL, image_bundle_cmd, "write an image and its kernel as a bundle file to publish",
          "-o= --output= --version= --description= --json --help", "image" },
        { "cache", NULL, image_cache_cmd, "prune downloaded OCI blobs no image came from (cache prune)",
          "--dry-run --json --help", "" },
        {},
};

int cmd_image(Cli *cli, int argc, char **argv) {
        return cli_group_run(cli, "image",
                             "Images are a root filesystem (ext4) plus the kernel it boots with. VMs get a\n"
                             "copy-on-write clone of the image's rootfs.",
                             cli_image_verbs, argc, argv);
}

static void register_help(void) {
        printf("Usage: banger image register --name NAME --rootfs FILE --kernel-ref KERNEL\n"
               "                             [--work-seed FILE] [--json]\n"
               "\n"
               "Register an existing root filesystem image (ext4, left where it is) under NAME,\n"
               "booting with KERNEL (see 'banger kernel import'). 'banger image promote' later\n"
               "copies it into banger's store so the original can go.\n"
               "\n"
               "Options:\n"
               "  --name NAME        image name (a-z, 0-9 and '-' inside, at most 63)\n"
               "  --rootfs FILE      the root filesystem image\n"
               "  --kernel-ref NAME  an imported kernel\n"
               "  --work-seed FILE   optional seed for each VM's writable work disk\n");
}

void image_print_made(Cli *cli, const char *done, json_t *img, const char *name) {
        if (cli->json) {
                cli_print_json(img);
                return;
        }
        char size[16];
        printf("%s image %s (%s, rootfs %s)\n", done, json_str(img, "name", name),
               format_json_size(size, sizeof(size), img, "size"), json_str(img, "rootfs", "-"));
}

static void print_image(json_t *i) {
        char size[16], ago[32];
        json_make_printable(i); /* a kernel's version, an image's names: not ours */
        printf("name:       %s\n", json_str(i, "name", "-"));
        printf("id:         %s\n", json_str(i, "id", "-"));
        printf("kernel:     %s\n", json_str(i, "kernel", "-"));
        printf("rootfs:     %s\n", json_str(i, "rootfs", "-"));
        printf("work seed:  %s\n", json_str(i, "work_seed", "-"));
        printf("managed:    %s\n",
               json_is_true(json_object_get(i, "managed")) ? "yes (in banger's store)" : "no (registered in place)");
        printf("size:       %s\n", format_json_size(size, sizeof(size), i, "size"));
        printf("created:    %s (%s)\n", json_str(i, "created_at", "-"),
               format_ago(ago, sizeof(ago), json_str(i, "created_at", NULL)));
}

enum { OPT_NAME = CLI_OPT_FIRST_PRIVATE, OPT_ROOTFS, OPT_KERNEL, OPT_SEED };

static int register_params(const char *name, const char *rootfs, const char *kernel, const char *seed, json_t **ret) {
        static const char cmd[] = "image register";
        if (!name || !rootfs || !kernel)
                return cli_usage_error(cmd, "--name, --rootfs and --kernel-ref are required");
        if (!name_is_valid(name))
                return cli_invalid_name(cmd, name);
        if (!name_is_valid(kernel))
                return cli_usage_error(cmd, "invalid kernel name '%s'", kernel);
        _cleanup_free_ char *abs_rootfs = NULL, *abs_seed = NULL;
        int r = cli_absolute_path(cmd, "--rootfs", rootfs, &abs_rootfs);
        if (r == 0 && seed)
                r = cli_absolute_path(cmd, "--work-seed", seed, &abs_seed);
        if (r != 0)
                return r;
        json_t *p = json_pack("{s:s, s:s, s:s}", "name", name, "rootfs", abs_rootfs, "kernel", kernel);
        if (p && abs_seed)
                json_object_set_new(p, "work_seed", json_string(abs_seed));
        *ret = p;
        return p ? 0 : EXIT_FAIL;
}

static int image_register_cmd(Cli *cli, int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "name", required_argument, NULL, OPT_NAME },
                                              { "rootfs", required_argument, NULL, OPT_ROOTFS },
                                              { "kernel-ref", required_argument, NULL, OPT_KERNEL },
                                              { "work-seed", required_argument, NULL, OPT_SEED },
                                              {} };
        const char *name = NULL, *rootfs = NULL, *kernel = NULL, *seed = NULL;
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        register_help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case OPT_NAME:
                        name = optarg;
                        break;
                case OPT_ROOTFS:
                        rootfs = optarg;
                        break;
                case OPT_KERNEL:
                        kernel = optarg;
                        break;
                case OPT_SEED:
                        seed = optarg;
                        break;
                default:
                        return cli_option_error("image register", argv);
                }
        }
        if (optind < argc)
                return cli_usage_error("image register", "unexpected argument '%s'", argv[optind]);
        json_t *params = NULL;
        int r = register_params(name, rootfs, kernel, seed, &params);
        if (r != 0)
                return r;
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0) {
                json_decref(params);
                return EXIT_FAIL;
        }
        json_t *img = NULL;
        if (cli_call(cli, c, "image.register", params, &img) < 0)
                return EXIT_FAIL;
        if (cli->json)
                cli_print_json(img);
        else
                printf("registered image %s (kernel %s, rootfs %s)\n", json_str(img, "name", name),
                       json_str(img, "kernel", kernel), json_str(img, "rootfs", "-"));
        json_decref(img);
        return EXIT_OK;
}

static void promote_help(void) {
        printf("Usage: banger image promote NAME [--json]\n"
               "\n"
               "Copy a registered image's rootfs into banger's own store and mark the image\n"
               "managed: the original file is no longer used, and 'image delete' will remove\n"
               "the copy. Shows a progress bar with bytes, rate and time left on a terminal.\n");
}

static int image_promote_cmd(Cli *cli, int argc, char **argv) {
        int r = cli_parse_simple(cli, "image promote", promote_help, argc, argv, 1, 1);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        json_t *img = NULL;
        r = cli_call_progress(cli, "image.promote", json_pack("{s:s}", "name", argv[optind]), &img);
        if (r != 0)
                return r;
        if (cli->json)
                print_json_line(img);
        else
                printf("promoted image %s: %s\n", json_str(img, "name", argv[optind]), json_str(img, "rootfs", "-"));
        json_decref(img);
        return EXIT_OK;
}

static void list_help(void) {
        printf("Usage: banger image list [--names | --available] [--json]\n"
               "\n"
               "List images: NAME KERNEL MANAGED SIZE CREATED ROOTFS. MANAGED images live in\n"
               "banger's store; the others are registered in place. --names prints names only\n"
               "(for shell completion; never starts the daemon). --available lists what the\n"
               "[[catalog]]s in config.toml offer instead (see 'banger image pull').\n");
}

static void image_row(json_t *im, const char **row, char (*buf)[TABLE_CELL_MAX]) {
        row[0] = json_str(im, "name", "-");
        row[1] = json_str(im, "kernel", "-");
        row[2] = json_is_true(json_object_get(im, "managed")) ? "yes" : "no";
        row[3] = format_json_size(buf[3], TABLE_CELL_MAX, im, "size");
        row[4] = format_ago(buf[4], TABLE_CELL_MAX, json_str(im, "created_at", NULL));
        row[5] = json_str(im, "rootfs", "-");
}

static void print_images(json_t *res) {
        static const char *const hdr[] = { "NAME", "KERNEL", "MANAGED", "SIZE", "CREATED", "ROOTFS" };
        table_print_items(json_object_get(res, "images"), hdr, ELEMENTSOF(hdr), image_row);
}

static int image_list_cmd(Cli *cli, int argc, char **argv) {
        if (catalog_list_wants_available(argc, argv))
                return catalog_list_available(cli, "image", argc, argv);
        return cli_list(cli, "image list", list_help, argc, argv, "image.list", print_images);
}

static void show_help(void) {
        printf("Usage: banger image show NAME [--json]\n\nShow an image: kernel, rootfs, managed or not, size.\n");
}

static int image_show_cmd(Cli *cli, int argc, char **argv) {
        return cli_show_one(cli, "image show", show_help, argc, argv, "image.show", "name", print_image);
}

static void delete_help(void) {
        printf("Usage: banger image delete NAME... [-f|--force] [--json]\n"
               "\n"
               "Delete images. One a VM still uses is refused, and so is one snapshots were\n"
               "made from (the error names them) unless --force, which deletes those snapshots\n"
               "too; its warm-start templates always go with it. The rootfs file is removed\n"
               "only for managed (promoted) images; a registered file is left alone. Exit code\n"
               "1 when any deletion failed.\n");
}

static int image_delete_cmd(Cli *cli, int argc, char **argv) {
        return cli_for_each_named_force(cli, "image delete", delete_help, argc, argv, "image.delete", "deleted",
                                        "image", true);
}

static void cache_help(void) {
        printf("Usage: banger image cache prune [--dry-run] [--json]\n"
               "\n"
               "Remove the OCI blobs in banger's download cache that no imported image came\n"
               "from (and staging leftovers of interrupted imports). With --dry-run, only list\n"
               "what would go. Never runs while an import is in progress.\n");
}

static int image_cache_cmd(Cli *cli, int argc, char **argv) {
        bool dry_run = false;
        const char *verb = NULL;
        for (int i = 1; i < argc; i++) {
                bool helped = false;
                if (cli_common_option(cli, argv[i], cache_help, &helped)) {
                        if (helped)
                                return EXIT_OK;
                } else if (streq(argv[i], "--dry-run"))
                        dry_run = true;
                else if (!verb && argv[i][0] != '-')
                        verb = argv[i];
                else
                        return cli_usage_error("image cache", "unexpected argument '%s'", argv[i]);
        }
        if (!verb || !streq(verb, "prune"))
                return cli_usage_error("image cache", "expected 'prune'");
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        json_t *res = NULL;
        if (cli_call(cli, c, "image.cache_prune", json_pack("{s:b}", "dry_run", dry_run), &res) < 0)
                return EXIT_FAIL;
        if (cli->json)
                cli_print_json(res);
        else {
                size_t i;
                json_t *b;
                json_array_foreach (json_object_get(res, "removed"), i, b) {
                        char size[16];
                        printf("%s %s (%s)\n", dry_run ? "would remove" : "removed",
                               json_string_value(json_object_get(b, "digest")),
                               format_json_size(size, sizeof(size), b, "bytes"));
                }
                char total[16];
                printf("%s%lld blob(s), %s\n",
                       dry_run ? "would free: " : "freed: ", json_integer_value(json_object_get(res, "blobs")),
                       format_json_size(total, sizeof(total), res, "bytes"));
        }
        json_decref(res);
        return EXIT_OK;
}
