"""The default image, as `banger vm run` on a fresh host uses it: no --image,
the configured default_image. The real Debian image (debootstrap, systemd,
sshd, banger-agent) booted through the whole lifecycle with QEMU, inside a
network namespace this test creates.

The image comes from test_debootstrap.py's cache (built there, minutes, when
missing) and is registered under the configured default name, so the boot
path is the user's. The build-on-first-use branch itself is run against an
unreachable mirror: its progress and its clean failure are checked, not a
second multi-minute download (test_debootstrap.py covers the build).

Slow: runs only with BANGER_SLOW_TESTS=1 (scripts/test.sh sets it)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from lifecycle import Env, require_root
from test_debootstrap import built_image  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

DEFAULT = "bgt-default"
# The uplink peer of the test namespace: port 9 is closed, so every download
# of a build fails at once, without leaving the namespace.
DEAD_MIRROR = "http://198.18.0.2:9/debian"
SIZES = ("--memory", "768M", "--disk-size", "256M", "--vmm", "qemu")


@pytest.fixture(scope="module")
def env(tmp_path_factory, request):
    if not os.environ.get("BANGER_SLOW_TESTS"):
        pytest.skip("slow test (boots the Debian image): set BANGER_SLOW_TESTS=1, as scripts/test.sh does")
    require_root()
    # Only now: with an empty cache this builds the image (minutes).
    built_image = request.getfixturevalue("built_image")
    e = Env(tmp_path_factory.mktemp("default-image"))
    e.setup()
    e.image = built_image
    e.write_config(f'default_image = "{DEFAULT}"\n')
    e.json("kernel", "import", DEFAULT + "-kernel", "--from", built_image["kernel"], "--initrd",
           built_image["initrd"])
    e.json("image", "register", "--name", DEFAULT, "--rootfs", built_image["rootfs"], "--kernel-ref",
           DEFAULT + "-kernel")
    yield e
    e.teardown()


def no_vms_left(env):
    assert env.json("vm", "list")["vms"] == []
    assert not any(l["ifname"].startswith("bgt") for l in env.links())
    assert list((env.state / "vms").iterdir()) == []


def test_run_uname_on_the_default_image(env):
    p = env.banger("vm", "run", *SIZES, "--rm", "--", "uname", "-a")
    line = p.stdout.strip()
    assert line.startswith("Linux "), p.stdout
    assert env.image["version"] in line.split(), (line, env.image["version"])
    assert f"image={DEFAULT}" in p.stderr  # the spec line: no --image, the configured default
    for stage in ("boot", "agent", "ready"):
        assert f"\n{stage}" in "\n" + p.stderr, (stage, p.stderr)
    no_vms_left(env)


def test_work_disk_is_mounted_on_root_under_load(env):
    # Two busy loops on this 2-core host: the guest's devices appear late,
    # as they did when a 5 s device timeout left /root on the root disk.
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        p = env.banger("vm", "run", *SIZES, "--rm", "--", "findmnt", "-n", "-o", "SOURCE,TARGET,FSTYPE", "/root")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert p.stdout.split() == ["/dev/vdb", "/root", "ext4"], (p.stdout, p.stderr)
    no_vms_left(env)


def test_run_passes_exit_code_and_leaves_no_vm(env):
    p = env.banger("vm", "run", *SIZES, "--rm", "--", "sh", "-c", "echo from-guest; exit 3", check=False)
    assert p.returncode == 3, p.stderr
    assert p.stdout == "from-guest\n"
    no_vms_left(env)


def test_missing_default_is_built_on_first_use(env):
    """A default image that does not exist is built by vm create, with the
    build's stages as progress; a failed build leaves nothing behind."""
    env.banger("daemon", "stop")
    env.write_config(f'default_image = "bgt-fresh"\ndebootstrap_mirror = "{DEAD_MIRROR}"\n')
    p = env.banger("vm", "create", *SIZES, "--json", check=False, timeout=300)
    events = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert p.returncode == 1, p.stdout + p.stderr
    stages = [json.loads(l).get("stage") for l in events]
    assert "image" in stages and "debootstrap" in stages, stages
    assert stages.index("image") < stages.index("debootstrap")
    assert "bgt-fresh does not exist yet: building it" in p.stdout
    assert "building the default image bgt-fresh" in p.stderr, p.stderr
    assert f"from {DEAD_MIRROR} failed" in p.stderr, p.stderr  # debootstrap's own reason
    # Nothing half-made: no VM, no image, no kernel, no build directory.
    no_vms_left(env)
    names = [i["name"] for i in env.json("image", "list")["images"]]
    assert names == [DEFAULT], names
    assert "bgt-fresh-kernel" not in [k["name"] for k in env.json("kernel", "list")["kernels"]]
    images_dir = env.state / "images"
    assert not images_dir.exists() or list(images_dir.iterdir()) == [], list(images_dir.iterdir())


def test_other_missing_image_is_not_built(env):
    """Only the configured default is built: any other name is an error."""
    p = env.banger("vm", "create", *SIZES, "--image", "bgt-typo", check=False)
    assert p.returncode == 1
    assert "no image named 'bgt-typo'" in p.stderr, p.stderr
    assert "debootstrap" not in p.stderr
    no_vms_left(env)


def test_non_root_daemon_says_how_to_build_it(build_dir):
    """A daemon that is not root cannot run debootstrap: vm create says what
    to do instead of failing obscurely. Needs no VM, so it runs without
    BANGER_SLOW_TESTS."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="bgd-", dir="/tmp"))
    try:
        (d / "home").mkdir()
        (d / "rt").mkdir(mode=0o700)
        drop = []
        if os.geteuid() == 0:  # as nobody, in a tree nobody owns
            for p in (d, d / "home", d / "rt"):
                os.chown(p, 65534, 65534)
            drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(d / "home"), "XDG_CONFIG_HOME": str(d / "config"),
               "XDG_STATE_HOME": str(d / "state"), "XDG_CACHE_HOME": str(d / "cache"), "XDG_RUNTIME_DIR": str(d / "rt")}
        cli = [*drop, str(build_dir / "src/cli/banger")]
        p = subprocess.run([*cli, "vm", "create", "--memory", "256M"], env=env, capture_output=True, text=True,
                           timeout=120)
        subprocess.run([*cli, "daemon", "stop"], env=env, capture_output=True, timeout=30)
        assert p.returncode == 1, p.stderr
        assert "image debian-bookworm does not exist" in p.stderr, p.stderr
        assert "sudo banger image build debian-bookworm --debootstrap bookworm" in p.stderr, p.stderr
        assert not (d / "state/banger/images").exists() or not list((d / "state/banger/images").iterdir())
    finally:
        shutil.rmtree(d, ignore_errors=True)
