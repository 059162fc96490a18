#!/usr/bin/env bash
# Run every banger test: unit tests (plain and ASan+UBSan builds), fuzz corpus
# replays, and the integration tests that drive the real binaries. Installs
# what it needs on Debian 12. Ends with pytest's "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test

build() { # dir, extra meson args...; quiet unless something fails
  local dir=$1; shift
  local log
  log=$(mktemp)
  if { [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"; } >"$log" 2>&1 && ninja -C "$dir" >>"$log" 2>&1; then
    rm -f "$log"
  else
    grep -E -B2 -A12 'error|FAILED' "$log" | head -150 >&2
    rm -f "$log"
    echo "build of $dir failed" >&2
    return 1
  fi
}

echo "== building" >&2
build build
build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
CC=clang build build-fuzz -Dfuzz=true -Dtests=false -Dbuildtype=debug -Db_lundef=false

export BANGER_BUILD_DIR=$PWD/build
export BANGER_ASAN_BUILD_DIR=$PWD/build-asan
export BANGER_FUZZ_BUILD_DIR=$PWD/build-fuzz
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Slow tests (real debootstrap against the mirror, Debian guest boots) are
# part of the test command; their results are cached between runs.
export BANGER_SLOW_TESTS=${BANGER_SLOW_TESTS:-1}

rc=0
# --durations: the slowest tests are named, to keep the run under 30 minutes.
/usr/bin/python3 -m pytest -p no:cacheprovider -rs --durations=30 "$@" tests || rc=$?
# pytest exits 5 when nothing was collected: that is a failure here too.
exit $rc
