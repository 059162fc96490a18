"""Pause, snapshot, restore and clone on the Firecracker path, end to end:
real banger CLI, bangerd and bangerd-root in a network namespace of the
test's own, with the FAKE Firecracker (tests/fakes/fake-firecracker) standing
in for the program this machine cannot run. Its emulated guest (the real
banger-agent as PID 1 of its own namespaces) survives a snapshot and a load:
same boot id, its /tmp kept in the "memory" file. The steps share one VM."""
import json
import os
import pathlib
import shutil
import signal
import sqlite3
import stat
import subprocess
import time

import pytest

from conftest import BUILD, ROOT
from lifecycle import AGENT, BANGER, Env, kernel_dir, process_gone, require_root
from test_lifecycle_fc import build_kernel_image, fake_events, kill_netns_processes, record, requests

pytestmark = pytest.mark.slow

FAKE = ROOT / "tests/fakes/fake-firecracker"
SRC = "src"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    for tool in ("/usr/bin/unshare", "/usr/bin/setpriv", "/usr/bin/nsenter", "/usr/bin/python3"):
        if not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} is missing: the fake Firecracker's guest emulation needs it")
    e = Env(tmp_path_factory.mktemp("snapshot-fc"))
    e.fc_dir = e.tmp / "fc"
    e.fc_dir.mkdir()
    (e.fc_dir / "firecracker").symlink_to(FAKE)
    e.record = e.fc_dir / "record.jsonl"
    e.fake_opts = {"record": str(e.record), "agent": str(AGENT.resolve())}
    e.info = {}
    (e.fc_dir / "fake-firecracker.json").write_text(json.dumps(e.fake_opts))
    e.setup()
    netns = "net:[%d]" % os.stat(f"/run/netns/{e.ns}").st_ino
    try:
        e.write_config(f'default_vmm = "firecracker"\nfirecracker_bin = "{e.fc_dir / "firecracker"}"\n'
                       'boot_timeout_sec = 60\nvm_templates = false\n')
        e.image_dir, e.manifest = build_kernel_image()
        k = kernel_dir(e.tmp, e.image_dir, e.manifest)
        e.banger("kernel", "import", "testk", "--from", str(k))
        e.banger("image", "register", "--name", "test", "--rootfs", str(e.image_dir / "rootfs.ext4"),
                 "--kernel-ref", "testk")
        e.banger("vm", "create", "--name", SRC, "--image", "test", "--vcpu", "1", "--memory", "256M",
                 "--disk-size", "64M")
        yield e
    finally:
        kill_netns_processes(netns)
        e.teardown()


def show(env, name=SRC):
    return env.json("vm", "show", name)


def guest(env, name, *argv):
    return env.banger("vm", "exec", name, "--", *argv).stdout


def events(out):
    """--json output: the progress events, then the result."""
    dec, i, evs = json.JSONDecoder(), 0, []
    while i < len(out):
        if out[i].isspace():
            i += 1
            continue
        v, i = dec.raw_decode(out, i)
        evs.append(v)
    return evs


def api_socket(env, vm):
    return pathlib.Path(env.env["XDG_RUNTIME_DIR"]) / "banger/vms" / vm["id"] / "fc.sock"


def fake_state(env, vm):
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(api_socket(env, vm)))
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    reply = s.recv(4096).decode()
    s.close()
    return json.loads(reply.split("\r\n\r\n", 1)[1])["state"]


def test_pause_resume(env):
    vm = show(env)
    env.banger("vm", "pause", SRC)
    paused = show(env)
    assert paused["state"] == "paused" and paused["pid"] == vm["pid"]
    assert fake_state(env, vm) == "Paused"
    assert any(SRC in r and "paused" in r for r in env.banger("vm", "list").stdout.splitlines())
    # Twice is fine; start is refused with what to do.
    env.banger("vm", "pause", SRC)
    p = env.banger("vm", "start", SRC, check=False)
    assert p.returncode == 1 and "vm resume" in p.stderr
    env.banger("vm", "resume", SRC)
    assert show(env)["state"] == "running" and fake_state(env, vm) == "Running"
    assert guest(env, SRC, "hostname").strip() == SRC
    ev = fake_events(env, vm["pid"])
    assert [json.loads(r["body"])["state"] for r in requests(ev, "/vm")] == ["Paused", "Resumed"]


