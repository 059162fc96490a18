"""A daemon killed while it launched a VMM, at the two moments when the VMM
could not be found again (the crash harness found it with seed 3428440768:
a warm create killed 0.33 s in, and the restarted daemon marked the VM
stopped while its fake Firecracker lived on):

- before-exec: the VMM's process is forked but has not exec'd yet: it is
  still a copy of bangerd, with no pidfile and no socket;
- after-exec: it has exec'd, but the daemon had not written its pidfile yet,
  and the VMM has not bound its API socket.

The daemon under test runs with a test-only LD_PRELOAD shim
(tests/fakes/stall-vmm-spawn.c) that holds the launch still at that moment,
so the kill lands there every time. Since the child writes its own pidfile
before it execs and holds the VM's liveness lock (vmm.lock) from its fork on,
recovery waits for a VMM whose lock is held and identifies it: the VM's start
never reached its guest, so recovery kills the VMM and leaves the VM stopped
with nothing left behind."""
import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BUILD, ROOT
from crashlib import Harness
from lifecycle import BANGER
from test_crash import FC_CREATE, LONG, QEMU_CREATE, ensure_template, env, qemu_env  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

BANGERD = BUILD / "src/daemon/bangerd"
SHIM = ROOT / "tests/fakes/stall-vmm-spawn.c"


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the LD_PRELOAD shim with")
    out = tmp_path_factory.mktemp("shim") / "stall-vmm-spawn.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM), "-ldl"], check=True)
    return out


def start_stalling_daemon(env, shim, at, mark, stall_ms=2000):
    """bangerd with the shim (the CLI's autostart passes no LD_PRELOAD)."""
    env.banger("daemon", "stop")
    e = {**env.env, "LD_PRELOAD": str(shim), "BANGER_STALL_AT": at, "BANGER_STALL_MARK": str(mark),
         "BANGER_STALL_MS": str(stall_ms), "ASAN_OPTIONS": "verify_asan_link_order=0"}
    # ip netns exec execs bangerd: the pid is the daemon's.
    d = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGERD)], env=e, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        p = subprocess.run(["ip", "netns", "exec", env.ns, str(BANGER), "daemon", "status", "--json"], env=env.env,
                           capture_output=True, text=True)
        if p.returncode == 0 and json.loads(p.stdout).get("pid") == d.pid:
            return d
        assert d.poll() is None, f"bangerd with the shim exited {d.returncode}:\n{env.daemon_log()[-3000:]}"
        assert time.monotonic() < deadline, "bangerd with the shim did not answer in 60 s"
        time.sleep(0.05)


@contextlib.contextmanager
def create_killed_at_the_stall(env, shim, at, mark, argv, stall_ms=2000, timeout=120):
    """`banger ARGV` (a vm create) against a daemon with the shim; once the
    shim marks its stall, that daemon is SIGKILLed and a new one started.
    The block runs with the stalled VMM's pid; after it, the create's CLI
    has ended."""
    daemon = start_stalling_daemon(env, shim, at, mark, stall_ms)
    create = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), *argv], env=env.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not mark.exists():
            assert create.poll() is None, f"the create ended before its VMM launch: {create.communicate()}"
            assert time.monotonic() < deadline, "the launch never reached the stall:\n" + env.daemon_log()[-3000:]
            time.sleep(0.01)
        pid = int(mark.read_text())
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
        env.banger("daemon", "start")
        yield pid
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        create.communicate(timeout=timeout)


