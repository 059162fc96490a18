#!/usr/bin/env bash
# Build (or reuse from the cache) the small bootable guest the test suite
# boots with QEMU: Debian 12's kernel, a busybox initramfs that loads the
# root-disk, virtio-net, virtio-console and vsock modules, and a root ext4
# with busybox-static, dropbear, the modules for virtio-net/console/vsock
# and, optionally, banger-agent.
#
# Usage: build-test-image.sh [--agent PATH]      (or env BANGER_AGENT=PATH)
# Cache: $BANGER_TEST_CACHE (default /var/cache/banger-test), one directory
# per key (kernel package version + hash of tests/images/* + agent hash),
# built in a temporary directory and renamed into place.
# Prints the image directory on stdout; it holds vmlinuz, initrd.img,
# rootfs.ext4, id_ed25519 (the root login key) and manifest (KEY=value).
# Exit 77 when the kernel package cannot be downloaded (no mirror).
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${BANGER_TEST_CACHE:-/var/cache/banger-test}
agent=${BANGER_AGENT:-}
rootfs_mib=128

while [ $# -gt 0 ]; do
  case "$1" in
    --agent) agent=$2; shift 2 ;;
    *) echo "usage: $0 [--agent PATH]" >&2; exit 2 ;;
  esac
done

die() { echo "build-test-image: $*" >&2; exit 1; }
skip() { echo "build-test-image: $*" >&2; exit 77; }

for tool in apt-get apt-cache dpkg depmod cpio gzip mkfs.ext4 ssh-keygen ldd sha256sum flock; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/deps.sh test)"
done
busybox=/bin/busybox
# grep reads it all: with -q it could exit first and pipefail would see busybox die of SIGPIPE.
[ -x "$busybox" ] && "$busybox" --list | grep -x switch_root >/dev/null || die "busybox-static is not installed"
dropbear=/usr/sbin/dropbear
[ -x "$dropbear" ] || die "dropbear-bin is not installed"
dropbearkey=/usr/bin/dropbearkey
[ -x "$dropbearkey" ] || die "dropbear-bin is not installed (no dropbearkey)"
if [ -n "$agent" ] && [ ! -x "$agent" ]; then
  die "agent $agent is not an executable file"
fi

# linux-image-amd64 is a metapackage; the kernel itself is its dependency.
resolve_kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}
# apt-cache fails while another apt process rewrites the lists: retry briefly.
for _ in 1 2 3 4 5; do
  kpkg=$(resolve_kernel_pkg || true)
  [ -n "$kpkg" ] && break
  sleep 2
done
if [ -z "$kpkg" ] && [ "$(id -u)" -eq 0 ]; then
  apt-get update -q >/dev/null 2>&1 || true
  kpkg=$(resolve_kernel_pkg || true)
fi
[ -n "$kpkg" ] || skip "cannot resolve linux-image-amd64 (no apt lists; run apt-get update)"
kver=$(apt-cache show --no-all-versions "$kpkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
[ -n "$kver" ] || skip "no version known for $kpkg"

agent_hash=none
[ -n "$agent" ] && agent_hash=$(sha256sum <"$agent" | cut -c1-16)
tools_hash=$(cat "$here"/build-test-image.sh "$here"/initramfs-init "$here"/rcS "$here"/network \
  "$here"/dropbear "$here"/power-button "$here"/start-agent | sha256sum | cut -c1-12)
tools_ver=$(dpkg-query -W -f='${Version}' busybox-static dropbear-bin)
key="$kpkg-$kver-$tools_hash-$(echo "$tools_ver" | sha256sum | cut -c1-8)-$agent_hash"
key=${key//[^A-Za-z0-9._-]/_}
final="$cache/$key"

if [ -f "$final/manifest" ]; then
  echo "$final"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$final/manifest" ]; then # another run built it while we waited
  echo "$final"
  exit 0
fi

work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-test-image: building $key" >&2

# apt's download sandbox user must be able to write the target directory.
chmod 755 "$work"
(cd "$work" && apt-get download -q "$kpkg=$kver" >/dev/null 2>"$work/apt.err") ||
  skip "cannot download $kpkg=$kver: $(tail -n1 "$work/apt.err")"
dpkg -x "$work"/"$kpkg"_*.deb "$work/kernel"
kdir=$(ls -d "$work"/kernel/lib/modules/*)
krel=${kdir##*/}
moddir=$kdir
# The package ships no modules.dep: its postinst runs depmod.
depmod -b "$work/kernel" "$krel"

# Print module paths (relative to the module dir) for the given module names,
# dependencies first, each once. modules.dep lists direct dependencies.
declare -A seen=()
modpath() {
  sed -n "s#^\([^:]*/$1\.ko\):.*#\1#p" "$moddir/modules.dep" | head -n1
}
resolve_mod() {
  local path dep
  path=$(modpath "$1")
  if [ -z "$path" ]; then
    grep -q "/$1\.ko\$" "$moddir/modules.builtin" && return 0
    echo "MISSING:$1"
    return 0
  fi
  [ -z "${seen[$path]:-}" ] || return 0
  seen[$path]=1
  for dep in $(sed -n "s#^$path: *##p" "$moddir/modules.dep"); do
    dep=${dep##*/}
    resolve_mod "${dep%.ko}"
  done
  echo "$path"
}
# crc32c_generic is ext4's soft dependency (crypto API), not in modules.dep.
rootdisk_mods=(crc32c_generic virtio_mmio virtio_blk ext4)
# The kernel is shared with root filesystems that carry no modules at all
# (imported OCI images): the initramfs also loads what the agent and the
# network need. The test rootfs keeps its own copies so it still boots with
# an initramfs that mounts the root disk only (its insmod of an already
# loaded module fails quietly).
guest_mods=(virtio_net virtio_console vmw_vsock_virtio_transport)
rootfs_mods=("${guest_mods[@]}" evdev button)
# Each $(...) starts from an empty seen[]: the lists are independent.
initrd_list=$(for m in "${rootdisk_mods[@]}" "${guest_mods[@]}"; do resolve_mod "$m"; done)
# The initramfs already loaded the root-disk modules: resolve them silently first.
rootfs_list=$(
  for m in "${rootdisk_mods[@]}"; do resolve_mod "$m" >/dev/null; done
  for m in "${rootfs_mods[@]}"; do resolve_mod "$m"; done
)
case "$initrd_list $rootfs_list" in
  *MISSING:*) die "kernel $krel lacks modules: $(echo "$initrd_list $rootfs_list" | grep -o 'MISSING:[^ ]*')" ;;
esac

# Install busybox with one symlink per applet at the path it expects.
install_busybox() { # root
  local root=$1 applet
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin}
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list-full); do
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
}
install_mods() { # root, list
  local root=$1 list=$2 m
  mkdir -p "$root/lib/modules"
  for m in $list; do
    mkdir -p "$root/lib/modules/$(dirname "$m")"
    cp "$moddir/$m" "$root/lib/modules/$m"
    echo "$m" >>"$root/etc/modules-load"
  done
}

