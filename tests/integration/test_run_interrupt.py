"""`banger vm run --rm` deletes its VM also when the user presses Ctrl-C
while the command runs: real CLI, daemon and QEMU (TCG) guest inside a
network namespace this test creates; SIGINT goes to the CLI process only."""
import json
import os
import pathlib
import signal
import subprocess

import pytest

from lifecycle import BANGER, env_with_test_image, process_gone
from opslib import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = env_with_test_image(tmp_path_factory, "run-interrupt")
    yield e
    e.teardown()


def test_ctrl_c_deletes_the_vm(env):
    assert env.json("vm", "list")["vms"] == []
    # ip netns exec execs banger: the Popen pid is the CLI's own.
    cli = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "run", "--rm", "--image", "test",
                            "--vmm", "qemu", "--memory", "256M", "--disk-size", "64M", "--", "sleep", "600"],
                           env=env.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        def running():
            vms = env.json("vm", "list")["vms"]
            return vms[0] if len(vms) == 1 and vms[0]["state"] == "running" else None

        listed = wait_for("the VM to run", running, 300)
        vm = env.json("vm", "show", listed["id"])
        # The command itself is running in the guest, so Ctrl-C lands
        # mid-exec. Checked over ssh: the agent's channel is busy with it.
        wait_for("sleep in the guest", lambda: env.banger("vm", "ssh", vm["id"], "--", "pidof", "sleep",
                                                          check=False, timeout=60).returncode == 0, 120)
        assert cli.poll() is None, cli.communicate()
        assert pathlib.Path(f"/proc/{cli.pid}/cmdline").read_bytes().split(b"\0")[0] == str(BANGER).encode()
        os.kill(cli.pid, signal.SIGINT)
        out, err = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 128 + signal.SIGINT, (cli.returncode, out, err, env.daemon_log()[-3000:])
    assert "deleting the VM" in err and f"deleted VM {vm['id'][:12]}" in err, err
    assert env.json("vm", "list")["vms"] == []
    assert env.banger("vm", "show", vm["id"], check=False).returncode == 1
    assert vm["tap"] not in {l["ifname"] for l in env.links()}
    assert process_gone(vm["pid"])
    for pid in env.ns_pids():
        if process_gone(pid):
            continue
        cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        assert vm["id"].encode() not in cmd, cmd
    assert list((env.state / "vms").iterdir()) == []
    losetup = json.loads(subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True).stdout
                         or '{"loopdevices":[]}')
    assert not any(str(env.state) in (d.get("back-file") or "") for d in losetup["loopdevices"])
