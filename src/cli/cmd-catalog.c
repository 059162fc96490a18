/* SPDX-License-Identifier: MIT */
/* banger image bundle, kernel bundle, catalog build */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog-dl.h"
#include "catalog-doc.h"
#include "cmd-catalog.h"
#include "cmd-vm.h"
#include "error.h"
#include "fs-util.h"
#include "macro.h"
#include "string-util.h"
#include "verbs.h"

enum { OPT_OUTPUT = CLI_OPT_FIRST_PRIVATE, OPT_VERSION, OPT_DESCRIPTION, OPT_BASE_URL };

static void bundle_help(const char *kind) {
        printf("Usage: banger %s bundle NAME -o FILE [--version V] [--description TEXT] [--json]\n"
               "\n"
               "Write %s NAME as a bundle: one tar.zst holding manifest.json (name, version,\n"
               "architecture, kernel, each file's size and sha256), %sthe kernel's files\n"
               "(kernel, initrd, modules). This is what a team publishes in a catalog (see\n"
               "'banger catalog build' and docs/catalogs.md). FILE is replaced only once the\n"
               "bundle is complete. --version defaults to %s.\n",
               kind, streq(kind, "image") ? "image" : "kernel",
               streq(kind, "image") ? "the root filesystem (holes kept sparse) and " : "",
               streq(kind, "image") ? "the day the image was made (YYYY.MM.DD)" : "the kernel's version");
}

static void image_bundle_help(void) {
        bundle_help("image");
}

static void kernel_bundle_help(void) {
        bundle_help("kernel");
}

/* The daemon writes the file: give it an absolute path from our cwd. */
static int absolute_output(const char *cmd, const char *arg, char **ret) {
        if (arg[0] == '/')
                return (*ret = strdup(arg)) ? 0 : EXIT_FAIL;
        _cleanup_free_ char *cwd = getcwd(NULL, 0);
        if (!cwd)
                return cli_usage_error(cmd, "cannot resolve -o %s: %s", arg, strerror(errno));
        return asprintf(ret, "%s/%s", cwd, arg) < 0 ? EXIT_FAIL : 0;
}

static int bundle_cmd(Cli *cli, const char *kind, void (*help)(void), int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "output", required_argument, NULL, 'o' },
                                              { "version", required_argument, NULL, OPT_VERSION },
                                              { "description", required_argument, NULL, OPT_DESCRIPTION },
                                              {} };
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "%s bundle", kind);
        const char *output = NULL, *version = NULL, *description = NULL;
        for (int o; (o = getopt_long(argc, argv, "ho:", opts, NULL)) >= 0;) {
                if (o == 'h') {
                        help();
                        return EXIT_OK;
                } else if (o == CLI_OPT_JSON)
                        cli->json = true;
                else if (o == 'o')
                        output = optarg;
                else if (o == OPT_VERSION)
                        version = optarg;
                else if (o == OPT_DESCRIPTION)
                        description = optarg;
                else
                        return cli_option_error(cmd, argv);
        }
        if (argc - optind != 1)
                return cli_usage_error(cmd, "expects one NAME");
        if (!name_is_valid(argv[optind]))
                return cli_invalid_name(cmd, argv[optind]);
        if (!output)
                return cli_usage_error(cmd, "-o FILE is required");
        _cleanup_free_ char *abs = NULL;
        int r = absolute_output(cmd, output, &abs);
        if (r != 0)
                return r;
        json_t *params = json_pack("{s:s, s:s, s:s*, s:s*}", "name", argv[optind], "output", abs, "version", version,
                                   "description", description);
        json_t *res = NULL;
        char method[32];
        snprintf(method, sizeof(method), "%s.bundle", kind);
        r = cli_call_progress(cli, method, params, &res);
        if (r != 0)
                return r;
        if (cli->json)
                print_json_line(res);
        else
                printf("bundled %s %s %s into %s\n", kind, json_str(res, "name", "-"), json_str(res, "version", "-"),
                       json_str(res, "output", abs));
        json_decref(res);
        return EXIT_OK;
}

