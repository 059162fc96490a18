"""Suspend and resume with a real QEMU guest (the test image with
banger-agent, TCG here): a guest running a counter is suspended (its QEMU
process gone, state `suspended`, the saved state in the VM's directory) and
resumed by `vm start`: the counter goes on from where it was, same address,
same process; the resume only steps the guest's clock and reseeds it (the
light identity request), leaving its hostname and address. Stop, kill and delete of a suspended VM; a suspended VM
survives a daemon restart; a changed QEMU version boots cold and says why;
a daemon killed while suspending leaves a running or a suspended VM, and
so does one stopped (BANGER_TEST_STALL) and killed once the state is saved
or once the VM is recorded suspended; a simulated host reboot leaves a
suspended VM suspended (it resumes, its counter going on) and a running one
stopped; an idle timeout suspends the VM and a vm exec wakes it; an open
ssh session keeps it from being idle; a connection to a forwarded port
wakes it too, and so does a DNS lookup of its name. One guest is shared by the steps, which run in
order."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BUILD
from lifecycle import BANGER, process_gone
from qemulib import qemu_env
from test_port_forward_fc import PAGE, curl, listening, serve_page
from test_snapshot_qemu import COUNTER
from test_snapshot_qemu import counter_pid as snapshot_counter_pid
from test_snapshot_qemu import qemu_pids as snapshot_qemu_pids

pytestmark = [pytest.mark.slow, pytest.mark.root]

VM = "qsus"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from qemu_env(tmp_path_factory, "suspend-qemu", VM)


def show(env, name=VM):
    return env.json("vm", "show", name)


def guest(env, script, name=VM, check=True):
    return env.banger("vm", "exec", name, "--", "sh", "-c", script, check=check)


def qemu_pids(vm_id):
    return snapshot_qemu_pids(None, vm_id)


def counter_pid(env):
    return snapshot_counter_pid(env, VM)


def counter(env):
    # The counter's `echo > file` truncates before it writes: a read can fall between.
    for _ in range(20):
        out = guest(env, "cat /root/counter").stdout
        if out.strip():
            return int(out)
        time.sleep(0.1)
    raise AssertionError("/root/counter stays empty")


def vm_dir(env, vm):
    return env.state / "vms" / vm["id"]


def suspend(env, name=VM):
    t0 = time.monotonic()
    out = env.banger("vm", "suspend", name).stdout
    return out, time.monotonic() - t0


def test_suspend_and_resume_keep_processes_and_files(env):
    guest(env, COUNTER + " echo kept > /root/file; sync")
    time.sleep(2)
    before = show(env)
    pid = counter_pid(env)
    assert pid, "the counter did not start"
    out, took = suspend(env)
    assert out == f"suspended {VM}\n", out
    assert (vm_dir(env, before) / "root.img").exists()  # the disks stay in place
    after = show(env)
    assert after["state"] == "suspended" and after["pid"] is None and after["ip"] == before["ip"]
    assert qemu_pids(before["id"]) == [], "QEMU still runs"
    saved = vm_dir(env, before) / "suspend"
    assert sorted(os.listdir(saved)) == ["suspend.json", "vm.state"]
    meta = json.loads((saved / "suspend.json").read_text())
    assert meta["vmm_version"].startswith("QEMU emulator version") and meta["state_bytes"] > 0
    print(f"vm suspend took {took:.2f} s, {meta['state_bytes'] >> 20} MiB")
    assert env.json("vm", "list")["vms"][0]["state"] == "suspended"
    plain = env.banger("vm", "list").stdout
    assert "suspended" in plain, plain
    # Asleep: the counter does not move.
    time.sleep(3)
    t0, logged = time.monotonic(), len(env.daemon_log())
    env.banger("vm", "start", VM)
    print(f"vm start (resume) took {time.monotonic() - t0:.2f} s; the daemon's log of it:")
    for line in env.daemon_log()[logged:].splitlines():
        print("  " + line)
    now = show(env)
    assert now["state"] == "running" and now["ip"] == before["ip"] and now["boot_id"] == before["boot_id"]
    assert not saved.exists() and not (vm_dir(env, before) / "suspend.tmp").exists()
    deadline = time.monotonic() + 30  # deleted after the reply
    while (vm_dir(env, before) / "suspend.old").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (vm_dir(env, before) / "suspend.old").exists()
    assert counter_pid(env) == pid
    c1 = counter(env)
    time.sleep(2.5)
    c2 = counter(env)
    assert c2 > c1, (c1, c2)
    assert guest(env, "cat /root/file").stdout == "kept\n"


def test_resume_steps_the_clock_and_keeps_identity(env):
    """A resume of the same VM sends the agent the light request (clock and
    entropy only): the guest's clock, set back years before the suspend, is
    the host's again; its hostname, address and MAC are unchanged."""
    before = show(env)
    ident = "hostname; ip -o -4 addr show; cat /sys/class/net/*/address"
    was = guest(env, ident).stdout
    guest(env, "date -u -s '2001-01-01 00:00:00' >/dev/null")
    assert int(guest(env, "date +%s").stdout) < 1e9
    suspend(env)
    logged = len(env.daemon_log())
    env.banger("vm", "start", VM)
    log = env.daemon_log()[logged:]
    assert "identity: resumed in place: clock stepped, random generator reseeded" in log, log
    assert "the guest is now" not in log, log
    skew = int(guest(env, "date +%s").stdout) - time.time()
    assert abs(skew) < 30, f"the guest's clock is {skew:.0f} s off the host's"
    assert guest(env, ident).stdout == was
    assert show(env)["ip"] == before["ip"] and show(env)["mac"] == before["mac"]


