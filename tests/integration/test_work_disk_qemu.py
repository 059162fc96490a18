"""A guest whose fstab names the work disk is ready only once the disk is
mounted: here the small test image, given an fstab entry for /dev/vdb that
its init never mounts, must fail its start with that reason (not come up
with the disk silently unused). QEMU (TCG), real daemon and helper, in a
network namespace of its own; boot_timeout_sec is lowered so the test does
not wait the default two minutes after the boot."""
import pathlib
import shutil
import subprocess

import pytest

from lifecycle import Env, build_test_image, kernel_dir, require_root

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    e = Env(tmp_path_factory.mktemp("work-disk"))
    e.setup()
    e.write_config("boot_timeout_sec = 90\n")
    e.image_dir, e.manifest = build_test_image()
    yield e
    e.teardown()


def image_with_fstab(env, tmp_path, fstab):
    rootfs = tmp_path / "rootfs.ext4"
    shutil.copyfile(env.image_dir / "rootfs.ext4", rootfs)
    (tmp_path / "fstab").write_text(fstab)
    cmds = tmp_path / "debugfs.cmds"
    cmds.write_text(f"cd /etc\nwrite {tmp_path / 'fstab'} fstab\nmkdir /work\n")
    p = subprocess.run(["debugfs", "-w", "-f", str(cmds), str(rootfs)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return rootfs


def test_unmounted_work_disk_fails_readiness_with_the_reason(env, tmp_path):
    k = kernel_dir(tmp_path, env.image_dir, env.manifest)
    env.json("kernel", "import", "testk", "--from", str(k))
    rootfs = image_with_fstab(env, tmp_path, "/dev/vda / ext4 defaults 0 1\n/dev/vdb /work ext4 defaults 0 2\n")
    env.json("image", "register", "--name", "nowork", "--rootfs", str(rootfs), "--kernel-ref", "testk")
    p = env.banger("vm", "create", "--name", "wd", "--image", "nowork", "--vmm", "qemu", "--vcpu", "1",
                   "--memory", "256M", "--disk-size", "64M", check=False, timeout=400)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "waiting for the work disk /dev/vdb on /work" in p.stderr, p.stderr
    assert "work disk: /dev/vdb is not mounted on /work (boot_timeout_sec 90 passed)" in p.stderr, p.stderr
    vm = env.json("vm", "show", "wd")
    assert vm["state"] == "error" and "/dev/vdb is not mounted on /work" in vm["last_error"], vm