int image_bundle_cmd(Cli *cli, int argc, char **argv) {
        return bundle_cmd(cli, "image", image_bundle_help, argc, argv);
}

int kernel_bundle_cmd(Cli *cli, int argc, char **argv) {
        return bundle_cmd(cli, "kernel", kernel_bundle_help, argc, argv);
}

static void build_help(void) {
        printf("Usage: banger catalog build DIR [--base-url URL] [-o FILE]\n"
               "\n"
               "Write the catalog of the bundles (*.tar.zst) in DIR: for each its name,\n"
               "version, architecture, description, size, sha256, URL and, for an image, its\n"
               "kernel. URLs are the file names (relative to the catalog's own URL) or\n"
               "URL/FILE with --base-url. Written to FILE (replaced atomically) or stdout.\n"
               "Sign it with minisign before publishing (docs/catalogs.md).\n");
}

static int write_catalog(const char *output, const char *text) {
        if (!output) {
                fputs(text, stdout);
                return fflush(stdout) == 0 ? 0 : -EIO;
        }
        _cleanup_free_ char *dir = strdup(output);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        const char *base = slash ? slash + 1 : output;
        if (slash)
                *slash = '\0';
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, slash ? (dir[0] ? dir : "/") : ".");
        if (dfd < 0)
                return dfd;
        return write_file_atomic_at(dfd, base, text, strlen(text), 0644);
}

static int catalog_build_cmd(Cli *cli, int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONG_OPTIONS,
                                              { "output", required_argument, NULL, 'o' },
                                              { "base-url", required_argument, NULL, OPT_BASE_URL },
                                              {} };
        const char *output = NULL, *base_url = NULL;
        for (int o; (o = getopt_long(argc, argv, "ho:", opts, NULL)) >= 0;) {
                if (o == 'h') {
                        build_help();
                        return EXIT_OK;
                } else if (o == 'o')
                        output = optarg;
                else if (o == OPT_BASE_URL)
                        base_url = optarg;
                else if (o != CLI_OPT_JSON)
                        return cli_option_error("catalog build", argv);
        }
        if (argc - optind != 1)
                return cli_usage_error("catalog build", "expects one DIR");
        const char *dir = argv[optind];
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                fprintf(stderr, "banger catalog build: cannot open %s: %s\n", dir, strerror(errno));
                return EXIT_FAIL;
        }
        json_t *c = NULL;
        error_clear();
        int r = catalog_dl_open();
        if (r >= 0)
                r = catalog_build(dfd, base_url, &c);
        _cleanup_free_ char *text = r >= 0 ? json_dumps(c, JSON_INDENT(2)) : NULL;
        json_decref(c);
        if (r >= 0 && !text)
                r = -ENOMEM;
        if (r >= 0 && text && (text = realloc(text, strlen(text) + 2)))
                strcat(text, "\n");
        if (r >= 0)
                r = text ? write_catalog(output, text) : -ENOMEM;
        if (r < 0) {
                fprintf(stderr, "banger catalog build: %s\n",
                        error_last_message() ? error_last_message() : strerror(-r));
                return EXIT_FAIL;
        }
        if (output)
                fprintf(stderr, "wrote %s: sign it with 'minisign -S -m %s'\n", output, output);
        return EXIT_OK;
}

const CliVerb cli_catalog_verbs[] = {
        { "build", NULL, catalog_build_cmd, "write the catalog of a directory of bundles",
          "-o= --output= --base-url= --help", "file" },
        {},
};

int cmd_catalog(Cli *cli, int argc, char **argv) {
        return cli_group_run(cli, "catalog",
                             "Catalogs list the image and kernel bundles a team publishes, signed with\n"
                             "minisign (docs/catalogs.md).",
                             cli_catalog_verbs, argc, argv);
}
