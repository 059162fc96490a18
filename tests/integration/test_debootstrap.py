"""The default Debian image, built for real with debootstrap from the mirror.

Slow (a base system and a kernel package are downloaded, about 2 minutes),
so the result is cached in $BANGER_TEST_CACHE keyed on the suite, the package
list and the sources that shape the image; later runs only re-check it.
Skips, printing why, when the mirror cannot be reached or we are not root.
"""
import gzip
import hashlib
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess

import pytest

from bangerlib import DEBIAN_MIRROR, DEBIAN_SUITE, TEST_CACHE, mirror_reachable
from conftest import BUILD, ROOT

SUITE, MIRROR, CACHE = DEBIAN_SUITE, DEBIAN_MIRROR, TEST_CACHE
DRIVER = BUILD / "tests/unit/test-debootstrap-image"
AGENT = BUILD / "src/agent/banger-agent"
# What the image is made of: a change to any of these rebuilds it.
SOURCES = ["src/shared/image/debootstrap-image.c", "src/shared/image/debootstrap-image.h",
           "src/shared/image/debootstrap-progress.c", "src/shared/guestfs/initramfs.c",
           "src/shared/image/debian-package.c", "src/shared/image/kernel-store.c", "src/shared/image/kernel-image.c"]


def cache_key():
    h = hashlib.sha256()
    h.update(f"{SUITE}\n{MIRROR}\n".encode())
    for s in SOURCES:
        h.update((ROOT / s).read_bytes())
    h.update(AGENT.read_bytes())
    return h.hexdigest()[:16]


def parse_image_line(out):
    for line in out.splitlines():
        if line.startswith("IMAGE "):
            return dict(kv.split("=", 1) for kv in line.split()[1:])
    raise AssertionError(f"no IMAGE line in:\n{out}")


