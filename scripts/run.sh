#!/usr/bin/env bash
# The README's main command: install what is missing (Debian 12), build
# banger, start the daemon and show what this host can do.
# The VM lifecycle is not wired into the CLI yet; once it is, this command
# boots a VM and runs `uname -a` in it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh run
if [ ! -f build/build.ninja ]; then
  meson setup build >/dev/null
fi
ninja -C build >/dev/null

banger=build/src/cli/banger
"$banger" daemon start
"$banger" doctor || true
"$banger" daemon status
