#!/usr/bin/env bash
# Install banger's Debian build and test dependencies when any is missing.
# Usage: scripts/deps.sh [build|test|run|package|bench]
set -euo pipefail

build_pkgs=(build-essential meson ninja-build pkg-config libjansson-dev libsqlite3-dev
  libsystemd-dev libcurl4-openssl-dev libmnl-dev libnftables-dev libext2fs-dev
  libarchive-dev libcmocka-dev libssl-dev libsodium-dev e2fsprogs)
run_pkgs=(qemu-system-x86 iproute2 nftables openssh-client busybox-static dropbear-bin
  cpio kmod e2fsprogs dmsetup debootstrap slirp4netns)
# The Debian package (scripts/package.sh): the tools; apt-get build-dep adds
# what debian/control names.
package_pkgs=(dpkg-dev debhelper fakeroot lintian)
test_pkgs=(python3-pytest systemd clang libfuzzer-14-dev libclang-rt-14-dev xfsprogs sqlite3 jq zsh fish
  docker-registry skopeo gzip groff-base minisign zstd
  "${run_pkgs[@]}" "${package_pkgs[@]}")
# bench/ (bench/README.md): what the tests use, plus libvirt for bench/libvirt,
# which starts a private libvirtd of its own (no service is enabled).
bench_pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients "${test_pkgs[@]}")

want=("${build_pkgs[@]}")
case "${1:-build}" in
  test) want+=("${test_pkgs[@]}") ;;
  run) want+=("${run_pkgs[@]}") ;;
  package) want+=("${package_pkgs[@]}") ;;
  bench) want+=("${bench_pkgs[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "banger: missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "banger: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
