"""Crash consistency (crashlib.py): bangerd, and in some rounds bangerd-root,
SIGKILLed at a random moment of a random VM operation (create with and
without NAT, start, stop, restart, kill, pause, resume, delete, snapshot,
restore, create --from-snapshot), a new daemon started, and the host
checked against the database after its start-up reconcile: TAPs, NAT rules, VMM processes,
files under the VM and snapshot directories, addresses, loop devices,
transitional states; at the end, deleting everything must leave nothing.

The guests are the FAKE Firecracker's (tests/fakes/fake-firecracker, as in
test_lifecycle_fc.py: the real agent in namespaces of its own, no kernel):
cheap enough for 20 kills in the normal run (about a minute) and 200 with
BANGER_LONG_TESTS=1 (BANGER_CRASH_KILLS sets the count). In the long mode,
four more rounds kill the daemon while a real QEMU guest (the small test
image) is created, started, stopped or deleted. The seed is printed;
BANGER_CRASH_SEED replays a run (the same draws of operation, target and
delay; how far an operation got when the kill came varies with the load).
docs/testing.md has the figures of a long run."""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from crashlib import Harness, all_threads_gone, crash_seed, vmm_guest_state
from lifecycle import AGENT, BANGER, env_with_test_image
from test_lifecycle_fc import fc_env
from test_lifecycle_fc import test_import_kernel_and_register_image as import_kernel_and_image

pytestmark = pytest.mark.slow

FC_CREATE = ["--image", "test", "--vmm", "firecracker", "--vcpu", "1", "--memory", "256M", "--disk-size", "64M"]
QEMU_CREATE = ["--image", "test", "--vmm", "qemu", "--vcpu", "1", "--memory", "256M", "--disk-size", "64M"]


LONG = os.environ.get("BANGER_LONG_TESTS") == "1"


def kills():
    if os.environ.get("BANGER_CRASH_KILLS"):
        return int(os.environ["BANGER_CRASH_KILLS"])
    return 200 if LONG else 20


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not AGENT.exists():
        pytest.fail(f"{AGENT} is not built")
    for e in fc_env(tmp_path_factory, "crash-fc", AGENT.resolve()):
        import_kernel_and_image(e, tmp_path_factory.mktemp("crash-kernel"))
        yield e


