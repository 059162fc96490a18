"""Long operations (operations.list, operations.cancel, the operation
events; `banger operations [list|cancel|watch]`) on the Firecracker path
with the FAKE Firecracker (see test_lifecycle_fc.py): real bangerd,
bangerd-root, disks, TAP and nftables in a namespace of the test's own.
The fake runs here WITHOUT its guest emulation, so no guest agent ever
answers: a `vm create` sits in its boot stage (until boot_timeout_sec),
which is the window these tests cancel it in, from a second client and by
Ctrl-C on the client that started it. A cancelled create must leave
nothing: no VM row, TAP, nftables entry, files or VMM process."""
import json
import os
import re
import signal
import time

import pytest

from lifecycle import AGENT, process_gone
from opslib import cancel, interrupt, operations, reaped, spawn, start_until, wait_for
from tmuxlib import banger_pane
from test_lifecycle_fc import fc_env, test_import_kernel_and_register_image  # noqa: F401 (first step)

pytestmark = pytest.mark.slow

CREATE = ["vm", "create", "--image", "test", "--vmm", "firecracker", "--vcpu", "1", "--memory", "256M",
          "--disk-size", "64M"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    gen = fc_env(tmp_path_factory, "operations-fc", AGENT.resolve())
    e = next(gen)
    # No guest emulation: the boot waits for an agent that never answers.
    (e.fc_dir / "fake-firecracker.json").write_text(json.dumps({"record": str(e.record)}))
    e.write_config(f'default_vmm = "firecracker"\nfirecracker_bin = "{e.fc_dir / "firecracker"}"\n'
                   f'boot_timeout_sec = 300\n')
    yield e
    next(gen, None)


def create_in_boot(env, name):
    """Start `vm create NAME` and wait until it waits for the guest agent:
    the CLI process, its operation as listed, and the VM as listed."""
    def booting():
        ops = [o for o in operations(env) if o["kind"] == "vm.create" and o["target"] == name]
        return ops[0] if ops and ops[0]["stage"] == "boot" else None

    cli, op = start_until(env, [*CREATE, "--name", name], booting, "the create's boot stage")
    vm = env.json("vm", "show", name)
    assert vm["state"] == "starting", vm
    vm["pid"] = vmm_pid(env, vm["id"])
    return cli, op, vm


def vmm_pid(env, vm_id):
    """The VM's (fake) Firecracker: shown by vm show only once it runs."""
    for pid in env.ns_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"--id" in argv and vm_id.encode() in argv:
            return pid
    raise AssertionError(f"no VMM process for {vm_id}")


def assert_left_nothing(env, vm):
    assert env.json("vm", "list")["vms"] == []
    assert env.banger("vm", "show", vm["name"], check=False).returncode == 1
    assert vm["tap"] not in {l["ifname"] for l in env.links()}
    assert vm["ip"] not in env.nft_table()
    assert wait_for("the fake Firecracker to exit", lambda: process_gone(vm["pid"]), 30)
    assert list((env.state / "vms").iterdir()) == []
    assert not (env.rt / "banger/vms" / vm["id"]).exists()
    assert operations(env) == []


def test_no_operations_listed(env):
    assert operations(env) == []
    p = env.banger("operations")
    assert p.stdout.strip() == "no operations in flight", p.stdout
    assert env.json("operations", "list") == {"operations": []}


def test_cancel_create_in_boot_from_second_client(env):
    cli, op, vm = create_in_boot(env, "opc")
    with reaped(cli):
        assert op["client"]["pid"] == cli.pid and "vm create" in op["client"]["command"], op
        assert op["client"]["uid"] == os.getuid() and op["started"] > 0 and op["cancelled"] is False
        watch = spawn(env, "operations", "watch", str(op["id"]))
        with reaped(watch):
            time.sleep(1)  # subscribed
            p, _, _ = cancel(env, cli, op)
            assert p.stdout.strip() == f"cancelling operation {op['id']} (vm.create opc)", p.stdout
            wout, werr = watch.communicate(timeout=60)
    # The watcher saw the boot stage and the end.
    assert watch.returncode == 3, (wout, werr)
    lines = wout.strip().splitlines()
    assert lines[0] == f"operation {op['id']}: vm.create opc", lines
    assert any(l.startswith("boot: ") for l in lines), lines
    assert lines[-1].startswith("cancelled: "), lines
    assert_left_nothing(env, vm)


def test_ctrl_c_cancels_the_create(env):
    cli, op, vm = create_in_boot(env, "opi")
    with reaped(cli):
        _, err = interrupt(env, cli, op)
    assert "was cancelled" in err, err
    assert_left_nothing(env, vm)


def test_ctrl_c_on_a_terminal_cancels_the_create(env, tmp_path):
    """The same as a user does it: `vm create` on a terminal (a tmux pane),
    Ctrl-C typed into it (tmux send-keys C-c: the pane's terminal sends
    SIGINT to its foreground process group)."""
    with banger_pane(env, tmp_path / "create.sh", "banger-ops-test", f"{' '.join(CREATE)} --name optty", "create",
                     160, 50) as pane:
        def booting():
            ops = [o for o in operations(env) if o["kind"] == "vm.create" and o["target"] == "optty"]
            return ops[0] if ops and ops[0]["stage"] == "boot" else None

        op = wait_for("the create's boot stage", booting)
        assert "vm create" in op["client"]["command"], op
        vm = env.json("vm", "show", "optty")
        vm["pid"] = vmm_pid(env, vm["id"])
        pane.send("C-c")
        wait_for("the create to end", lambda: re.search(r"^create-rc=\d+$", pane.text(), re.M), 120)
        out = pane.text()
    assert re.search(rf"^create-rc={128 + signal.SIGINT}$", out, re.M), (out, env.daemon_log()[-3000:])
    assert f"cancelling operation {op['id']}, rolling back" in out, out
    assert f"operation {op['id']} (vm.create) was cancelled" in out, out
    assert_left_nothing(env, vm)


def test_cancel_start_leaves_the_vm_stopped(env):
    env.banger(*CREATE, "--name", "ops", "--no-start")
    cli = spawn(env, "vm", "start", "ops")

    def booting():
        ops = [o for o in operations(env) if o["kind"] == "vm.start"]
        return ops[0] if ops and env.json("vm", "show", "ops")["state"] == "starting" else None

    op = wait_for("the start's boot", booting)
    assert op["target"] == "ops", op
    vm = env.json("vm", "show", "ops")

    def launched():
        try:
            return vmm_pid(env, vm["id"])
        except AssertionError:
            return None

    vm["pid"] = wait_for("the VMM", launched)
    time.sleep(1)  # into the agent wait
    cancel(env, cli, op)
    after = env.json("vm", "show", "ops")
    assert after["state"] == "stopped" and after["pid"] is None, after
    assert vm["tap"] not in {l["ifname"] for l in env.links()}
    assert wait_for("the fake Firecracker to exit", lambda: process_gone(vm["pid"]), 30)
    assert operations(env) == []
    env.banger("vm", "delete", "ops")


def test_unknown_operation_is_a_clear_error(env):
    for verb in ("cancel", "watch"):
        p = env.banger("operations", verb, "987654", check=False)
        assert p.returncode == 1, (verb, p.stdout, p.stderr)
        assert "no operation 987654 is in flight ('banger operations' lists those that are)" in p.stderr, p.stderr
    p = env.banger("operations", "cancel", "abc", check=False)
    assert p.returncode == 2 and "invalid operation id 'abc'" in p.stderr, p.stderr
