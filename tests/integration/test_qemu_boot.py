"""Real QEMU boots through the real driver (vmm_driver_qemu).

Builds (or reuses) the test image with tests/images/build-test-image.sh, then
runs the C test program test-qemu-boot from the plain and, when present, the
ASan+UBSan build: boot paused, cont, ready line in the VM log, pause/resume,
re-attach, system_powerdown within its deadline, kill, launch errors carrying
QEMU's own message. One run happens inside a network namespace the test
creates (bridge + TAP), where the guest is reached over SSH.
"""
import os
import pathlib
import shutil
import subprocess
import tempfile
import uuid

import pytest

from conftest import BUILD, ROOT, skip_code

pytestmark = [pytest.mark.slow, pytest.mark.root]

BUILDER = ROOT / "tests/images/build-test-image.sh"


def qemu_processes(marker):
    """Pids of live processes whose command line mentions marker."""
    found = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd and b"qemu-system" in cmd:
            found.append(int(d.name))
    return found


@pytest.fixture(scope="module")
def image():
    if os.geteuid() != 0:
        pytest.skip("the test image builder and TAP devices need root")
    p = subprocess.run([str(BUILDER)], capture_output=True, text=True, timeout=900)
    skip_code(p.returncode, p.stderr)
    assert p.returncode == 0, p.stderr[-4000:]
    d = pathlib.Path(p.stdout.strip().splitlines()[-1])
    for f in ("vmlinuz", "initrd.img", "rootfs.ext4", "id_ed25519", "manifest"):
        assert (d / f).is_file(), f"{f} missing from {d}"
    return d


def boot_binaries():
    out = []
    for var, default in (("BANGER_BUILD_DIR", BUILD), ("BANGER_ASAN_BUILD_DIR", ROOT / "build-asan")):
        exe = pathlib.Path(os.environ.get(var, str(default))) / "tests/unit/test-qemu-boot"
        if exe.exists():
            out.append(exe)
    return out


def run_boot_test(exe, env, prefix=()):
    # A directory of our own, so concurrent runs never confuse the check below.
    tmp = tempfile.mkdtemp(prefix="bqp-", dir="/tmp")
    try:
        env = dict(env, BANGER_TEST_TMPDIR=tmp)
        p = subprocess.run([*prefix, str(exe)], env=env, capture_output=True, text=True, timeout=600)
        out = p.stdout + p.stderr
        skip_code(p.returncode, out)
        assert p.returncode == 0, out[-6000:]
        # Nothing the test started may outlive it.
        assert qemu_processes(tmp) == []
        assert os.listdir(tmp) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def test_image_is_cached(image):
    """A second build is a cache hit: same directory, nothing rebuilt."""
    p = subprocess.run([str(BUILDER)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert pathlib.Path(p.stdout.strip().splitlines()[-1]) == image
    assert "building" not in p.stderr


def test_image_contents(image):
    """The root ext4 holds what the guest needs, checked with debugfs (no mount)."""
    def debugfs(cmd):
        p = subprocess.run(["debugfs", "-R", cmd, str(image / "rootfs.ext4")], capture_output=True, text=True)
        return p.stdout

    assert "ext4.ko" not in debugfs("cat /etc/modules-load")  # in the initramfs instead
    assert "virtio_net.ko" in debugfs("cat /etc/modules-load")
    assert "Type: regular" in debugfs("stat /bin/busybox")
    init = debugfs("stat /sbin/init")
    assert "Type: symlink" in init and "/bin/busybox" in init
    assert "Type: regular" in debugfs("stat /usr/sbin/dropbear")
    assert "Type: regular" in debugfs("stat /lib64/ld-linux-x86-64.so.2")
    pub = (image / "id_ed25519.pub").read_text().strip()
    assert pub in debugfs("cat /root/.ssh/authorized_keys")
    cpio = subprocess.run(["gzip", "-dc", str(image / "initrd.img")], capture_output=True, check=True).stdout
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=cpio, capture_output=True).stdout.decode().split()
    assert "init" in listing and "lib/modules/kernel/fs/ext4/ext4.ko" in listing


@pytest.mark.parametrize("exe", boot_binaries(), ids=lambda p: p.parent.parent.parent.name)
def test_qemu_boot(image, exe):
    env = dict(os.environ, BANGER_TEST_IMAGE=str(image))
    out = run_boot_test(exe, env)
    assert "powerdown took" in out


@pytest.fixture
def netns():
    """A namespace with bridge br0 (172.30.0.1/24) and an enslaved TAP."""
    ns = "bq-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["link", "set", "lo", "up"],
                    ["link", "add", "br0", "type", "bridge"],
                    ["addr", "add", "172.30.0.1/24", "dev", "br0"],
                    ["link", "set", "br0", "up"],
                    ["tuntap", "add", "dev", "tap0", "mode", "tap"],
                    ["link", "set", "tap0", "master", "br0", "up"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_qemu_boot_network_ssh(image, netns):
    exes = boot_binaries()
    if not exes:
        pytest.fail(f"test-qemu-boot is not built in {BUILD}")
    env = dict(os.environ, BANGER_TEST_IMAGE=str(image), BANGER_TEST_TAP="tap0",
               BANGER_TEST_GUEST_IP="172.30.0.2", BANGER_TEST_GATEWAY_IP="172.30.0.1")
    out = run_boot_test(exes[0], env, prefix=("ip", "netns", "exec", netns))
    assert "test_boot_network_ssh" in out and "SKIPPED" not in out, out[-3000:]