def kill_daemon_and_restart(env):
    pid = env.json("daemon", "status")["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120  # until its socket is closed (crashlib.Harness.wait_gone)
    while not all_threads_gone(pid):
        assert time.monotonic() < deadline, f"bangerd pid {pid} still there 120 s after SIGKILL"
        time.sleep(0.02)
    env.banger("daemon", "start")


def test_runtime_dir_of_a_stopped_vm_is_swept(env):
    """A stop cut short after the VMM and TAP went but before the VM's
    runtime directory did (the crash harness found it) left the directory
    for good; so did a delete cut short likewise. The
    restart's recovery removes both."""
    env.banger("vm", "create", "--name", "rd", "--no-start", *FC_CREATE)
    vm = env.json("vm", "show", "rd")
    vms = pathlib.Path(env.env["XDG_RUNTIME_DIR"]) / "banger/vms"
    for d in (vms / vm["id"], vms / "0123456789abcdef"):
        d.mkdir(mode=0o700)
        (d / "fc.sock").write_text("")
    kill_daemon_and_restart(env)
    assert sorted(p.name for p in vms.iterdir()) == []
    env.banger("vm", "delete", "rd")


def test_restore_copies_of_an_interrupted_restore_go(env):
    """A vm restore killed while it copied the snapshot's disks beside the
    VM's (root.img.restore, work.img.restore) left those copies for good,
    and the VM's delete then left its directory (not empty) without a
    record. The restart's recovery removes the copies; so does a delete."""
    vms = env.state / "vms"
    for name in ("rc1", "rc2"):
        env.banger("vm", "create", "--name", name, "--no-start", *FC_CREATE)
        d = vms / env.json("vm", "show", name)["id"]
        (d / "root.img.restore").write_bytes(b"\0" * 4096)
        (d / "work.img.restore").write_bytes(b"")
    ids = {n: env.json("vm", "show", n)["id"] for n in ("rc1", "rc2")}
    env.banger("vm", "delete", "rc1")
    assert not (vms / ids["rc1"]).exists(), "the delete left the directory of rc1"
    kill_daemon_and_restart(env)
    assert sorted(p.name for p in (vms / ids["rc2"]).iterdir()) == ["root.img", "work.img"]
    env.banger("vm", "delete", "rc2")


def test_daemon_starts_its_helper_again(env):
    """bangerd-root killed under a running daemon (a CLI autostarted a new
    daemon that reused the old helper, which then died): every VM operation
    failed with "cannot reach the privileged helper" until the daemon's next
    restart, leaving the TAP of a VM whose start failed. The daemon starts
    its own helper again when a call finds it gone."""
    env.banger("daemon", "start")
    h = Harness(env, 0, FC_CREATE)
    before = h.helper_pids()
    assert len(before) == 1, before
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while not all_threads_gone(before[0]):
        assert time.monotonic() < deadline, "bangerd-root survived SIGKILL"
        time.sleep(0.02)
    env.banger("vm", "create", "--name", "hr", "--nat", *FC_CREATE)
    vm = env.json("vm", "show", "hr")
    assert vm["state"] == "running" and vm["tap"] in {l["ifname"] for l in env.links()}
    assert any(f'"{vm["ip"]}"' in r for r in nat_rules(env))
    assert len(h.helper_pids()) == 1, h.helper_pids()
    env.banger("vm", "delete", "--force", "hr")


def nat_rules(env):
    t = env.nft_table()
    return [json.dumps(x["rule"]) for x in json.loads(t)["nftables"] if "rule" in x] if t else []


def test_paused_vm_keeps_its_network(env):
    """A paused VM still runs (its VMM holds the TAP): the reconcile of a
    restarted daemon deleted its TAP and the NAT sync dropped its NAT rules
    (the crash harness found it: a pause, then bangerd killed), and so did
    the NAT sync of any other NAT VM's start while it was paused."""
    env.banger("vm", "create", "--name", "pz", "--nat", *FC_CREATE)
    vm = env.json("vm", "show", "pz")
    env.banger("vm", "pause", "pz")
    env.banger("vm", "create", "--name", "pz2", "--nat", *FC_CREATE)
    assert any(f'"{vm["ip"]}"' in r for r in nat_rules(env)), "another NAT VM's start dropped pz's NAT rules"
    env.banger("vm", "delete", "--force", "pz2")
    kill_daemon_and_restart(env)
    assert env.json("vm", "show", "pz")["state"] == "paused"
    assert vm["tap"] in {l["ifname"] for l in env.links()}, "the restart's reconcile deleted pz's TAP"
    assert any(f'"{vm["ip"]}"' in r for r in nat_rules(env)), "the restart dropped pz's NAT rules"
    env.banger("vm", "resume", "pz")
    env.banger("vm", "delete", "--force", "pz")


def wait_for_record(env, mark, event, timeout=60):
    """Until the fake Firecracker recorded `event` after byte `mark` of its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = env.record.read_bytes()[mark:].decode(errors="replace") if env.record.exists() else ""
        if any(json.loads(l).get("event") == event for l in text.splitlines() if l.strip()):
            return
        time.sleep(0.05)
    raise AssertionError(f"the fake Firecracker recorded no {event} in {timeout} s\n"
                         f"--- daemon log ---\n{env.daemon_log()[-3000:]}")


def ensure_template(env):
    """A warm-start template of FC_CREATE's shape (made after a create)."""
    def templates():
        return [n for n in env.json("snapshot", "list")["snapshots"] if n["kind"] == "template"]
    if not templates():
        env.banger("vm", "create", "--name", "tpl-maker", *FC_CREATE)
        deadline = time.monotonic() + 60
        while not templates():
            assert time.monotonic() < deadline, "no template was made:\n" + env.daemon_log()[-3000:]
            time.sleep(0.2)
        env.banger("vm", "delete", "--force", "tpl-maker")


@pytest.mark.parametrize("boot", ["cold", "warm"])
def test_start_killed_before_the_guest_booted(env, boot):
    """A create killed after its VMM was launched but before the VMM was
    told to boot the guest (here: while Firecracker's InstanceStart, or for
    a warm start from a template the resume of the loaded state, had not
    begun to act) was re-attached by the restarted daemon as running (the
    crash harness found it), and Firecracker then refused its pause and
    snapshot until it was restarted. Recovery asks the VMM: one whose guest
    never started is killed and what the start took released, as a failed
    start's undo does; the VM is left stopped and starts again."""
    env.banger("daemon", "start")
    if boot == "warm":
        ensure_template(env)
    cfg = env.fc_dir / "fake-firecracker.json"
    saved = cfg.read_text()
    cfg.write_text(json.dumps({**json.loads(saved), "start_delay_ms": 600000}))
    h = Harness(env, 0, FC_CREATE)
    mark = env.record.stat().st_size if env.record.exists() else 0
    before = set(h.vmm_pids())
    argv = ["vm", "create", "--name", f"nb-{boot}", "--nat", *FC_CREATE] + (["--cold"] if boot == "cold" else [])
    create = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), *argv], env=env.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_record(env, mark, "start-delay")
        loaded = [json.loads(l).get("path") == "/snapshot/load" for l in env.record.read_text()[mark:].splitlines()]
        assert any(loaded) == (boot == "warm"), f"a {boot} boot expected"
        vmm = set(h.vmm_pids()) - before
        vm = env.json("vm", "show", f"nb-{boot}")
        assert vm["state"] == "starting" and len(vmm) == 1, vmm
        run = h.runtime / "vms" / vm["id"]  # what the harness's guest check asks, asked here too
        assert vmm_guest_state(run / "fc.sock", run / "qmp.sock") == ("Paused" if boot == "warm" else "Not started")
        kill_daemon_and_restart(env)
    finally:
        cfg.write_text(saved)
        create.communicate(timeout=120)
    after = env.json("vm", "show", f"nb-{boot}")
    assert after["state"] == "stopped", f"recovery left nb-{boot} {after['state']} (its guest never started)"
    assert "before the guest booted" in (after.get("last_error") or ""), after
    h.all_ips_ever = set()
    assert h.settled_check() == []  # its VMM killed, its TAP and NAT rules gone, no runtime files
    assert not vmm & set(h.vmm_pids()), "its VMM was not killed"
    env.banger("vm", "start", f"nb-{boot}")
    assert vmm_guest_state(run / "fc.sock", run / "qmp.sock") == "Running"
    env.banger("vm", "pause", f"nb-{boot}")  # what Firecracker refused before the guest started
    env.banger("vm", "delete", "--force", f"nb-{boot}")