def test_snapshot_of_a_running_vm(env):
    vm = show(env)
    guest(env, SRC, "sh", "-c", "echo before > /tmp/marker")
    out = env.banger("vm", "snapshot", SRC, "--name", "s1", "--json").stdout
    evs = events(out)
    stages = [e.get("stage") for e in evs[:-1]]
    for st in ("prepare", "pause", "save", "disk", "resume", "ready"):
        assert st in stages, stages
    disk_msg = next(e["message"] for e in evs if e.get("stage") == "disk")
    assert "reflink" in disk_msg or "sparse copy" in disk_msg, disk_msg
    snap = evs[-1]
    assert snap["name"] == "s1" and snap["kind"] == "user" and snap["vm"] == SRC
    assert snap["vmm_version"] == "Firecracker v1.7.0" and snap["memory_bytes"] > 0
    d = pathlib.Path(snap["dir"])
    assert sorted(os.listdir(d)) == ["root.img", "vm.mem", "vm.state", "work.img"]
    for f in d.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    # Paused for the save, resumed after; the VM runs on.
    ev = fake_events(env, vm["pid"])
    order = [(r["path"], r["body"]) for r in ev if r["event"] == "request" and r["path"] in ("/vm", "/snapshot/create")]
    assert [p for p, _ in order[-3:]] == ["/vm", "/snapshot/create", "/vm"]
    assert "Paused" in order[-3][1] and "Resumed" in order[-1][1]
    assert show(env)["state"] == "running"
    listed = env.json("snapshot", "list")["snapshots"]
    assert [n["name"] for n in listed] == ["s1"]
    rows = env.banger("snapshot", "list").stdout.splitlines()
    assert rows[0].split()[:4] == ["NAME", "KIND", "VM", "IMAGE"] and rows[1].split()[:3] == ["s1", "user", SRC]
    shown = env.banger("snapshot", "show", "s1").stdout
    for want in ("vm:         " + SRC, "image:      test", "1 vCPU, 256", "firecracker (Firecracker v1.7.0)",
                 "saved state", "on disk", "created:"):
        assert want in shown, (want, shown)
    env.info["s1"] = snap
    env.info["boot_id"] = vm["boot_id"]


def test_doctor_shows_templates_and_snapshot_use(env):
    rows = json.loads(env.banger("--json", "doctor", check=False).stdout)
    row = next(r for r in rows if r["check"] == "templates")
    assert row["status"] == "PASS" and row["details"][0].startswith("off"), row  # vm_templates = false here
    assert "0 template(s)" in row["details"][0] and "1 snapshot(s)" in row["details"][0], row


def test_restore_in_place(env):
    guest(env, SRC, "sh", "-c", "echo after > /tmp/marker")
    old = show(env)
    out = env.banger("vm", "restore", SRC, "s1", "--json").stdout
    vm = events(out)[-1]
    assert vm["name"] == SRC and vm["state"] == "running" and vm["pid"] != old["pid"]
    assert vm["ip"] == old["ip"] and vm["tap"] == old["tap"] and vm["mac"] == old["mac"]
    # The same guest as at the snapshot: its boot and its /tmp.
    assert vm["boot_id"] == env.info["boot_id"]
    assert guest(env, SRC, "cat", "/tmp/marker") == "before\n"
    ev = fake_events(env, vm["pid"])
    load = json.loads(requests(ev, "/snapshot/load")[0]["body"])
    assert load["network_overrides"] == [{"iface_id": "eth0", "host_dev_name": vm["tap"]}]
    assert load["vsock_override"]["uds_path"].endswith(f"/vms/{vm['id']}/v.sock")
    assert load["resume_vm"] is False
    assert not requests(ev, "/boot-source") and not requests(ev, "/actions")
    assert process_gone(old["pid"])


