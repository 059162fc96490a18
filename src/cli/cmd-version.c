/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "banger-build.h"
#include "cli.h"

int cmd_version(Cli *cli, int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
                if (argv[i][0] == '-' && argv[i][1] == 'h') {
                        printf("Usage: banger version [--json]\n\nPrint banger's version and build commit.\n");
                        return EXIT_OK;
                }
                if (argv[i][0] == '-' && argv[i][1] == '-' && argv[i][2] == 'j')
                        cli->json = true;
                else if (argv[i][0] == '-' && argv[i][1] == '-' && argv[i][2] == 'h') {
                        printf("Usage: banger version [--json]\n\nPrint banger's version and build commit.\n");
                        return EXIT_OK;
                } else {
                        fprintf(stderr, "banger version: unexpected argument '%s'\n", argv[i]);
                        return EXIT_USAGE;
                }
        }
        if (cli->json) {
                json_t *j = json_pack("{s:s, s:s}", "version", BANGER_VERSION, "commit", BANGER_COMMIT);
                cli_print_json(j);
                json_decref(j);
        } else
                printf("banger %s (%s)\n", BANGER_VERSION, BANGER_COMMIT);
        return EXIT_OK;
}
