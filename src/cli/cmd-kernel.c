/* SPDX-License-Identifier: MIT */
/* banger kernel import|list|show|rm */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd-catalog.h"
#include "cmd-vm.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"

static int kernel_import_cmd(Cli *cli, int argc, char **argv);
static int kernel_list_cmd(Cli *cli, int argc, char **argv);
static int kernel_show_cmd(Cli *cli, int argc, char **argv);
static int kernel_rm_cmd(Cli *cli, int argc, char **argv);

const CliVerb cli_kernel_verbs[] = {
        { "import", NULL, kernel_import_cmd, "import a kernel (and initrd, modules) from a file or directory",
          "--from= --initrd= --json --help", "" },
        { "list", "ls", kernel_list_cmd, "list kernels (--available: what the catalogs offer)",
          "--names --available --json --help", "" },
        { "show", NULL, kernel_show_cmd, "show one kernel", "--json --help", "kernel" },
        { "pull", NULL, kernel_pull_cmd, "fetch a kernel from a catalog, or a bundle file or URL",
          "--sha256= --json --help", "file" },
        { "bundle", NULL, kernel_bundle_cmd, "write a kernel as a bundle file to publish",
          "-o= --output= --version= --description= --json --help", "kernel" },
        { "rm", "delete", kernel_rm_cmd, "remove kernels no image uses", "--json --help", "kernel" },
        {},
};

int cmd_kernel(Cli *cli, int argc, char **argv) {
        return cli_group_run(cli, "kernel",
                             "Kernels that images boot: a vmlinux (Firecracker) or vmlinuz, an optional\n"
                             "initrd and an optional lib/modules tree, copied into banger's store.",
                             cli_kernel_verbs, argc, argv);
}

static void import_help(void) {
        printf("Usage: banger kernel import NAME --from FILE|DIR [--initrd FILE] [--json]\n"
               "\n"
               "Import a kernel under NAME (a-z, 0-9, '-' inside). --from is a kernel file\n"
               "(an uncompressed vmlinux, or a vmlinuz for QEMU), or a directory holding\n"
               "vmlinuz-* or vmlinux, optionally initrd* and lib/modules/<version> (what\n"
               "'dpkg -x linux-image-*.deb DIR' gives: DIR/boot and DIR/lib work too). The files\n"
               "are copied; progress shows on a terminal. --initrd names an initrd explicitly\n"
               "(when --from is a file, or to override the one found in the directory).\n");
}

static void print_kernel(json_t *k) {
        char size[16], ago[32];
        json_make_printable(k); /* a kernel's version, an image's names: not ours */
        printf("name:      %s\n", json_str(k, "name", "-"));
        printf("id:        %s\n", json_str(k, "id", "-"));
        printf("version:   %s\n", json_str(k, "version", "-"));
        printf("kernel:    %s\n", json_str(k, "kernel", "-"));
        printf("vmlinux:   %s\n", json_str(k, "vmlinux", "-"));
        printf("initrd:    %s\n", json_str(k, "initrd", "-"));
        printf("modules:   %s\n", json_str(k, "modules", "-"));
        printf("size:      %s\n", format_json_size(size, sizeof(size), k, "size"));
        printf("sha256:    %s\n", json_str(k, "sha256", "-"));
        printf("created:   %s (%s)\n", json_str(k, "created_at", "-"),
               format_ago(ago, sizeof(ago), json_str(k, "created_at", NULL)));
}

static int kernel_import_cmd(Cli *cli, int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "from", required_argument, NULL, 'F' },
                                              { "initrd", required_argument, NULL, 'I' },
                                              {} };
        const char *from = NULL, *initrd = NULL;
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'h':
                        import_help();
                        return EXIT_OK;
                case CLI_OPT_JSON:
                        cli->json = true;
                        break;
                case 'F':
                        from = optarg;
                        break;
                case 'I':
                        initrd = optarg;
                        break;
                default:
                        return cli_option_error("kernel import", argv);
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("kernel import", "expects one NAME");
        const char *name = argv[optind];
        if (!name_is_valid(name))
                return cli_invalid_name("kernel import", name);
        if (!from)
                return cli_usage_error("kernel import", "--from FILE|DIR is required");
        _cleanup_free_ char *abs = NULL, *abs_initrd = NULL;
        int r = cli_absolute_path("kernel import", "--from", from, &abs);
        if (r == 0 && initrd)
                r = cli_absolute_path("kernel import", "--initrd", initrd, &abs_initrd);
        if (r != 0)
                return r;
        json_t *params = json_pack("{s:s, s:s}", "name", name, "from", abs);
        if (abs_initrd)
                json_object_set_new(params, "initrd", json_string(abs_initrd));
        json_t *k = NULL;
        r = cli_call_progress(cli, "kernel.import", params, &k);
        if (r != 0)
                return r;
        if (cli->json)
                print_json_line(k);
        else {
                char size[16];
                printf("imported kernel %s (%s, %s)\n", json_str(k, "name", name),
                       json_str(k, "version", "version unknown"), format_json_size(size, sizeof(size), k, "size"));
        }
        json_decref(k);
        return EXIT_OK;
}

static void list_help(void) {
        printf("Usage: banger kernel list [--names | --available] [--json]\n"
               "\n"
               "List kernels: NAME VERSION INITRD MODULES SIZE CREATED. --names prints names\n"
               "only (for shell completion; never starts the daemon). --available lists what\n"
               "the [[catalog]]s in config.toml offer instead (see 'banger kernel pull').\n");
}

static void kernel_row(json_t *k, const char **row, char (*buf)[TABLE_CELL_MAX]) {
        row[0] = json_str(k, "name", "-");
        row[1] = json_str(k, "version", "-");
        row[2] = json_str(k, "initrd", NULL) ? "yes" : "no";
        row[3] = json_str(k, "modules", NULL) ? "yes" : "no";
        row[4] = format_json_size(buf[4], TABLE_CELL_MAX, k, "size");
        row[5] = format_ago(buf[5], TABLE_CELL_MAX, json_str(k, "created_at", NULL));
}

static void print_kernels(json_t *res) {
        static const char *const hdr[] = { "NAME", "VERSION", "INITRD", "MODULES", "SIZE", "CREATED" };
        table_print_items(json_object_get(res, "kernels"), hdr, ELEMENTSOF(hdr), kernel_row);
}

static int kernel_list_cmd(Cli *cli, int argc, char **argv) {
        if (catalog_list_wants_available(argc, argv))
                return catalog_list_available(cli, "kernel", argc, argv);
        return cli_list(cli, "kernel list", list_help, argc, argv, "kernel.list", print_kernels);
}

static void show_help(void) {
        printf("Usage: banger kernel show NAME [--json]\n\nShow a kernel: version, files, size, sha256.\n");
}

static int kernel_show_cmd(Cli *cli, int argc, char **argv) {
        return cli_show_one(cli, "kernel show", show_help, argc, argv, "kernel.show", "name", print_kernel);
}

static void rm_help(void) {
        printf("Usage: banger kernel rm NAME... [--json]\n"
               "\n"
               "Remove kernels and their files. A kernel an image still uses is refused\n"
               "(delete the image first). Exit code 1 when any removal failed.\n");
}

static int kernel_rm_cmd(Cli *cli, int argc, char **argv) {
        return cli_for_each_named(cli, "kernel rm", rm_help, argc, argv, "kernel.rm", "removed", "kernel");
}