# (a) initramfs: busybox, root-disk, network, console and vsock modules, /init.
ird="$work/initramfs"
mkdir -p "$ird"/{dev,proc,sys,etc,newroot}
install_busybox "$ird"
install_mods "$ird" "$initrd_list"
install -m 755 "$here/initramfs-init" "$ird/init"
if [ "$(id -u)" -eq 0 ]; then
  mknod -m 600 "$ird/dev/console" c 5 1
fi
(cd "$ird" && find . -print0 | sort -z | cpio --null -o -H newc --owner 0:0 --quiet) | gzip -9n >"$work/initrd.img"

# (b) root ext4.
rfs="$work/rootfs"
mkdir -p "$rfs"/{dev,proc,sys,run,tmp,etc/init.d,etc/banger,root/.ssh,var/log,usr/sbin,lib64}
chmod 1777 "$rfs/tmp"
chmod 700 "$rfs/root" "$rfs/root/.ssh"
install_busybox "$rfs"
install_mods "$rfs" "$rootfs_list"
cp "$dropbear" "$rfs/usr/sbin/dropbear"
# dropbearkey: what a clone makes new host keys with (vm create --new-host-keys).
mkdir -p "$rfs/usr/bin"
cp "$dropbearkey" "$rfs/usr/bin/dropbearkey"
# The libraries the dynamic loader needs, at the paths ldd reports.
for lib in $({ ldd "$dropbear"; ldd "$dropbearkey"; } | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$rfs$(dirname "$lib")"
  cp -L "$lib" "$rfs$lib"
done
for f in rcS network dropbear power-button start-agent; do
  install -m 755 "$here/$f" "$rfs/etc/init.d/$f"
done
{
  echo "::sysinit:/etc/init.d/rcS"
  if [ -n "$agent" ]; then
    echo "::respawn:/etc/init.d/start-agent"
  fi
  echo "::shutdown:/bin/sync"
  echo "::shutdown:/bin/umount -a -r"
  echo "::shutdown:/bin/mount -o remount,ro /"
} >"$rfs/etc/inittab"
if [ -n "$agent" ]; then
  install -m 755 "$agent" "$rfs/usr/sbin/banger-agent"
fi
printf 'root:x:0:0:root:/root:/bin/sh\nsshd:x:74:74::/var/empty:/bin/false\n' >"$rfs/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' >"$rfs/etc/shadow"
chmod 600 "$rfs/etc/shadow"
printf 'root:x:0:\n' >"$rfs/etc/group"
printf '/bin/sh\n' >"$rfs/etc/shells"
printf 'banger\n' >"$rfs/etc/hostname"
ssh-keygen -q -t ed25519 -N '' -C banger-test -f "$work/id_ed25519"
install -m 600 "$work/id_ed25519.pub" "$rfs/root/.ssh/authorized_keys"
truncate -s "${rootfs_mib}M" "$work/rootfs.ext4"
mkfs.ext4 -q -F -L banger-root -E root_owner=0:0 -d "$rfs" "$work/rootfs.ext4"

cp "$work"/kernel/boot/vmlinuz-* "$work/vmlinuz"
{
  echo "KERNEL_PACKAGE=$kpkg"
  echo "KERNEL_VERSION=$kver"
  echo "KERNEL_RELEASE=$krel"
  echo "AGENT=$([ -n "$agent" ] && echo yes || echo no)"
  echo "READY_LINE=banger-guest: ready"
  echo "CMDLINE=console=ttyS0 root=/dev/vda rw panic=-1"
} >"$work/manifest"

out="$work/out"
mkdir "$out"
mv "$work"/{vmlinuz,initrd.img,rootfs.ext4,id_ed25519,id_ed25519.pub,manifest} "$out/"
chmod 755 "$out"
mv -T "$out" "$final"
echo "$final"