def test_suspend_twice_and_refusals(env):
    suspend(env)
    out = env.banger("vm", "suspend", VM).stdout
    assert out == f"{VM} is already suspended\n", out
    p = env.banger("vm", "kill", "--signal", "TERM", VM, check=False)
    assert p.returncode == 1 and "suspended" in p.stderr, p.stderr
    p = env.banger("vm", "set", VM, "--memory", "512M", check=False)
    assert p.returncode != 0
    env.banger("vm", "start", VM)
    assert show(env)["state"] == "running"


def test_suspended_vm_survives_a_daemon_restart(env):
    vm = show(env)
    pid = counter_pid(env)
    suspend(env)
    env.banger("daemon", "stop")
    assert show(env)["state"] == "suspended"  # a new daemon
    assert qemu_pids(vm["id"]) == []
    env.banger("vm", "start", VM)
    assert counter_pid(env) == pid and show(env)["boot_id"] == vm["boot_id"]


def test_stop_of_a_suspended_vm_discards_its_state(env):
    vm = show(env)
    suspend(env)
    out = env.banger("vm", "stop", VM).stdout
    assert "stopped" in out and "discarded" in out, out
    assert show(env)["state"] == "stopped"
    assert not (vm_dir(env, vm) / "suspend").exists()
    env.banger("vm", "start", VM)
    assert show(env)["boot_id"] != vm["boot_id"]  # a cold boot
    assert counter_pid(env) == []


def test_other_qemu_version_boots_cold(env):
    vm = show(env)
    suspend(env)
    meta = vm_dir(env, vm) / "suspend" / "suspend.json"
    m = json.loads(meta.read_text())
    m["vmm_version"] = "QEMU emulator version 6.2.0"
    meta.write_text(json.dumps(m))
    p = env.banger("vm", "start", VM, "--json")
    assert show(env)["state"] == "running"
    assert show(env)["boot_id"] != vm["boot_id"]
    assert "6.2.0" in env.daemon_log() and "booting cold" in env.daemon_log()
    assert not (vm_dir(env, vm) / "suspend").exists()
    assert p.returncode == 0


def test_daemon_killed_while_suspending(env):
    """SIGKILL the daemon once the state file is being written: the next
    daemon finds the VM running (its suspend undone) or suspended, never
    neither, and it answers after a start."""
    guest(env, COUNTER)
    vm = show(env)
    pid = counter_pid(env)
    daemon = env.json("daemon", "status")["pid"]
    tmp = vm_dir(env, vm) / "suspend.tmp"
    p = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "suspend", VM], env=env.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not tmp.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(daemon, signal.SIGKILL)
    p.wait(60)
    state = show(env)["state"]  # a new daemon
    assert state in ("running", "suspended"), state
    print(f"daemon killed mid-suspend: the VM is {state}")
    assert not tmp.exists()
    if state == "running":
        assert qemu_pids(vm["id"]) == [vm["pid"]]
    else:
        assert qemu_pids(vm["id"]) == []
        env.banger("vm", "start", VM)
    assert counter_pid(env) == pid
    c1 = counter(env)
    time.sleep(2.5)
    assert counter(env) > c1


def daemon_with_stall(env, point):
    """A bangerd of our own (the CLI gives the one it starts a clean
    environment) that stops for good at `point` of a suspend."""
    env.banger("daemon", "stop")
    sock = env.rt / "banger" / "bangerd.sock"
    p = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BUILD / "src/daemon/bangerd")],
                         env=dict(env.env, BANGER_TEST_STALL=point), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not sock.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sock.exists(), "the daemon did not start"
    return p


def kill_stalled_suspend(env, point):
    """vm suspend through a daemon that stalls at `point`, SIGKILLed there."""
    daemon = daemon_with_stall(env, point)
    client = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "suspend", VM], env=env.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while f"stalled at '{point}'" not in env.daemon_log() and time.monotonic() < deadline:
        assert client.poll() is None, client.communicate()
        time.sleep(0.05)
    assert f"stalled at '{point}'" in env.daemon_log(), env.daemon_log()[-3000:]
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(60)
    client.wait(60)


