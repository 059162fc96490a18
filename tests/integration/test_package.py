"""The Debian package, built for real by scripts/package.sh (dpkg-buildpackage
in a copy of the tree, then lintian: errors fail it), then installed with apt
into a throwaway Debian root made by debootstrap, where banger must run.

Slow: the package build compiles banger again (measured here: about 2.5
minutes alone, 4 with other builds running). The debootstrap root (minbase
plus man-db, about 5 minutes) is cached in $BANGER_TEST_CACHE keyed on suite
and mirror, and so are the .debs apt fetched for banger's dependencies:
after the first run the install needs no network. Each run works on a copy
of the cached root (about 10 s; the install about 15 s). With the root
cached the module took 4 minutes. Skips, printing why, when not root or
when the mirror cannot be reached."""
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from bangerlib import DEBIAN_MIRROR, DEBIAN_SUITE, TEST_CACHE, man_page_text, mirror_reachable
from conftest import BUILD, ROOT

SUITE, MIRROR, CACHE = DEBIAN_SUITE, DEBIAN_MIRROR, TEST_CACHE
ROOT_PACKAGES = "man-db"
ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C.UTF-8",
       "DEBIAN_FRONTEND=noninteractive"]

# Everything but /usr/share/doc, exactly; (mode, is a symlink).
FILES = {
    "usr/bin/banger": 0o755,
    "usr/bin/bangerd": 0o755,
    "usr/libexec/bangerd-root": 0o755,
    "usr/libexec/banger/banger-agent": 0o755,
    "lib/systemd/system/bangerd-root.service": 0o644,
    "lib/systemd/system/bangerd@.service": 0o644,
    "lib/systemd/system/bangerd@.socket": 0o644,
    "usr/share/man/man1/banger.1.gz": 0o644,
    "usr/share/man/man8/bangerd.8.gz": 0o644,
    "usr/share/man/man8/bangerd-root.8.gz": "link",
    "usr/share/bash-completion/completions/banger": 0o644,
    "usr/share/zsh/vendor-completions/_banger": 0o644,
    "usr/share/fish/vendor_completions.d/banger.fish": 0o644,
    "usr/share/lintian/overrides/banger": 0o644,
}


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("building and installing the package needs root (apt-get build-dep, chroot)")
    out = tmp_path_factory.mktemp("deb")
    before = git_status()
    p = subprocess.run(["bash", str(ROOT / "scripts/package.sh"), str(out)], capture_output=True, text=True,
                       timeout=3600)
    assert p.returncode == 0, f"package.sh failed:\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    path = pathlib.Path(p.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent == out
    # The checkout is left as it was: nothing of the build is in it.
    assert git_status() == before
    return path


def git_status():
    return subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--ignored"], capture_output=True,
                          text=True).stdout


@pytest.fixture(scope="module")
def cached_root():
    """A minbase Debian root with man-db, made once and kept."""
    key = hashlib.sha256(f"{SUITE}\n{MIRROR}\n{ROOT_PACKAGES}\n".encode()).hexdigest()[:16]
    final = CACHE / f"package-root-{SUITE}-{key}"
    if (final / "etc/debian_version").exists():
        return final
    if not mirror_reachable():
        pytest.skip(f"Debian mirror {MIRROR} is not reachable")
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f".package-root-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        p = subprocess.run(["debootstrap", "--variant=minbase", f"--include={ROOT_PACKAGES}", SUITE, str(work),
                            MIRROR], capture_output=True, text=True, timeout=3600)
        assert p.returncode == 0, f"debootstrap failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        try:
            os.rename(work, final)
        except OSError:  # another run made it first
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


