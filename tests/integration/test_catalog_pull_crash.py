"""A daemon killed in the middle of a pull, through the real CLI and daemon:
the bundle is downloaded and being unpacked (its 1 GiB sparse root
filesystem takes seconds to hash) when bangerd gets SIGKILL, leaving its
staging directory (images/.pull-*) with the download and part of the unpack.
The next daemon start removes it and registers nothing; the files of the
unfinished pull are never trusted again: a later pull downloads and hashes
the bundle afresh (a bundle changed meanwhile at its URL is refused for its
sha256), and with the bundle as published it pulls."""
import os
import signal
import subprocess
import time

import pytest

from lifecycle import BANGER, require_root
from test_catalog_pull_disk_full import bundle_manifest, catalog_env, noise_layer
from test_catalog_pull_qemu import sha256_file
from test_image_limits import daemon_pid

pytestmark = pytest.mark.slow

MIB = 1 << 20


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    e = catalog_env(tmp_path_factory.mktemp("catalog-pull-crash"), [("crashy", noise_layer(4 * MIB))])
    try:
        yield e
    finally:
        e.teardown()


def staging_dirs(env):
    return sorted(p for p in (env.state / "images").iterdir() if p.name.startswith(".pull-"))


def test_daemon_killed_mid_pull(env):
    env.banger("image", "list")  # the daemon is up
    pid = daemon_pid(env)
    cli = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "image", "pull", "crashy"], env=env.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        op, deadline = None, time.monotonic() + 120
        while not op and time.monotonic() < deadline and cli.poll() is None:
            ops = env.json("operations", "list")["operations"]
            op = next((o for o in ops if o["kind"] == "image.pull" and o["stage"] == "unpack"), None)
        assert op, ("the pull never reached its unpack", cli.poll(), ops)
        os.kill(pid, signal.SIGKILL)
        cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode != 0
    # What the killed pull left: its download, whole, and part of the unpack.
    [staging] = staging_dirs(env)
    assert os.path.getsize(staging / "bundle.tar.zst") == os.path.getsize(env.pub / "crashy.tar.zst")
    assert (staging / "root").is_dir()

    # The next start (autostarted by this call) sweeps it and registers nothing.
    assert env.json("image", "list")["images"] == []
    assert daemon_pid(env) != pid
    assert staging_dirs(env) == [] and os.listdir(env.state / "images") == []
    assert f"removing {staging}: left by an interrupted import or build" in env.daemon_log()

    # Not trusted again: a later pull fetches and hashes the bundle anew, so a
    # bundle changed at its URL is refused, though the catalog is the same...
    good = (env.pub / "crashy.tar.zst").read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    (env.pub / "crashy.tar.zst").write_bytes(bytes(bad))
    try:
        p = env.banger("image", "pull", "crashy", check=False)
    finally:
        (env.pub / "crashy.tar.zst").write_bytes(good)
    assert p.returncode == 1 and "does not match the sha256 the catalog gives" in p.stderr, p.stderr
    assert staging_dirs(env) == [] and env.json("image", "list")["images"] == []
    # ... and the bundle as published pulls, downloaded whole again.
    p = env.banger("image", "pull", "crashy")
    assert "pulled image crashy" in p.stdout and "done, " in p.stderr, p.stdout + p.stderr
    [rootfs] = [f for f in bundle_manifest(env.pub / "crashy.tar.zst")["files"] if f["path"] == "rootfs.ext4"]
    assert sha256_file(env.state / "images/crashy/rootfs.ext4") == rootfs["sha256"]
    assert staging_dirs(env) == []