def test_crash_rounds_fake_firecracker(env):
    h = Harness(env, crash_seed(), FC_CREATE)
    h.run(kills(), max_delay=3.0)
    assert not h.violations, "\n".join(h.violations)


@pytest.fixture(scope="module")
def qemu_env(tmp_path_factory):
    e = env_with_test_image(tmp_path_factory, "crash-qemu")
    try:
        e.write_config('default_vmm = "qemu"\nboot_timeout_sec = 240\nvm_templates = false\n')
        e.banger("daemon", "stop")  # the next one reads this configuration
        yield e
    finally:
        e.teardown()


@pytest.mark.skipif(not LONG, reason="the QEMU crash rounds run with BANGER_LONG_TESTS=1 (about 2 minutes, "
                    "most of it setting up the test guest)")
def test_crash_rounds_qemu(qemu_env):
    """A real guest: kills while QEMU is launched and the guest boots."""
    h = Harness(qemu_env, crash_seed(), QEMU_CREATE, max_vms=2, op_timeout=300, settle=60,
                only=("create", "create-nat", "start", "stop", "restart", "delete"))
    h.run(4, max_delay=12.0)
    assert not h.violations, "\n".join(h.violations)


def stop_qemu_before_cont(h, before, timeout=120):
    """SIGSTOP the new QEMU once it wrote its pidfile and bound its QMP
    socket (what recovery finds it by), before the daemon's cont can reach
    it; returns (pid, its runtime directory)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in set(h.vmm_pids()) - before:
            try:
                argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                run_dir = pathlib.Path(argv[argv.index("-pidfile") + 1]).parent
            except (OSError, ValueError, IndexError):
                continue
            if (run_dir / "qemu.pid").exists() and (run_dir / "qmp.sock").exists():
                os.kill(pid, signal.SIGSTOP)
                return pid, run_dir
        time.sleep(0.002)
    raise AssertionError(f"no QEMU with its pidfile and QMP socket in {timeout} s")


@pytest.mark.skipif(not LONG, reason="needs the QEMU test guest (BANGER_LONG_TESTS=1)")
def test_qemu_start_killed_before_cont(qemu_env):
    """The QEMU side of test_start_killed_before_the_guest_booted: bangerd
    killed while QEMU waited at -S for its cont (QEMU stopped meanwhile, so
    the cont cannot come first; a round where it did anyway is tried again).
    Recovery finds QEMU in "prelaunch", kills it and leaves the VM stopped."""
    e = qemu_env
    e.banger("daemon", "start")
    h = Harness(e, 0, QEMU_CREATE)
    h.all_ips_ever = set()
    for attempt in range(3):
        name = f"qb{attempt}"
        before = set(h.vmm_pids())
        create = subprocess.Popen(["ip", "netns", "exec", e.ns, str(BANGER), "vm", "create", "--name", name, "--nat",
                                   *QEMU_CREATE], env=e.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        pid = None
        try:
            pid, run_dir = stop_qemu_before_cont(h, before)
            daemon = e.json("daemon", "status")["pid"]
            os.kill(daemon, signal.SIGKILL)
            while not all_threads_gone(daemon):
                time.sleep(0.02)
        finally:
            if pid:
                os.kill(pid, signal.SIGCONT)
            create.communicate(timeout=300)
        state = vmm_guest_state(run_dir / "fc.sock", run_dir / "qmp.sock", timeout=60)
        e.banger("daemon", "start")
        if state == "prelaunch":
            break
        print(f"attempt {attempt}: QEMU was {state} (the cont came first); again", flush=True)
        e.banger("vm", "delete", "--force", name)
    else:
        pytest.fail("QEMU was never caught before its cont in 3 attempts")
    after = e.json("vm", "show", name)
    assert after["state"] == "stopped", f"recovery left {name} {after['state']} (QEMU never got its cont)"
    assert h.settled_check() == []
    assert pid not in h.vmm_pids(), "its QEMU was not killed"
    e.banger("vm", "delete", "--force", name)
