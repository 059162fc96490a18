#!/usr/bin/env bash
# The README's main command, for a Debian 12 host, as root: install what is
# missing, build banger, then boot a fresh VM of the default Debian image and
# print the guest's `uname -a` (`banger vm run --rm -- uname -a`).
#
# The first run also builds that image (debootstrap from the Debian mirror, a
# few minutes); it is kept with the rest of this demo's banger state under
# $BANGER_RUN_CACHE (default /var/cache/banger-run), so later runs only boot.
#
# The host's own network is left alone: bangerd, its bridge, TAP and NAT and
# the VM live in a network namespace made here, whose only way out is
# slirp4netns (user-mode networking: the host makes ordinary outgoing
# connections on its behalf, as any download would), which the image build
# needs for the mirror. Addresses are from 198.18.0.0/15 (benchmarking
# range). The namespace and everything in it go away on exit, Ctrl-C too.
#
# BANGER_BUILD_DIR picks the build directory (default build); the build's
# output goes to $BANGER_RUN_CACHE/build.log, which it names.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "run.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  say "run me as root: I create a network namespace, a bridge and TAP devices"
  exit 1
fi
scripts/deps.sh run

cache=${BANGER_RUN_CACHE:-/var/cache/banger-run}
mkdir -p -m 0700 "$cache"

build=${BANGER_BUILD_DIR:-build}
log=$cache/build.log
if [ -f "$build/build.ninja" ]; then
  say "building banger in $build (seconds when little changed; output in $log)"
else
  say "building banger in $build (about a minute on 2 cores; output in $log)"
fi
if ! { { [ -f "$build/build.ninja" ] || meson setup "$build"; } && ninja -C "$build"; } >"$log" 2>&1; then
  grep -E -B2 -A12 'error|FAILED' "$log" | head -100 >&2
  say "building banger failed; the whole output is in $log"
  exit 1
fi
say "banger is built"
banger=$(realpath "$build/src/cli/banger")

# One run at a time per cache: two daemons must not share a state directory.
exec 9>"$cache/lock"
if ! flock -n 9; then
  say "another scripts/run.sh uses $cache; waiting for it"
  flock 9
fi

ns=banger-run-$$
rt=$(mktemp -d /tmp/banger-run-XXXXXX) # runtime dir: socket paths must stay short
slirp_pid=
for v in $(compgen -e); do
  case $v in XDG_* | BANGER_*) unset "$v" ;; esac
done
export XDG_CONFIG_HOME=$cache/config XDG_STATE_HOME=$cache/state XDG_CACHE_HOME=$cache/cache XDG_RUNTIME_DIR=$rt

in_ns() { ip netns exec "$ns" "$@"; }

cleanup() {
  set +e
  if [ -e "/run/netns/$ns" ]; then
    in_ns "$banger" daemon stop >/dev/null 2>&1
    # VMs are left running by a daemon that stops; this demo leaves nothing.
    for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null; done
  fi
  if [ -n "$slirp_pid" ]; then
    kill "$slirp_pid" 2>/dev/null
    wait "$slirp_pid" 2>/dev/null
  fi
  ip netns del "$ns" 2>/dev/null
  rm -rf "/etc/netns/$ns" "$rt"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$ns"
ip -n "$ns" link set lo up
# slirp4netns says it is ready (the TAP is up, addressed and routed) on a fd.
mkfifo "$rt/slirp-ready"
slirp4netns --configure --mtu=65520 --disable-host-loopback --cidr=198.18.0.0/24 --ready-fd=3 \
  --netns-type=path "/run/netns/$ns" tap0 3>"$rt/slirp-ready" >"$rt/slirp.log" 2>&1 &
slirp_pid=$!
ready=
read -r -t 20 -n 1 ready <"$rt/slirp-ready" || true # "1", no newline
if [ "$ready" != 1 ]; then
  say "slirp4netns did not come up: $(cat "$rt/slirp.log")"
  exit 1
fi
# ip netns exec shows this file as /etc/resolv.conf: slirp's DNS forwarder.
mkdir -p "/etc/netns/$ns"
echo "nameserver 198.18.0.3" >"/etc/netns/$ns/resolv.conf"

kvm=$(in_ns "$banger" doctor 2>/dev/null | awk '$2 == "/dev/kvm" { s = $1; getline; sub(/^ +/, ""); print s " " $0; exit }') || true
if [ "${kvm%% *}" != PASS ]; then
  say "no usable KVM (${kvm#* }): QEMU emulates the CPU (TCG), so a boot takes tens of seconds, not one"
fi

image=$(in_ns "$banger" vm create --help | sed -n 's/.*--image IMAGE .*default: \([a-z0-9-]*\).*/\1/p')
if ! in_ns "$banger" image show "${image:-debian-bookworm}" >/dev/null 2>&1; then
  say "first run: building the default image ${image:-debian-bookworm} (debootstrap, a few minutes; kept in $cache;"
  say "debootstrap's own output goes to the log its first progress line names)"
fi
say "booting a VM and running uname -a in it"
in_ns "$banger" vm run --rm -- uname -a
