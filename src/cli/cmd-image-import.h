/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli.h"

/* banger image import SOURCE --name NAME [--kernel-ref KERNEL] */
int image_import_cmd(Cli *cli, int argc, char **argv);