def assert_suspended_and_released(env, vm):
    """As a plain vm suspend leaves it: the complete state, no VMM, no TAP,
    no runtime directory, no partial state."""
    now = show(env)
    assert now["state"] == "suspended" and now["pid"] is None, now
    assert qemu_pids(vm["id"]) == []
    assert sorted(os.listdir(vm_dir(env, vm) / "suspend")) == ["suspend.json", "vm.state"]
    assert not (vm_dir(env, vm) / "suspend.tmp").exists()
    assert vm["tap"] not in {l["ifname"] for l in env.links()}
    assert not (env.rt / "banger" / "vms" / vm["id"]).exists()


def ensure_counter(env):
    if not counter_pid(env):
        guest(env, COUNTER)
    pid = counter_pid(env)
    assert pid, "the counter did not start"
    return pid


def assert_counting(env, pid):
    assert counter_pid(env) == pid
    c1 = counter(env)
    time.sleep(2.5)
    c2 = counter(env)
    assert c2 > c1, (c1, c2)


def test_daemon_killed_once_the_state_is_saved(env):
    """Killed after the state was complete in suspend/ but before the VM
    was recorded suspended: the next daemon finds it running, with the
    saved state gone and the guest no longer paused by the save."""
    vm = show(env)
    pid = ensure_counter(env)
    kill_stalled_suspend(env, "suspend-saved")
    now = show(env)  # a new daemon
    assert now["state"] == "running" and now["pid"] == vm["pid"], now
    assert qemu_pids(vm["id"]) == [vm["pid"]]
    assert not (vm_dir(env, vm) / "suspend").exists() and not (vm_dir(env, vm) / "suspend.tmp").exists()
    assert_counting(env, pid)


def test_daemon_killed_once_recorded_suspended(env):
    """Killed after the VM was recorded suspended, before its VMM was
    killed: the next daemon kills the VMM and releases what a suspend
    releases; the VM resumes from its state."""
    vm = show(env)
    pid = ensure_counter(env)
    kill_stalled_suspend(env, "suspend-recorded")
    assert qemu_pids(vm["id"]) == [vm["pid"]]  # the stalled daemon had not killed it
    assert_suspended_and_released(env, vm)  # a new daemon's recovery did
    assert "still ran; killing it" in env.daemon_log()
    env.banger("vm", "start", VM)
    assert show(env)["boot_id"] == vm["boot_id"]
    assert_counting(env, pid)


def simulate_host_reboot(env):
    """Every process of the test's namespace dies (bangerd, bangerd-root,
    the VMMs), the runtime directory empties (a tmpfs), and the network a
    boot would not have is gone: TAPs, bridge, nftables."""
    netns = "net:[%d]" % os.stat(f"/run/netns/{env.ns}").st_ino
    pids = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.readlink(f"/proc/{d}/ns/net") == netns:
                os.kill(int(d), signal.SIGKILL)
                pids.append(int(d))
        except OSError:
            pass
    deadline = time.monotonic() + 60
    while not all(process_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(process_gone(p) for p in pids), pids
    for entry in os.listdir(env.rt):
        shutil.rmtree(env.rt / entry, ignore_errors=True)
    for link in env.links():
        if link["ifname"] not in ("lo", "uplink0"):
            env.in_ns("ip", "link", "del", link["ifname"], check=False)
    env.in_ns("nft", "flush", "ruleset")


def test_suspended_vm_survives_a_host_reboot(env):
    vm = show(env)
    pid = ensure_counter(env)
    suspend(env)
    simulate_host_reboot(env)
    assert_suspended_and_released(env, vm)  # a new daemon
    env.banger("vm", "start", VM)
    now = show(env)
    assert now["state"] == "running" and now["boot_id"] == vm["boot_id"] and now["ip"] == vm["ip"], now
    assert vm["tap"] in {l["ifname"] for l in env.links()}
    assert_counting(env, pid)


def test_running_vm_is_stopped_by_a_host_reboot(env):
    vm = show(env)
    simulate_host_reboot(env)
    now = show(env)  # a new daemon
    assert now["state"] == "stopped" and now["pid"] is None, now
    assert vm["tap"] not in {l["ifname"] for l in env.links()}
    assert not (vm_dir(env, vm) / "suspend").exists()
    env.banger("vm", "start", VM)
    now = show(env)
    assert now["state"] == "running" and now["boot_id"] != vm["boot_id"], now
    assert counter_pid(env) == []  # a cold boot


def wait_state(env, want, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = show(env)["state"]  # vm show is not a use of the VM
        if state == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"{VM} is {state}, not {want}, after {timeout} s")


def test_idle_timeout_suspends_and_exec_wakes(env):
    """An idle timeout of 5 s with suspend: nobody uses the VM, the daemon
    suspends it; the next vm exec resumes it, the counter goes on."""
    if not counter_pid(env):
        guest(env, COUNTER)
    pid = counter_pid(env)
    vm = env.json("vm", "set", VM, "--idle-timeout", "5s", "--idle-action", "suspend")
    assert vm["idle"] == {"timeout_sec": 5, "action": "suspend"} and vm["idle_timeout_sec"] == 5, vm
    assert "idle:       suspend after 5s without use" in env.banger("vm", "show", VM).stdout
    t0 = time.monotonic()
    wait_state(env, "suspended")
    print(f"suspended for idleness {time.monotonic() - t0:.1f} s after the last use")
    assert time.monotonic() - t0 >= 4
    assert qemu_pids(vm["id"]) == []
    assert "not used for" in env.daemon_log()
    c1 = counter(env)  # a vm exec: wakes it
    assert show(env)["state"] == "running"
    env.banger("vm", "set", VM, "--idle-timeout", "off")
    assert counter_pid(env) == pid
    time.sleep(2.5)
    assert counter(env) > c1
    after = show(env)
    assert after["idle"]["timeout_sec"] == 0 and after["last_used_at"], after


def test_open_ssh_session_counts_as_use(env):
    """An idle timeout of 5 s: a vm ssh session open for 20 s (doing
    nothing the daemon sees: ssh talks to the guest's address directly)
    keeps the VM running; once it ends, the VM is suspended."""
    env.banger("vm", "set", VM, "--idle-timeout", "5s", "--idle-action", "suspend")
    session = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "ssh", VM, "--", "sleep", "20"],
                               env=env.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        while session.poll() is None:
            assert show(env)["state"] == "running", "suspended under an open ssh session"
            time.sleep(0.5)
        assert session.returncode == 0, session.communicate()
        t0 = time.monotonic()
        wait_state(env, "suspended")
        print(f"suspended {time.monotonic() - t0:.1f} s after the ssh session ended")
    finally:
        if session.poll() is None:
            session.kill()
        env.banger("vm", "set", VM, "--idle-timeout", "off")
    env.banger("vm", "start", VM)


