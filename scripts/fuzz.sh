#!/usr/bin/env bash
# Run banger's libFuzzer targets for a while each and print what they did.
#
#   scripts/fuzz.sh [--update-corpus] [SECONDS] [TARGET...]
#
# Builds the clang fuzz build (build-fuzz, or $BANGER_FUZZ_BUILD_DIR) if
# needed, then runs each TARGET (default: every directory under
# tests/fuzz/corpus/) one after the other for SECONDS (default 600) on a copy
# of its checked-in corpus in $FUZZ_WORK (default build-fuzz/fuzz-work). New
# inputs stay in that copy; --update-corpus merges the ones that add coverage
# (libFuzzer -merge=1) into tests/fuzz/corpus/TARGET afterwards.
#
# Prints per target: seconds run, execs, exec/s, cov and ft (from libFuzzer's
# final status line), the files in the corpus after the run and how many of
# them are new, crashes (with the artifact's path); and the date and load
# average before and after. A target stops at its first crash, leak or
# timeout; the script then goes on to the next and exits 1 at the end. Run it
# under `nice -n 19` on a shared host.
set -euo pipefail
cd "$(dirname "$0")/.."

update=0
if [ "${1:-}" = "--update-corpus" ]; then
  update=1
  shift
fi
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,19s/^# \{0,1\}//p' "$0"
  exit 0
fi
seconds=600
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi

build=${BANGER_FUZZ_BUILD_DIR:-$PWD/build-fuzz}
work=${FUZZ_WORK:-$build/fuzz-work}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dfuzz=true -Dtests=false -Dbuildtype=debug -Db_lundef=false >/dev/null
fi
ninja -C "$build" >/dev/null

if [ $# -eq 0 ]; then
  set -- $(cd tests/fuzz/corpus && ls -d fuzz-*)
fi
for t in "$@"; do
  if [ ! -x "$build/tests/fuzz/$t" ] || [ ! -d "tests/fuzz/corpus/$t" ]; then
    echo "fuzz.sh: unknown target $t (no $build/tests/fuzz/$t or tests/fuzz/corpus/$t)" >&2
    exit 2
  fi
done

stat_of() { # log, name: a "stat::name: N" line of -print_final_stats
  sed -n "s/^stat::$2: *\([0-9]*\).*/\1/p" "$1" | tail -1
}

host_state() {
  echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
}

header() {
  printf '%-20s %7s %12s %9s %6s %7s %6s %5s %s\n' target seconds execs exec/s cov ft corpus new crashes
}

summary=()
failed=0
host_state
header
for t in "$@"; do
  dir=$work/$t
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp -p "tests/fuzz/corpus/$t/." "$dir/corpus/" -R
  before=$(ls "$dir/corpus" | wc -l)
  start=$(date +%s)
  rc=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  ran=$(($(date +%s) - start))
  execs=$(stat_of "$dir/log" number_of_executed_units)
  speed=$(stat_of "$dir/log" average_exec_per_sec)
  last=$(grep -E '^#[0-9]+.*cov: ' "$dir/log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  after=$(ls "$dir/corpus" | wc -l)
  new=$((after - before))
  crashes=$(ls "$dir/artifacts" | wc -l)
  note=$crashes
  if [ "$crashes" -gt 0 ] || [ "$rc" -ne 0 ]; then
    failed=1
    note="$crashes (exit $rc; $(ls -d "$dir"/artifacts/* 2>/dev/null | tr '\n' ' ')log $dir/log)"
  fi
  line=$(printf '%-20s %7s %12s %9s %6s %7s %6s %5s %s' "$t" "$ran" "${execs:-?}" "${speed:-?}" \
    "${cov:-?}" "${ft:-?}" "$after" "$new" "$note")
  echo "$line"
  summary+=("$line")
  if [ "$update" = 1 ] && [ "$crashes" -eq 0 ]; then
    "$build/tests/fuzz/$t" -merge=1 "tests/fuzz/corpus/$t" "$dir/corpus" >"$dir/merge.log" 2>&1
  fi
done

if [ $# -gt 1 ]; then
  echo
  header
  printf '%s\n' "${summary[@]}"
fi
host_state
exit $failed
