"""Cancelling vm.suspend and vm.snapshot (operations.cancel) from a second
client, on the Firecracker path with the FAKE Firecracker
(tests/fakes/fake-firecracker) and its emulated guest: the fake's
/snapshot/create takes SLOW_MS (snapshot_delay_ms), the window in which
`banger operations` lists the operation and the test cancels it. A
cancelled one must leave the VM as it was: the same VMM process and boot,
running (the fake says so too), its /tmp as it was, and no saved state,
snapshot record or snapshot directory. The VM and its environment are
test_snapshot_fc's fixture, made anew for this module."""
import json
import os
import sqlite3

import pytest

from bangerlib import bash_complete
from lifecycle import BANGER
from opslib import cancel, operations, reaped, start_until
from test_lifecycle_fc import fake_events, requests
from test_snapshot_fc import SRC, env, fake_state, guest, show  # noqa: F401 (env: the fixture)

pytestmark = pytest.mark.slow

SLOW_MS = 4000


@pytest.fixture(scope="module")
def slow(env):  # noqa: F811 (the fixture imported above)
    """SRC restarted under a fake whose snapshot create is slow, with a
    marker in its /tmp."""
    cfg = env.fc_dir / "fake-firecracker.json"
    cfg.write_text(json.dumps(dict(env.fake_opts, snapshot_delay_ms=SLOW_MS)))
    # Options are read when a fake starts: restart the VM under the new ones.
    env.banger("vm", "stop", SRC)
    env.banger("vm", "start", SRC)
    cfg.write_text(json.dumps(env.fake_opts))
    guest(env, SRC, "sh", "-c", "echo before > /tmp/marker")
    return env


def in_save(env, vm, kind, *args):
    """Start `banger ARGS` and wait until the fake is inside its slow
    snapshot create (the VM paused, the create not answered yet) and the
    operation is listed: the CLI process and the operation."""
    seen = len(fake_events(env, vm["pid"]))  # the fake's record of earlier requests

    def new(path):
        return requests(fake_events(env, vm["pid"])[seen:], path)

    def saving():
        paused = any('"Paused"' in r["body"] for r in new("/vm"))
        ops = [o for o in operations(env) if o["kind"] == kind]
        return ops[0] if paused and ops else None

    cli, op = start_until(env, args, saving, f"{kind}'s save", timeout=60)
    assert not new("/snapshot/create")  # still in it
    return cli, op


def snapshot_rows(env):
    db = sqlite3.connect(f"file:{env.state / 'banger.db'}?mode=ro", uri=True, timeout=30)
    try:
        return sorted(r[0] for r in db.execute("SELECT name FROM snapshots"))
    finally:
        db.close()


def snapshot_dirs(env):
    d = env.state / "snapshots"
    return sorted(os.listdir(d)) if d.exists() else []


def assert_as_before(env, vm):
    after = show(env)
    assert after["state"] == "running" and after["pid"] == vm["pid"], after
    assert after["boot_id"] == vm["boot_id"], after
    assert fake_state(env, after) == "Running"
    assert guest(env, SRC, "cat", "/tmp/marker") == "before\n"
    assert operations(env) == []


def test_suspend_in_flight_is_listed_and_cancelled(slow):
    env = slow
    vm = show(env)
    cli, op = in_save(env, vm, "vm.suspend", "vm", "suspend", SRC)
    with reaped(cli):
        assert op["target"] == SRC and op["cancellable"] is True and op["stage"] == "suspend", op
        assert "vm suspend" in op["client"]["command"], op
        rows = [l.split() for l in env.banger("operations").stdout.splitlines()]
        assert any(r[:4] == [str(op["id"]), "vm.suspend", SRC, "suspend"] for r in rows), rows
        # Shell completion offers its id after operations cancel|watch.
        assert env.banger("operations", "--names").stdout == f"{op['id']}\n"
        script = env.tmp / "banger.bash"
        script.write_text(env.banger("completion", "bash").stdout)
        path = dict(env.env, PATH=f"{BANGER.parent}:{os.environ['PATH']}")
        for verb in ("cancel", "watch"):
            assert bash_complete(script, path, "banger", "operations", verb, "") == {str(op["id"])}
        p, _, _ = cancel(env, cli, op)
        assert p.stdout.strip() == f"cancelling operation {op['id']} (vm.suspend {SRC})", p.stdout
    # The save did finish in the VMM: its state was written, then removed.
    assert requests(fake_events(env, vm["pid"]), "/snapshot/create")
    vm_dir = env.state / "vms" / vm["id"]
    assert not (vm_dir / "suspend").exists() and not (vm_dir / "suspend.tmp").exists(), os.listdir(vm_dir)
    assert_as_before(env, vm)


def test_snapshot_cancelled_in_its_save_leaves_nothing(slow):
    env = slow
    vm = show(env)
    rows, dirs = snapshot_rows(env), snapshot_dirs(env)
    cli, op = in_save(env, vm, "vm.snapshot", "vm", "snapshot", SRC, "--name", "cut")
    with reaped(cli):
        assert op["target"] == SRC and op["cancellable"] is True, op
        cancel(env, cli, op)
    assert snapshot_rows(env) == rows and "cut" not in rows
    assert snapshot_dirs(env) == dirs
    assert_as_before(env, vm)


def test_after_a_cancel_the_same_operations_complete(slow):
    """Nothing of the cancels lingers: the next snapshot and suspend work."""
    env = slow
    env.banger("vm", "snapshot", SRC, "--name", "whole")
    assert "whole" in snapshot_rows(env)
    env.banger("snapshot", "delete", "whole")
    assert env.banger("vm", "suspend", SRC).stdout == f"suspended {SRC}\n"
    assert show(env)["state"] == "suspended"
    assert guest(env, SRC, "cat", "/tmp/marker") == "before\n"
    assert show(env)["state"] == "running"