def test_forwarded_connection_wakes_a_suspended_vm(env):
    """Its forwarded host port stays bound while it sleeps; a connection to
    it resumes the VM and is served, late but not refused."""
    env.banger("vm", "port", "add", VM, "18090:8000")
    serve_page(env, VM)
    assert curl(env, "http://127.0.0.1:18090/").stdout.decode() == PAGE
    suspend(env)
    assert show(env)["state"] == "suspended"
    assert listening(env, 18090)
    env.banger("vm", "port", "add", VM, "18091:8000")  # added while it sleeps: bound too
    assert listening(env, 18091)
    t0 = time.monotonic()
    assert curl(env, "http://127.0.0.1:18091/", timeout=120).stdout.decode() == PAGE
    print(f"a forwarded connection to the suspended VM was served after {time.monotonic() - t0:.2f} s")
    wait_state(env, "running")  # served once the agent answers: the start may still be finishing
    assert "a connection to a forwarded port wakes it" in env.daemon_log()
    assert curl(env, "http://127.0.0.1:18090/").stdout.decode() == PAGE
    env.banger("vm", "stop", VM)
    assert not listening(env, 18090) and not listening(env, 18091)
    env.banger("vm", "start", VM)


DNS_QUERY = r"""
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[1].split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, ("127.0.0.1", 5354))
r = s.recv(512)
print(socket.inet_ntoa(r[-4:]) if struct.unpack(">H", r[6:8])[0] else "no answer")
"""


def test_dns_lookup_wakes_a_suspended_vm(env):
    """<name>.vm of a suspended VM is answered with its address (kept while
    it sleeps) and the VM resumes, so an `ssh NAME.vm` through the daemon's
    DNS finds it running after a SYN or two."""
    vm = show(env)
    pid = ensure_counter(env)
    suspend(env)
    t0 = time.monotonic()
    assert env.in_ns("/usr/bin/python3", "-c", DNS_QUERY, f"{VM}.vm").stdout.strip() == vm["ip"]
    wait_state(env, "running")
    print(f"a DNS lookup woke the suspended VM: running {time.monotonic() - t0:.2f} s later")
    assert "a DNS lookup of its name wakes it" in env.daemon_log()
    assert_counting(env, pid)
    assert env.in_ns("/usr/bin/python3", "-c", DNS_QUERY, "nosuchvm.vm").stdout.strip() == "no answer"


def test_delete_of_a_suspended_vm(env):
    vm = show(env)
    suspend(env)
    env.banger("vm", "delete", VM)
    assert not vm_dir(env, vm).exists()
    assert VM not in env.banger("vm", "list").stdout