@pytest.fixture(scope="module")
def built_image():
    if os.geteuid() != 0:
        pytest.skip("building a Debian image needs root")
    for p in (DRIVER, AGENT):
        if not p.exists():
            pytest.fail(f"{p} is not built; run scripts/test.sh")
    final = CACHE / f"debootstrap-{SUITE}-{cache_key()}"
    if not (final / "image.txt").exists():
        if not mirror_reachable():
            pytest.skip(f"Debian mirror {MIRROR} is not reachable")
        CACHE.mkdir(parents=True, exist_ok=True)
        work = CACHE / f".debootstrap-build-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        (work / "state").mkdir(parents=True, mode=0o700)
        try:
            env = dict(os.environ, BANGER_SLOW_TESTS="1", BANGER_DEBOOTSTRAP_STATE=str(work / "state"),
                       BANGER_AGENT=str(AGENT), BANGER_TEST_CACHE=str(CACHE))
            p = subprocess.run([str(DRIVER)], env=env, capture_output=True, text=True, timeout=3600)
            assert p.returncode == 0, f"image build failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
            # Progress is visible, stage by stage.
            for stage in ("debootstrap", "kernel", "initramfs", "rootfs", "register"):
                assert f"progress {stage}" in p.stdout, stage
            # Nothing of the build is left beside the finished image.
            assert sorted(os.listdir(work / "state/images")) == ["debian-bookworm"]
            assert sorted(os.listdir(work / "state/kernels")) == ["debian-bookworm-kernel"]
            (work / "image.txt").write_text(p.stdout)
            os.rename(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    # Paths in the database point into the build directory it was made in.
    out = (final / "image.txt").read_text()
    info = parse_image_line(out)
    built_state = pathlib.Path(info["rootfs"]).parents[2]
    for k in ("rootfs", "kernel", "vmlinux", "initrd", "modules"):
        info[k] = str(final / "state" / pathlib.Path(info[k]).relative_to(built_state))
    info["state"] = str(final / "state")
    return info


def debugfs(image, cmd):
    p = subprocess.run(["debugfs", "-R", cmd, image], capture_output=True, text=True, timeout=60)
    return p.stdout + p.stderr


def guest_stat(image, path):
    out = debugfs(image, f"stat {path}")
    assert "File not found" not in out, f"{path} missing in the image"
    return out


@pytest.mark.slow
def test_debootstrap_rootfs_contents(built_image):
    img = built_image["rootfs"]
    guest_stat(img, "/usr/sbin/sshd")
    agent = guest_stat(img, "/usr/local/bin/banger-agent")
    assert "Mode:  0755" in agent
    unit = debugfs(img, "cat /etc/systemd/system/banger-agent.service")
    assert "ExecStart=/usr/local/bin/banger-agent" in unit and "Restart=always" in unit
    link = guest_stat(img, "/etc/systemd/system/multi-user.target.wants/banger-agent.service")
    assert "Type: symlink" in link
    assert "/etc/systemd/system/banger-agent.service" in link
    assert "Type: symlink" in guest_stat(img, "/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service")
    fstab = debugfs(img, "cat /etc/fstab")
    assert "/dev/vda / ext4" in fstab and "/dev/vdb /root ext4" in fstab and "nofail" in fstab
    guest_stat(img, "/etc/banger")
    # Host keys are generated per VM at first boot, not baked in.
    assert "ssh_host_" not in debugfs(img, "ls /etc/ssh")


@pytest.mark.slow
def test_debootstrap_kernel_and_modules(built_image):
    img, ver = built_image["rootfs"], built_image["version"]
    # /lib is a symlink to usr/lib on bookworm; debugfs does not follow it.
    mods = f"/usr/lib/modules/{ver}"
    guest_stat(img, f"{mods}/kernel/fs/ext4/ext4.ko")
    guest_stat(img, f"{mods}/kernel/drivers/net/virtio_net.ko")
    assert "virtio_net" in debugfs(img, f"cat {mods}/modules.dep")
    with open(built_image["vmlinux"], "rb") as f:
        assert f.read(4) == b"\x7fELF"
    assert os.path.getsize(built_image["initrd"]) > 1 << 20
    with open(built_image["initrd"], "rb") as f:
        cpio = gzip.decompress(f.read())
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=cpio, capture_output=True,
                             check=True).stdout.decode().split()
    for f in ("init", "bin/busybox", "dev/console", "lib/modules/ext4.ko", "lib/modules/virtio_blk.ko"):
        assert f in listing, f
    db = sqlite3.connect(f"file:{built_image['state']}/banger.db?mode=ro", uri=True)
    rows = db.execute("SELECT i.name, k.name, k.version FROM images i JOIN kernels k ON i.kernel_id = k.id").fetchall()
    assert rows == [("debian-bookworm", "debian-bookworm-kernel", ver)]


@pytest.mark.slow
def test_debootstrap_progress_is_one_stage_with_counts_and_a_log(built_image):
    """debootstrap prints a line per package and step (hundreds): the user
    sees one stage with counts; the full text is kept with the image."""
    out = (pathlib.Path(built_image["state"]).parent / "image.txt").read_text()
    lines = [l[len("progress debootstrap "):] for l in out.splitlines() if l.startswith("progress debootstrap ")]
    assert lines and "its full output goes to" in lines[0] and lines[0].endswith("/debian-bookworm/debootstrap.log")
    per_package = [l for l in lines if re.fullmatch(r"I: (Retrieving|Validating) [a-z0-9][^ ]* [^ ]+", l)
                   or re.fullmatch(r"I: (Extracting|Unpacking|Configuring) [a-z0-9][^ ]*\.\.\.", l)]
    assert per_package == [], per_package[:5]
    assert any(re.fullmatch(r"retrieving packages: \d+", l) for l in lines), lines[:20]
    log = pathlib.Path(built_image["state"]) / "images/debian-bookworm/debootstrap.log"
    text = log.read_text()
    assert re.search(r"^I: Retrieving [a-z0-9]", text, re.M) and "I: Base system installed successfully." in text