def test_clone_from_snapshot(env):
    src = show(env)
    out = env.banger("vm", "create", "--from-snapshot", "s1", "--name", "c1", "--json").stdout
    evs = events(out)
    vm = evs[-1]["vm"]
    ident = [e["message"] for e in evs if e.get("stage") == "identity"]
    assert ident and "the guest is now c1" in ident[0], evs
    assert vm["state"] == "running" and vm["name"] == "c1"
    assert vm["ip"] != src["ip"] and vm["mac"] != src["mac"] and vm["tap"] != src["tap"]
    assert vm["vcpu"] == 1 and vm["memory_mib"] == 256 and vm["image"] == "test"
    ev = fake_events(env, vm["pid"])
    load = json.loads(requests(ev, "/snapshot/load")[0]["body"])
    assert load["network_overrides"] == [{"iface_id": "eth0", "host_dev_name": vm["tap"]}]
    assert load["vsock_override"]["uds_path"].endswith(f"/vms/{vm['id']}/v.sock")
    assert guest(env, "c1", "cat", "/tmp/marker") == "before\n"
    # It took its own identity inside: hostname, MAC, address, route.
    assert guest(env, "c1", "hostname").strip() == "c1"
    link = guest(env, "c1", "ip", "-o", "link", "show", "eth0")
    addr = guest(env, "c1", "ip", "-o", "-4", "addr", "show", "eth0")
    assert vm["mac"] in link and f"{vm['ip']}/" in addr and f"{src['ip']}/" not in addr, (link, addr)
    assert "default via" in guest(env, "c1", "ip", "route")
    # The source runs on with its own.
    assert guest(env, SRC, "hostname").strip() == SRC
    # Its disks are its own copies.
    assert (env.state / "vms" / vm["id"] / "root.img").is_file()
    env.banger("vm", "delete", "c1")


def test_clone_option_conflicts(env):
    p = env.banger("vm", "create", "--from-snapshot", "s1", "--vcpu", "2", check=False)
    assert p.returncode == 2 and "--from-snapshot" in p.stderr
    p = env.banger("vm", "create", "--from-snapshot", "nope", check=False)
    assert p.returncode == 1 and "no snapshot named" in p.stderr


def test_dependents_refuse_deletion(env):
    p = env.banger("vm", "delete", SRC, check=False)
    assert p.returncode == 1 and "s1" in p.stderr and "--force" in p.stderr
    assert show(env)["state"] == "running"  # refused before anything was done
    p = env.banger("image", "delete", "test", check=False)
    assert p.returncode == 1 and "s1" in p.stderr
    p = env.banger("vm", "restore", SRC, "nope", check=False)
    assert p.returncode == 1 and "no snapshot" in p.stderr


def test_snapshot_of_a_stopped_vm_is_refused(env):
    env.banger("vm", "stop", SRC)
    p = env.banger("vm", "snapshot", SRC, check=False)
    assert p.returncode == 1 and "stopped" in p.stderr
    assert [n["name"] for n in env.json("snapshot", "list")["snapshots"]] == ["s1"]
    env.banger("vm", "start", SRC)


def test_snapshot_with_stop(env):
    vm = show(env)
    out = env.banger("vm", "snapshot", SRC, "--name", "s2", "--stop", "--json").stdout
    evs = events(out)
    assert "stop" in [e.get("stage") for e in evs[:-1]] and evs[-1]["name"] == "s2"
    after = show(env)
    assert after["state"] == "stopped" and after["pid"] is None
    # Stopped the graceful way: the guest powered off after the save.
    ev = fake_events(env, vm["pid"])
    assert any(e["event"] == "guest-exit" for e in ev)
    env.banger("snapshot", "delete", "s2")
    env.banger("vm", "start", SRC)


def test_daemon_killed_mid_snapshot_leaves_nothing(env):
    """The fake's /snapshot/create takes 3 s: the daemon is SIGKILLed while
    it waits. The next daemon removes the half-made snapshot and resumes the
    VM the snapshot had paused."""
    vm = show(env)
    cfg = env.fc_dir / "fake-firecracker.json"
    cfg.write_text(json.dumps(dict(env.fake_opts, snapshot_delay_ms=3000)))
    # Options are read when a fake starts: restart the VM under the new ones.
    env.banger("vm", "stop", SRC)
    env.banger("vm", "start", SRC)
    cfg.write_text(json.dumps(env.fake_opts))
    vm = show(env)
    daemon_pid = env.json("daemon", "status")["pid"]
    p = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "snapshot", SRC, "--name", "cut"],
                         env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The fake records a request once answered: the pause comes right
    # before the slow create.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any("Paused" in r["body"] for r in
                                                  requests(fake_events(env, vm["pid"]), "/vm")):
        time.sleep(0.05)
    time.sleep(1)
    assert not requests(fake_events(env, vm["pid"]), "/snapshot/create")  # still in it
    os.kill(daemon_pid, signal.SIGKILL)
    p.wait(30)
    assert p.returncode != 0
    assert [n["name"] for n in env.json("snapshot", "list")["snapshots"]] == ["s1"]  # a new daemon
    assert sorted(os.listdir(env.state / "snapshots")) == [env.info["s1"]["id"]]
    after = show(env)
    assert after["state"] == "running" and after["pid"] == vm["pid"]
    time.sleep(3)  # the fake finishes its slow create, then the VM must be running
    assert fake_state(env, after) == "Running"
    assert "was interrupted" in env.daemon_log()


