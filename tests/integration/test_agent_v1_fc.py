"""A guest whose agent speaks protocol 1 (an image made before protocol 2):
banger starts and stops it, and refuses exec, cp and ports by name, saying
to rebuild or re-import the image. The guest is the FAKE Firecracker's
emulation (tests/fakes/fake-firecracker) running tests/fakes/fake-agent-v1,
a stand-in for an old image's agent; the CLI, daemon, helper, disks, TAP
and nftables are real, inside a network namespace this test creates."""
import pytest

from conftest import ROOT
from lifecycle import kernel_dir
from test_lifecycle_fc import fc_env

pytestmark = pytest.mark.slow

FAKE_V1 = ROOT / "tests/fakes/fake-agent-v1"
NAME = "old"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from fc_env(tmp_path_factory, "agent-v1", FAKE_V1)


def test_v1_agent_is_refused_by_name(env, tmp_path):
    k = kernel_dir(tmp_path, env.image_dir, env.manifest)
    env.json("kernel", "import", "testk", "--from", str(k))
    env.json("image", "register", "--name", "old", "--rootfs", str(env.image_dir / "rootfs.ext4"),
             "--kernel-ref", "testk")
    p = env.banger("vm", "create", "--name", NAME, "--image", "old", "--vmm", "firecracker", "--memory", "256M",
                   "--disk-size", "64M")
    assert "protocol 1" in p.stdout + p.stderr, p.stdout + p.stderr
    vm = env.json("vm", "show", NAME)
    assert vm["state"] == "running" and vm["ready"]["agent"] is False

    for args in (["vm", "exec", NAME, "--", "true"], ["vm", "cp", str(tmp_path), f"{NAME}:/tmp/x"],
                 ["vm", "ports", NAME]):
        p = env.banger(*args, check=False)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert "protocol 1" in p.stderr and "image build" in p.stderr and "image import" in p.stderr, p.stderr
        assert p.stderr.count("\n") <= 2, p.stderr  # one clear message, not a cascade

    # It stops (through the VMM: the old agent's poweroff is not spoken).
    env.banger("vm", "stop", NAME)
    assert env.json("vm", "show", NAME)["state"] == "stopped"
