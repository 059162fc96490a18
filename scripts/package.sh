#!/usr/bin/env bash
# Build banger's Debian package (dpkg-buildpackage -us -uc -b) from a copy of
# the source tree, so the checkout gains no debian/ build files, then run
# lintian on it. The copy is this checkout's files as they are now: tracked
# and untracked-but-not-ignored, uncommitted changes included.
#
# Usage: scripts/package.sh [OUTDIR]   (default: build-deb/ in the checkout,
#        ignored by git). Prints the .deb's path as its last line. As root it
#        installs the build dependencies debian/control names (apt-get
#        build-dep) and the packaging tools; otherwise they must be there.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=${1:-$src/build-deb}

scripts/deps.sh package

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
meson_version=$(sed -n "s/^ *version : '\([^']*\)'.*/\1/p" meson.build | head -n1)
if [ "$version" != "$meson_version" ]; then
  echo "package: debian/changelog says $version, meson.build says $meson_version: make them agree" >&2
  exit 1
fi

work=$(mktemp -d /tmp/banger-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree=$work/banger-$version
mkdir "$tree"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Deleted-but-tracked files are skipped (--ignore-failed-read), as in the
  # working tree. meson reads the commit from .banger-commit without .git.
  git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$tree"
  git rev-parse --short=12 HEAD >"$tree/.banger-commit"
else # an unpacked source tarball
  tar --exclude='./build*' --exclude='./debian/banger' --exclude='./obj-*' -cf - . | tar -xf - -C "$tree"
fi

if [ "$(id -u)" -eq 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q --no-install-recommends "$tree" >/dev/null
fi

log=$work/build.log
echo "package: building banger $version in $tree" >&2
if ! (cd "$tree" && dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  echo "package: dpkg-buildpackage failed (log above)" >&2
  exit 1
fi

mkdir -p "$out"
arch=$(dpkg-architecture -q DEB_HOST_ARCH)
base=banger_${version}_${arch}
# The .changes lists the -dbgsym package too: copy everything it names.
cp "$work"/*.deb "$work/$base.buildinfo" "$work/$base.changes" "$out/"
# lintian: an error fails the build; warnings and notes are printed (there
# are none at warning level; the one deliberate exception is overridden in
# debian/banger.lintian-overrides).
if ! lintian --fail-on error "$out/$base.changes" >"$work/lintian.txt" 2>&1; then
  cat "$work/lintian.txt" >&2
  echo "package: lintian reports errors (details: lintian --info $out/$base.changes)" >&2
  exit 1
fi
cat "$work/lintian.txt" >&2
echo "$out/$base.deb"