def test_warm_start_falls_back_to_cold(env):
    """Templates on: the first create of a shape boots and leaves a template;
    a template whose state cannot be loaded makes the next create boot cold
    and say why, with no VMM of the failed restore left."""
    cfg = env.tmp / "config/banger/config.toml"
    cfg.write_text(cfg.read_text().replace("vm_templates = false", "vm_templates = true"))
    env.banger("daemon", "stop")
    shape = ("--image", "test", "--vcpu", "2", "--memory", "256M", "--disk-size", "64M")
    env.banger("vm", "create", "--name", "w1", *shape)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tpl = [n for n in env.json("snapshot", "list")["snapshots"] if n["kind"] == "template"]
        if tpl:
            break
        time.sleep(0.2)
    assert tpl and tpl[0]["vm"] == "w1" and tpl[0]["vm_id"] is None, env.daemon_log()[-3000:]
    env.banger("vm", "delete", "w1")  # a template does not depend on its VM
    warm = env.banger("vm", "create", "--name", "w2", *shape)
    assert "warm start from template" in warm.stderr, warm.stderr
    env.banger("vm", "delete", "w2")
    (pathlib.Path(tpl[0]["dir"]) / "vm.state").write_text("garbage")
    before = {e["pid"] for e in record(env) if e["event"] == "bind"}
    cold = env.banger("vm", "create", "--name", "w3", *shape)
    assert "booting cold instead" in cold.stderr and "Load snapshot error" in cold.stderr, cold.stderr
    # The broken template is gone; a new one is taken of the VM that booted.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tpl2 = [n for n in env.json("snapshot", "list")["snapshots"] if n["kind"] == "template"]
        if tpl2 and tpl2[0]["id"] != tpl[0]["id"]:
            break
        time.sleep(0.2)
    assert tpl2 and tpl2[0]["id"] != tpl[0]["id"] and tpl2[0]["vm"] == "w3", tpl2
    assert not pathlib.Path(tpl[0]["dir"]).exists()
    vm = show(env, "w3")
    assert vm["state"] == "running" and vm["ready"]["agent"]
    # The fake that failed the load is gone.
    failed = [e["pid"] for e in record(env) if e["event"] == "bind" and e["pid"] not in before and e["pid"] != vm["pid"]]
    assert failed and all(process_gone(p) for p in failed)
    env.banger("vm", "delete", "w3")
    assert env.json("snapshot", "prune")["deleted"] == [tpl2[0]["name"]]


def test_force_delete_takes_snapshots(env):
    snap_dir = pathlib.Path(env.info["s1"]["dir"])
    env.banger("vm", "delete", "--force", SRC)
    assert env.json("snapshot", "list")["snapshots"] == []
    assert not snap_dir.exists()
    assert os.listdir(env.state / "snapshots") == []



def test_paused_vm_stops_kills_and_deletes(env):
    """stop, kill and delete each work on a paused VM, and leave no VMM."""
    env.banger("vm", "create", "--name", "p1", "--cold", "--image", "test", "--vcpu", "1", "--memory", "256M",
               "--disk-size", "64M")
    for verb in ("stop", "kill"):
        env.banger("vm", "pause", "p1")
        vm = show(env, "p1")
        assert vm["state"] == "paused"
        env.banger("vm", verb, "p1", timeout=120)
        after = show(env, "p1")
        assert after["state"] == "stopped" and after["pid"] is None, (verb, after)
        assert process_gone(vm["pid"]), verb
        env.banger("vm", "start", "p1")
    env.banger("vm", "pause", "p1")
    vm = show(env, "p1")
    env.banger("vm", "delete", "p1", timeout=120)
    assert "p1" not in [v["name"] for v in env.json("vm", "list")["vms"]]
    assert process_gone(vm["pid"]) and not (env.state / "vms" / vm["id"]).exists()


