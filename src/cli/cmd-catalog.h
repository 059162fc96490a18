/* SPDX-License-Identifier: MIT */
#pragma once

/* Bundles and catalogs: image bundle, kernel bundle, catalog build
 * (cmd-catalog.c); image pull, kernel pull, list --available
 * (cmd-catalog-pull.c). */

#include "cli.h"

int image_bundle_cmd(Cli *cli, int argc, char **argv);
int kernel_bundle_cmd(Cli *cli, int argc, char **argv);
int image_pull_cmd(Cli *cli, int argc, char **argv);
int kernel_pull_cmd(Cli *cli, int argc, char **argv);

/* "<kind> list" was given --available. */
bool catalog_list_wants_available(int argc, char **argv);
/* banger image|kernel list --available [--json] */
int catalog_list_available(Cli *cli, const char *kind, int argc, char **argv);
