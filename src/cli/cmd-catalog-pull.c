/* SPDX-License-Identifier: MIT */
/* banger image pull, kernel pull, image list --available, kernel list
 * --available: what the [[catalog]]s in config.toml offer, fetched and
 * registered by the daemon. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-catalog.h"
#include "cmd-image.h"
#include "cmd-vm.h"
#include "macro.h"
#include "output.h"
#include "string-util.h"
#include "verbs.h"

enum { OPT_SHA256 = CLI_OPT_FIRST_PRIVATE, OPT_AVAILABLE };

static void pull_help(const char *kind) {
        printf("Usage: banger %s pull NAME[:VERSION] [--json]\n"
               "       banger %s pull FILE|URL --sha256 HEX [--json]\n"
               "\n"
               "Fetch %s NAME (its highest version, or VERSION) from the first [[catalog]] in\n"
               "config.toml that offers it, after checking the catalog's minisign signature;\n"
               "or take a bundle file or URL directly, checked against --sha256. The download\n"
               "is verified while it streams and resumed where it stopped if the connection\n"
               "breaks; the bundle is unpacked apart and registered only when all of it is\n"
               "good: on any failure nothing is registered and nothing is left.%s A progress\n"
               "bar (bytes, rate, time left) shows on a terminal, stage lines elsewhere.\n"
               "See docs/catalogs.md.\n",
               kind, kind, streq(kind, "image") ? "an image" : "a kernel",
               streq(kind, "image") ? " An image\nbrings its kernel when that kernel is not here yet." : "");
}

static void image_pull_help(void) {
        pull_help("image");
}

static void kernel_pull_help(void) {
        pull_help("kernel");
}

static bool arg_is_url(const char *s) {
        return startswith(s, "http://") || startswith(s, "https://") || startswith(s, "file://");
}

static int pull_params(const char *cmd, const char *arg, const char *sha256, json_t **ret) {
        if (!sha256) {
                *ret = json_pack("{s:s}", "name", arg);
                return *ret ? 0 : EXIT_FAIL;
        }
        _cleanup_free_ char *abs = NULL;
        if (!arg_is_url(arg)) {
                int r = cli_absolute_path(cmd, "FILE", arg, &abs);
                if (r != 0)
                        return r;
        }
        *ret = json_pack("{s:s, s:s}", "source", abs ?: arg, "sha256", sha256);
        return *ret ? 0 : EXIT_FAIL;
}

static void print_pulled(Cli *cli, const char *kind, json_t *res, const char *arg) {
        if (streq(kind, "image")) {
                image_print_made(cli, "pulled", res, arg);
                return;
        }
        if (cli->json) {
                print_json_line(res);
                return;
        }
        json_make_printable(res);
        printf("pulled kernel %s (%s)\n", json_str(res, "name", arg), json_str(res, "version", "-"));
}

static int pull_cmd(Cli *cli, const char *kind, void (*help)(void), int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "sha256", required_argument, NULL, OPT_SHA256 },
                                              {} };
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "%s pull", kind);
        const char *sha256 = NULL;
        for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) >= 0;) {
                if (o == 'h') {
                        help();
                        return EXIT_OK;
                } else if (o == CLI_OPT_JSON)
                        cli->json = true;
                else if (o == OPT_SHA256)
                        sha256 = optarg;
                else
                        return cli_option_error(cmd, argv);
        }
        if (argc - optind != 1)
                return cli_usage_error(cmd, "expects one NAME[:VERSION], or FILE|URL with --sha256");
        json_t *params = NULL, *res = NULL;
        int r = pull_params(cmd, argv[optind], sha256, &params);
        if (r != 0)
                return r;
        char method[32];
        snprintf(method, sizeof(method), "%s.pull", kind);
        r = cli_call_progress(cli, method, params, &res);
        if (r != 0)
                return r;
        print_pulled(cli, kind, res, argv[optind]);
        json_decref(res);
        return EXIT_OK;
}

int image_pull_cmd(Cli *cli, int argc, char **argv) {
        return pull_cmd(cli, "image", image_pull_help, argc, argv);
}

int kernel_pull_cmd(Cli *cli, int argc, char **argv) {
        return pull_cmd(cli, "kernel", kernel_pull_help, argc, argv);
}

/* ---- list --available ---- */

bool catalog_list_wants_available(int argc, char **argv) {
        for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
                if (streq(argv[i], "--available"))
                        return true;
        return false;
}

static void available_help(const char *kind) {
        printf("Usage: banger %s list --available [--json]\n"
               "\n"
               "List the %ss the [[catalog]]s in config.toml offer: NAME VERSION SIZE HERE\n"
               "%sSOURCE. HERE says whether one of that name is registered already. A catalog\n"
               "that cannot be fetched or does not verify is named on stderr.\n",
               kind, kind, streq(kind, "image") ? "KERNEL " : "");
}

static void offer_row(json_t *e, const char **row, char (*buf)[TABLE_CELL_MAX]) {
        row[0] = json_str(e, "name", "-");
        row[1] = json_str(e, "version", "-");
        row[2] = format_json_size(buf[2], TABLE_CELL_MAX, e, "size");
        row[3] = json_is_true(json_object_get(e, "here")) ? "yes" : "no";
        row[4] = json_str(json_object_get(e, "kernel"), "name", "-");
        row[5] = json_str(e, "catalog", "-");
}

static void kernel_offer_row(json_t *e, const char **row, char (*buf)[TABLE_CELL_MAX]) {
        offer_row(e, row, buf);
        row[4] = row[5];
}

static void print_available(const char *kind, json_t *res) {
        static const char *const ihdr[] = { "NAME", "VERSION", "SIZE", "HERE", "KERNEL", "SOURCE" };
        static const char *const khdr[] = { "NAME", "VERSION", "SIZE", "HERE", "SOURCE" };
        size_t i;
        json_t *c;
        json_make_printable(res);
        json_array_foreach (json_object_get(res, "catalogs"), i, c)
                if (!json_is_true(json_object_get(c, "ok")))
                        fprintf(stderr, "banger: %s\n", json_str(c, "error", "a catalog failed"));
        if (streq(kind, "image"))
                table_print_items(json_object_get(res, "images"), ihdr, ELEMENTSOF(ihdr), offer_row);
        else
                table_print_items(json_object_get(res, "kernels"), khdr, ELEMENTSOF(khdr), kernel_offer_row);
}

int catalog_list_available(Cli *cli, const char *kind, int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "available", no_argument, NULL, OPT_AVAILABLE },
                                              {} };
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "%s list", kind);
        for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) >= 0;) {
                if (o == 'h') {
                        available_help(kind);
                        return EXIT_OK;
                } else if (o == CLI_OPT_JSON)
                        cli->json = true;
                else if (o != OPT_AVAILABLE)
                        return cli_option_error(cmd, argv);
        }
        if (optind < argc)
                return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
        _cleanup_rpc_client_ RpcClient *c = NULL;
        if (cli_connect(cli, &c) < 0)
                return EXIT_FAIL;
        json_t *res = NULL;
        if (cli_call(cli, c, "catalog.list", json_pack("{s:s}", "kind", kind), &res) < 0)
                return EXIT_FAIL;
        if (cli->json)
                cli_print_json(res);
        else
                print_available(kind, res);
        json_decref(res);
        return EXIT_OK;
}