def alive(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_exec_or_exit(pid, timeout=30):
    """Until pid is gone or no longer a copy of bangerd (its stall ended)."""
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        try:
            if pathlib.Path(f"/proc/{pid}/comm").read_text().strip() != "bangerd":
                return
        except OSError:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("boot", ["cold", "warm"])
@pytest.mark.parametrize("at", ["before-exec", "after-exec"])
def test_launch_killed_before_its_vmm_can_be_found(env, shim, at, boot):
    env.banger("daemon", "start")
    if boot == "warm":
        ensure_template(env)
    cfg = env.fc_dir / "fake-firecracker.json"
    saved = cfg.read_text()
    # Nothing answers on the API socket for a while: a VMM the recovery
    # missed is still there (and not yet failing to bind in a removed
    # directory) when the host is checked.
    cfg.write_text(json.dumps({**json.loads(saved), "bind_delay_ms": 15000}))
    name = f"sp-{boot}-{at.split('-')[0]}"
    mark = env.tmp / f"stall-{name}"
    h = Harness(env, 0, FC_CREATE)
    h.all_ips_ever = set()
    before = set(h.vmm_pids())
    argv = ["vm", "create", "--name", name, "--nat", *FC_CREATE] + (["--cold"] if boot == "cold" else [])
    try:
        with create_killed_at_the_stall(env, shim, at, mark, argv) as pid:
            pass
    finally:
        cfg.write_text(saved)
    # A VMM the recovery missed lives on (it execs once the stall ends), and
    # fails only once it tries to bind in the runtime directory recovery
    # removed: asked before that.
    wait_exec_or_exit(pid)
    vmm = set(h.vmm_pids()) - before
    after = env.json("vm", "show", name)
    log = "\n--- daemon log ---\n" + env.daemon_log()[-3000:]
    assert not vmm and not alive(pid), f"VMM {pid} outlived the recovery, which left {name} {after['state']}" + log
    bad = h.settled_check()  # no TAP, NAT rule or runtime file left
    assert bad == [], "\n".join(bad) + log
    assert after["state"] == "stopped", f"recovery left {name} {after['state']}: {after.get('last_error')}"
    assert "before the guest booted" in (after.get("last_error") or ""), after
    env.banger("vm", "start", name)  # and the VM is whole
    assert env.json("vm", "show", name)["state"] == "running"
    env.banger("vm", "delete", "--force", name)


@pytest.mark.skipif(not LONG, reason="needs the QEMU test guest (BANGER_LONG_TESTS=1)")
def test_qemu_launch_killed_before_its_exec(qemu_env, shim):
    """The same for QEMU, before its exec: its own -pidfile and QMP socket
    come only after it, so nothing but the child's pidfile and lock tell."""
    e = qemu_env
    e.banger("daemon", "start")
    h = Harness(e, 0, QEMU_CREATE)
    h.all_ips_ever = set()
    argv = ["vm", "create", "--name", "qs", "--nat", *QEMU_CREATE]
    with create_killed_at_the_stall(e, shim, "before-exec", e.tmp / "stall-qemu", argv, timeout=300) as pid:
        pass
    wait_exec_or_exit(pid)
    after = e.json("vm", "show", "qs")
    assert not alive(pid), f"QEMU {pid} outlived the recovery, which left qs {after['state']}"
    bad = h.settled_check()
    assert bad == [], "\n".join(bad) + "\n--- daemon log ---\n" + e.daemon_log()[-3000:]
    assert after["state"] == "stopped", f"recovery left qs {after['state']}: {after.get('last_error')}"
    assert "before the guest booted" in (after.get("last_error") or ""), after
    e.banger("vm", "delete", "--force", "qs")


def test_launch_unidentifiable_past_the_wait_is_left_alone(env, shim):
    """A process that holds the VM's liveness lock but is still not its VMM
    when recovery's wait (5 s) ends: recovery cannot tell what runs, so it
    marks the VM error and keeps its runtime directory rather than call the
    VMM gone. (The start-up reconcile still removes its TAP and NAT rules:
    they follow live VMs only.)"""
    env.banger("daemon", "start")
    h = Harness(env, 0, FC_CREATE)
    h.all_ips_ever = set()
    argv = ["vm", "create", "--name", "sp-long", "--nat", "--cold", *FC_CREATE]
    with create_killed_at_the_stall(env, shim, "before-exec", env.tmp / "stall-long", argv, 12000) as pid:
        try:
            vm = env.json("vm", "show", "sp-long")
            assert alive(pid), "the stalled child is gone: the test proves nothing"
            assert vm["state"] == "error", f"recovery left sp-long {vm['state']} while its lock was held"
            run = h.runtime / "vms" / vm["id"]
            assert (run / "vmm.lock").exists() and (run / "fc.pid").exists(), sorted(p.name for p in run.iterdir())
        finally:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    env.banger("vm", "delete", "--force", "sp-long")
    bad = h.settled_check()
    assert bad == [], "\n".join(bad)


def make_error_vm(env, shim, name, stall_ms):
    """A VM left error by recovery while a stalled child of the killed
    daemon holds its liveness lock; returns (harness, vm, the child's pid)."""
    env.banger("daemon", "start")
    h = Harness(env, 0, FC_CREATE)
    h.all_ips_ever = set()
    argv = ["vm", "create", "--name", name, "--nat", "--cold", *FC_CREATE]
    with create_killed_at_the_stall(env, shim, "before-exec", env.tmp / f"stall-{name}", argv, stall_ms) as pid:
        pass
    vm = env.json("vm", "show", name)
    assert vm["state"] == "error", f"recovery left {name} {vm['state']} while its lock was held"
    return h, vm, pid


@pytest.mark.parametrize("verb", ["delete", "stop", "kill"])
def test_the_vmm_an_error_vm_left_is_ended(env, shim, verb):
    """The VMM recovery could not identify in time becomes identifiable
    later (the stall ends and it execs the fake Firecracker): delete, stop
    and kill of the error VM find it through the driver and end it; nothing
    is left (stop and kill leave the VM stopped). The fake never started its
    guest, so it takes no shutdown request: stop kills it at once, not after
    the timeout."""
    name = f"sp-{verb}"
    h, vm, pid = make_error_vm(env, shim, name, 12000)
    sock = h.runtime / "vms" / vm["id"] / "fc.sock"
    try:
        # Up, its API socket bound: removing its files alone would not end it.
        deadline = time.monotonic() + 60
        while not sock.exists() and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(pid) and sock.exists(), "the stalled VMM never came up: the test proves nothing"
        t0 = time.monotonic()
        p = env.banger("vm", verb, *(["--timeout", "120"] if verb == "stop" else []), name, check=False)
        took = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), f"vm {verb} left the VMM of the error VM running: {p.stdout}{p.stderr}"
        assert took < 60, f"vm {verb} took {took:.1f} s: it waited for a VMM it could not ask"
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    if verb != "delete":
        after = env.json("vm", "show", name)
        assert after["state"] == "stopped", after
    bad = h.settled_check()
    assert bad == [], "\n".join(bad)
    if verb != "delete":
        env.banger("vm", "delete", name)