def test_clone_of_a_snapshot_missing_a_disk_fails_clearly(env):
    """A snapshot whose disk copy went missing: a clone of it and a restore
    from it fail naming the file, and leave nothing behind."""
    env.banger("vm", "create", "--name", "m1", "--cold", "--image", "test", "--vcpu", "1", "--memory", "256M",
               "--disk-size", "64M")
    snap = events(env.banger("vm", "snapshot", "m1", "--name", "miss", "--json").stdout)[-1]
    (pathlib.Path(snap["dir"]) / "root.img").unlink()
    vms = sorted(os.listdir(env.state / "vms"))
    p = env.banger("vm", "create", "--from-snapshot", "miss", "--name", "m2", check=False)
    print(p.stderr.strip().splitlines()[-1])
    assert p.returncode == 1 and "miss" in p.stderr and "root.img" in p.stderr, p.stderr
    assert "m2" not in [v["name"] for v in env.json("vm", "list")["vms"]]
    assert sorted(os.listdir(env.state / "vms")) == vms
    old = show(env, "m1")
    p = env.banger("vm", "restore", "m1", "miss", check=False)
    assert p.returncode == 1 and "root.img" in p.stderr, p.stderr
    # Refused before anything of the VM changed: it runs on, as it was.
    after = show(env, "m1")
    assert after["state"] == "running" and after["pid"] == old["pid"], after
    assert guest(env, "m1", "hostname").strip() == "m1"
    env.banger("vm", "delete", "--force", "m1")
    assert not pathlib.Path(snap["dir"]).exists()