@pytest.fixture(scope="module")
def installed(deb, cached_root, tmp_path_factory):
    """A copy of the cached root with the package installed by apt (which
    fetches its dependencies; they are cached for the next run)."""
    root = tmp_path_factory.mktemp("root") / "root"
    subprocess.run(["cp", "-a", str(cached_root), str(root)], check=True)
    debs = CACHE / f"package-debs-{cached_root.name}"
    archives = root / "var/cache/apt/archives"
    for f in debs.glob("*.deb") if debs.is_dir() else []:
        shutil.copy2(f, archives)
    shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf")
    shutil.copy2(deb, root / "tmp/banger.deb")
    p = chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", "/tmp/banger.deb", timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    debs.mkdir(exist_ok=True)
    for f in archives.glob("*.deb"):
        shutil.copy2(f, debs)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def chroot(root, *argv, timeout=120):
    return subprocess.run(["chroot", str(root), *ENV, *argv], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_file_list(deb):
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    files = {}
    for line in listing.splitlines():
        perms, owner, _size, _day, _time, path = line.split(None, 5)
        path = path.split(" -> ")[0].removeprefix("./")
        assert owner == "root/root", line
        if not perms.startswith("d"):
            files[path] = "link" if perms.startswith("l") else int(
                "".join("1" if c != "-" else "0" for c in perms[1:]), 2)
    docs = {p for p in files if p.startswith("usr/share/doc/banger/")}
    assert {f: m for f, m in files.items() if f not in docs} == FILES
    # README.md stays uncompressed: the units' Documentation= names it.
    assert {"usr/share/doc/banger/README.md", "usr/share/doc/banger/copyright",
            "usr/share/doc/banger/ssh-config.md.gz"} <= docs


@pytest.mark.slow
def test_control_fields(deb):
    def field(name):
        return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                              check=True).stdout.strip()

    depends = field("Depends")
    for lib in ("libc6", "libjansson4", "libsqlite3-0", "libsystemd0", "libcurl4", "libnftables1", "libmnl0",
                "libext2fs2", "libarchive13", "libssl3"):
        assert lib in depends, depends
    assert "qemu-system-x86" in field("Recommends")
    assert field("Version") == subprocess.run(["dpkg-parsechangelog", "-l", str(ROOT / "debian/changelog"), "-S",
                                               "Version"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_runs_in_a_fresh_debian(installed):
    p = chroot(installed, "banger", "--version")
    assert p.returncode == 0 and p.stdout.startswith("banger 0.1.0 ("), p.stdout + p.stderr
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    if commit:
        assert f"({commit})" in p.stdout
    assert chroot(installed, "man", "-w", "banger").stdout.strip() == "/usr/share/man/man1/banger.1.gz"
    assert chroot(installed, "man", "-w", "bangerd").stdout.strip() == "/usr/share/man/man8/bangerd.8.gz"
    # doctor needs /proc: a private mount and PID namespace for it.
    d = subprocess.run(["unshare", "--fork", "--pid", "--mount-proc", f"--root={installed}", *ENV, "banger",
                        "doctor", "--json"], capture_output=True, text=True, timeout=120)
    assert d.returncode in (0, 1), d.stderr  # 1: a FAIL row (no /dev/net/tun in a chroot)
    rows = {r["check"]: r for r in json.loads(d.stdout)}
    assert {"config", "/dev/kvm", "qemu", "nftables"} <= rows.keys()
    # Recommends were not installed: doctor says so instead of failing to run.
    assert rows["qemu"]["status"] == "WARN" and "not found" in rows["qemu"]["details"][0]
    # The units point at what the package installed.
    unit = (installed / "lib/systemd/system/bangerd-root.service").read_text()
    assert "ExecStart=/usr/libexec/bangerd-root --system" in unit
    assert "ExecStart=/usr/bin/bangerd --system" in (installed / "lib/systemd/system/bangerd@.service").read_text()


@pytest.mark.slow
def test_completions_load(installed):
    root = installed / "usr/share"
    for shell, path in (("bash", "bash-completion/completions/banger"), ("zsh", "zsh/vendor-completions/_banger"),
                        ("fish", "fish/vendor_completions.d/banger.fish")):
        text = (root / path).read_text()
        assert "ssh-config" in text and "prune" in text, shell
        if shutil.which(shell):
            r = subprocess.run([shell, "-n", str(root / path)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_install_created_nothing_and_purge_cleans_up(installed):
    for d in ("etc/banger", "var/lib/banger", "var/cache/banger", "run/banger"):
        assert not (installed / d).exists(), d
    # As if the system daemon had run: a cache, and state with a VM's disk.
    (installed / "var/cache/banger/images").mkdir(parents=True)
    (installed / "var/cache/banger/images/blob").write_text("x")
    (installed / "var/lib/banger/vms").mkdir(parents=True)
    (installed / "var/lib/banger/vms/disk").write_text("x")
    p = chroot(installed, "dpkg", "--purge", "banger")
    assert p.returncode == 0, p.stderr
    assert not (installed / "usr/bin/banger").exists()
    assert not (installed / "var/cache/banger").exists()
    assert (installed / "var/lib/banger/vms/disk").exists() and "was kept" in p.stderr


def test_daemon_manual(build_dir):
    """docs/bangerd.8 lints clean and names every option bangerd and
    bangerd-root print in --help."""
    text = man_page_text(ROOT / "docs/bangerd.8")
    for exe in (BUILD / "src/daemon/bangerd", BUILD / "src/helper/bangerd-root"):
        help_text = subprocess.run([str(exe), "--help"], capture_output=True, text=True).stdout
        for opt in re.findall(r"^  (--[a-z-]+)", help_text, re.M):
            assert opt in text, f"{exe.name} {opt} is not in docs/bangerd.8"
