"""Suspend and resume on the Firecracker path, end to end, with the FAKE
Firecracker (tests/fakes/fake-firecracker) standing in for the program this
machine cannot run: its emulated guest (the real banger-agent) keeps its
boot and its /tmp across the save and the load. The VM and its environment
are test_snapshot_fc's fixture, made anew for this module."""
import pytest

from test_lifecycle_fc import fake_events, requests
from test_snapshot_fc import SRC, env, guest, show  # noqa: F401 (env: the fixture)

pytestmark = pytest.mark.slow


def test_suspend_and_start_resume_the_same_guest(env):
    guest(env, SRC, "sh", "-c", "echo asleep > /tmp/marker")
    vm = show(env)
    assert env.banger("vm", "suspend", SRC).stdout == f"suspended {SRC}\n"
    after = show(env)
    assert after["state"] == "suspended" and after["pid"] is None
    ev = fake_events(env, vm["pid"])
    assert requests(ev, "/snapshot/create"), "no snapshot was asked of the VMM"
    saved = env.state / "vms" / vm["id"] / "suspend"
    assert sorted(p.name for p in saved.iterdir()) == ["suspend.json", "vm.mem", "vm.state"]
    # vm exec resumes it: the same boot, /tmp as it was.
    assert guest(env, SRC, "cat", "/tmp/marker") == "asleep\n"
    now = show(env)
    assert now["state"] == "running" and now["boot_id"] == vm["boot_id"] and now["ip"] == vm["ip"]
    assert not saved.exists()


def test_stop_of_a_suspended_vm_discards_it(env):
    vm = show(env)
    env.banger("vm", "suspend", SRC)
    out = env.banger("vm", "stop", SRC).stdout
    assert out == f"stopped {SRC} (it was suspended: its saved state is discarded)\n", out
    assert show(env)["state"] == "stopped"
    assert not (env.state / "vms" / vm["id"] / "suspend").exists()
    env.banger("vm", "start", SRC)
    assert show(env)["boot_id"] != vm["boot_id"]  # a cold boot