@pytest.mark.parametrize("size,why", [("8k", "VMM error"), ("1m", "disk copy")])
def test_snapshot_on_a_full_disk_leaves_nothing(env, size, why):
    """The snapshots directory on a tiny tmpfs: with 8 KiB the VMM fails to
    write its state, with 1 MiB the disk copies run out of space. Either way
    no snapshot is listed, no file is left, and the VM runs on."""
    env.banger("vm", "create", "--name", "f1", "--cold", "--image", "test", "--vcpu", "1", "--memory", "256M",
               "--disk-size", "64M")
    env.banger("snapshot", "prune")  # no template either: the directory must be empty to mount over it
    snaps = env.state / "snapshots"
    snaps.mkdir(mode=0o700, exist_ok=True)
    assert os.listdir(snaps) == []
    # In the daemon's mount namespace (ip netns exec made it one of its own).
    ns = ["nsenter", "-t", str(env.json("daemon", "status")["pid"]), "-m", "--"]
    subprocess.run([*ns, "mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "bgt-full", str(snaps)], check=True)
    try:
        p = env.banger("vm", "snapshot", "f1", "--name", "full", "--json", check=False)
        print(why, p.stderr.strip().splitlines()[-1])
        assert p.returncode == 1 and "space" in p.stderr.lower(), (why, p.stderr)
        assert env.json("snapshot", "list")["snapshots"] == []
        assert subprocess.run([*ns, "ls", "-A", str(snaps)], capture_output=True, text=True).stdout == ""
    finally:
        subprocess.run([*ns, "umount", str(snaps)], check=True)
    vm = show(env, "f1")
    assert vm["state"] == "running" and fake_state(env, vm) == "Running"
    assert guest(env, "f1", "hostname").strip() == "f1"
    env.banger("vm", "delete", "f1")


def test_vmm_upgrade_drops_templates_and_refuses_old_snapshots(env):
    """Another Firecracker version: a template made by the old one is stale
    (dropped, the create boots cold), and a clone of a user snapshot it saved
    is refused before any VMM starts, naming both versions."""
    cfg = env.tmp / "config/banger/config.toml"
    cfg.write_text(cfg.read_text().replace("vm_templates = false", "vm_templates = true"))
    env.banger("daemon", "stop")
    env.banger("snapshot", "prune")
    shape = ("--image", "test", "--vcpu", "2", "--memory", "256M", "--disk-size", "64M")
    env.banger("vm", "create", "--name", "u1", *shape)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tpl = [n for n in env.json("snapshot", "list")["snapshots"] if n["kind"] == "template"]
        if tpl:
            break
        time.sleep(0.2)
    assert tpl, env.daemon_log()[-3000:]
    env.banger("vm", "snapshot", "u1", "--name", "old")
    fake_cfg = env.fc_dir / "fake-firecracker.json"
    fake_cfg.write_text(json.dumps(dict(env.fake_opts, version="1.8.0")))
    try:
        binds = len([e for e in record(env) if e["event"] == "bind"])
        p = env.banger("vm", "create", "--from-snapshot", "old", "--name", "u2", check=False)
        assert p.returncode == 1 and "1.7.0" in p.stderr and "1.8.0" in p.stderr, p.stderr
        assert len([e for e in record(env) if e["event"] == "bind"]) == binds  # no VMM was started
        assert "u2" not in [v["name"] for v in env.json("vm", "list")["vms"]]
        cold = env.banger("vm", "create", "--name", "u3", *shape)
        assert "stale" in cold.stderr and "warm start" not in cold.stderr, cold.stderr
        assert not pathlib.Path(tpl[0]["dir"]).exists()
    finally:
        fake_cfg.write_text(json.dumps(env.fake_opts))
    env.banger("vm", "delete", "--force", "u1", "u3")
    env.banger("snapshot", "prune")


def wait_template(env, other=None):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tpl = [n for n in env.json("snapshot", "list")["snapshots"] if n["kind"] == "template" and n["id"] != other]
        if tpl:
            return tpl[0]
        time.sleep(0.2)
    raise AssertionError("no template was made:\n" + env.daemon_log()[-3000:])


def test_agent_or_banger_change_drops_templates(env):
    """A template is made from one agent and one banger build: a daemon that
    would put another agent in its guests (a rebuilt banger-agent beside it)
    drops the template and boots cold, then warms from the new one; a template
    recorded by another banger version (the database kept across an upgrade)
    is dropped the same way."""
    cfg = env.tmp / "config/banger/config.toml"
    cfg.write_text(cfg.read_text().replace("vm_templates = false", "vm_templates = true"))
    env.banger("daemon", "stop")
    env.banger("snapshot", "prune")
    shape = ("--image", "test", "--vcpu", "2", "--memory", "256M", "--disk-size", "64M")
    env.banger("vm", "create", "--name", "a1", *shape)
    tpl = wait_template(env)
    env.banger("vm", "delete", "a1")
    # The same daemon binary, relocated beside a rebuilt agent (one byte more).
    alt = env.tmp / "alt"
    (alt / "daemon").mkdir(parents=True)
    (alt / "agent").mkdir()
    (alt / "helper").mkdir()
    (alt / "helper/bangerd-root").symlink_to(BUILD / "src/helper/bangerd-root")
    shutil.copy2(BUILD / "src/daemon/bangerd", alt / "daemon/bangerd")
    shutil.copy2(AGENT, alt / "agent/banger-agent")
    with open(alt / "agent/banger-agent", "ab") as f:
        f.write(b"\0")
    env.banger("daemon", "stop")
    env.env["BANGER_BANGERD"] = str(alt / "daemon/bangerd")
    try:
        cold = env.banger("vm", "create", "--name", "a2", *shape)
        assert "stale" in cold.stderr and "warm start" not in cold.stderr, cold.stderr
        assert not pathlib.Path(tpl["dir"]).exists()
        tpl2 = wait_template(env, other=tpl["id"])
        env.banger("vm", "delete", "a2")
        warm = env.banger("vm", "create", "--name", "a3", *shape)  # the same agent again: warm
        assert "warm start from template" in warm.stderr, warm.stderr
        env.banger("vm", "delete", "a3")
    finally:
        env.banger("daemon", "stop")
        del env.env["BANGER_BANGERD"]
    # Back to the build's own agent: stale again; then a template recorded by
    # banger 0.0.1 (as a database kept across an upgrade holds it) is dropped.
    cold = env.banger("vm", "create", "--name", "a4", *shape)
    assert "stale" in cold.stderr, cold.stderr
    tpl3 = wait_template(env, other=tpl2["id"])
    env.banger("vm", "delete", "a4")
    env.banger("daemon", "stop")
    con = sqlite3.connect(env.state / "banger.db")
    with con:
        n = con.execute("UPDATE snapshots SET fingerprint = replace(fingerprint, ';banger=', ';banger=0.0.1-old') "
                        "WHERE id = ?", (tpl3["id"],)).rowcount
    con.close()
    assert n == 1
    cold = env.banger("vm", "create", "--name", "a5", *shape)
    assert "stale" in cold.stderr and "warm start" not in cold.stderr, cold.stderr
    assert not pathlib.Path(tpl3["dir"]).exists()
    env.banger("vm", "delete", "--force", "a5")
    env.banger("snapshot", "prune")
