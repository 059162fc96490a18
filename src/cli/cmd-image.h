/* SPDX-License-Identifier: MIT */
#pragma once

/* Pieces shared by the "banger image" verbs (cmd-image*.c). */

#include "cli.h"

/* banger image build [NAME] [--debootstrap SUITE] [--mirror URL] */
int image_build_cmd(Cli *cli, int argc, char **argv);
/* banger image import SOURCE --name NAME [--kernel-ref KERNEL] */
int image_import_cmd(Cli *cli, int argc, char **argv);

/* The result of a verb that made an image: as JSON, or "<done> image NAME
 * (SIZE, rootfs PATH)". */
void image_print_made(Cli *cli, const char *done, json_t *img, const char *name);