def test_delete_refuses_while_an_unidentifiable_process_holds_the_lock(env, shim):
    """Still a copy of bangerd when delete asks: nothing says what it is, so
    the VM and its disks stay unless --force, which says what it left; stop
    and kill refuse it too, saying what to do."""
    h, vm, pid = make_error_vm(env, shim, "sp-held", 60000)
    run = h.runtime / "vms" / vm["id"]
    try:
        assert alive(pid), "the stalled child is gone: the test proves nothing"
        for verb in ("stop", "kill"):
            p = env.banger("vm", verb, "sp-held", check=False)
            assert p.returncode != 0, f"vm {verb} succeeded while {run}/vmm.lock was held: {p.stdout}"
            assert f"{run}/vmm.lock" in p.stderr and f"{verb} the VM again" in p.stderr, p.stderr
            assert env.json("vm", "show", "sp-held")["state"] == "error"
        p = env.banger("vm", "delete", "sp-held", check=False)
        assert p.returncode != 0, f"vm delete succeeded while {run}/vmm.lock was held: {p.stdout}"
        assert f"{run}/vmm.lock" in p.stderr and "--force" in p.stderr, p.stderr
        assert env.json("vm", "show", "sp-held")["state"] == "error"
        assert (run / "vmm.lock").exists()
        assert alive(pid), "a refused stop, kill or delete ended the process"
        p = env.banger("vm", "delete", "--force", "--json", "sp-held", check=False)
        assert p.returncode == 0, p.stderr
        # The user reads what may still run, on stderr and in the JSON result.
        assert "banger: warning: sp-held:" in p.stderr and f"{run}/vmm.lock" in p.stderr, p.stderr
        result = json.JSONDecoder().raw_decode(p.stdout.strip())[0]
        warning = result["results"][0].get("warning") or ""
        assert f"{run}/vmm.lock" in warning and "--force" in warning, p.stdout
        assert "deleted anyway" in env.daemon_log(), env.daemon_log()[-3000:]
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert env.banger("vm", "show", "sp-held", check=False).returncode != 0
    bad = h.settled_check()
    assert bad == [], "\n".join(bad)
