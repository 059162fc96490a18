"""Suspend and resume on the Firecracker path, end to end, with the FAKE
Firecracker (tests/fakes/fake-firecracker) standing in for the program this
machine cannot run: its emulated guest (the real banger-agent) keeps its
boot and its /tmp across the save and the load; an idle timeout with the
action "stop" powers it off and releases its host resources. The VM and its environment
are test_snapshot_fc's fixture, made anew for this module."""
import pathlib
import time

import pytest

from lifecycle import process_gone
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


def test_idle_timeout_with_stop_stops_and_releases(env):
    """idle_action "stop": nobody uses the VM for its 5 s, the daemon powers
    it off (the agent's poweroff, as vm stop) and releases its TAP, NAT entry
    and runtime directory; vm start boots it again."""
    if show(env)["state"] != "running":
        env.banger("vm", "start", SRC)
    vm = env.json("vm", "set", SRC, "--idle-timeout", "5s", "--idle-action", "stop")
    assert vm["idle"] == {"timeout_sec": 5, "action": "stop"}, vm
    vm = show(env)
    t0 = time.monotonic()
    deadline = t0 + 120
    while show(env)["state"] != "stopped" and time.monotonic() < deadline:  # vm show is no use
        time.sleep(0.5)
    after = show(env)
    assert after["state"] == "stopped" and after["pid"] is None, after
    assert time.monotonic() - t0 >= 4
    assert "not used for" in env.daemon_log() and "stopping it" in env.daemon_log()
    assert process_gone(vm["pid"])
    assert any(e["event"] == "guest-exit" for e in fake_events(env, vm["pid"]))  # powered off, not killed
    assert vm["tap"] not in {l["ifname"] for l in env.links()}
    assert vm["ip"] not in env.nft_table()
    assert not (pathlib.Path(env.env["XDG_RUNTIME_DIR"]) / "banger/vms" / vm["id"]).exists()
    assert not (env.state / "vms" / vm["id"] / "suspend").exists()
    env.banger("vm", "set", SRC, "--idle-timeout", "off")
    env.banger("vm", "start", SRC)
    now = show(env)
    assert now["state"] == "running" and now["boot_id"] != vm["boot_id"] and now["ip"] == vm["ip"], now
    assert vm["tap"] in {l["ifname"] for l in env.links()}
