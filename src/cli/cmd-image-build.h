/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli.h"

/* banger image build [NAME] [--debootstrap SUITE] [--mirror URL] */
int image_build_cmd(Cli *cli, int argc, char **argv);
