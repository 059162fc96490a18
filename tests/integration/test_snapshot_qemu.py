"""Snapshots with real QEMU guests (the test image with banger-agent, TCG
here): snapshot a running guest, change it, restore it and find the change
undone and a process started before the snapshot still counting; a
corrupt state file, another QEMU version and a daemon killed mid-snapshot,
each failing clearly with nothing left; warm starts from templates. One
guest is shared by the steps, which run in order."""
import os
import pathlib
import shutil
import signal
import sqlite3
import stat
import subprocess
import time

import pytest

from lifecycle import BANGER
from qemulib import qemu_env
from test_snapshot_fc import events

pytestmark = [pytest.mark.slow, pytest.mark.root]

SRC = "qsrc"
COUNTER = ("setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /root/counter; sleep 1; done' "
           "</dev/null >/dev/null 2>&1 &")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    for e in qemu_env(tmp_path_factory, "snapshot-qemu", SRC):
        e.info = {}
        yield e


def show(env, name=SRC):
    return env.json("vm", "show", name)


def guest(env, name, script, check=True):
    return env.banger("vm", "exec", name, "--", "sh", "-c", script, check=check)


def qemu_pids(env, vm_id):
    out = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and vm_id.encode() in pathlib.Path(f"/proc/{d}/cmdline").read_bytes() \
                    and b"qemu-system" in pathlib.Path(f"/proc/{d}/cmdline").read_bytes():
                out.append(int(d))
        except OSError:
            pass
    return out


def counter_pid(env, name=SRC):
    # [e]: the pattern does not match this shell's own command line.
    out = guest(env, name, "for p in /proc/[0-9]*; do grep -l '/root/count[e]r' $p/cmdline 2>/dev/null; done; true")
    return sorted(int(l.split("/")[2]) for l in out.stdout.split() if l.startswith("/proc/"))


def snapshot(env, name):
    out = env.banger("vm", "snapshot", SRC, "--name", name, "--json").stdout
    return events(out)


def test_snapshot_restores_files_and_processes(env):
    guest(env, SRC, COUNTER)
    guest(env, SRC, "echo v1 > /root/file; sleep 2; sync")
    before = counter_pid(env)
    assert before, "the counter did not start"
    t0 = time.monotonic()
    evs = snapshot(env, "s1")
    took = time.monotonic() - t0
    snap = evs[-1]
    disk = next(e["message"] for e in evs if e.get("stage") == "disk")
    assert "sparse copy" in disk or "reflink" in disk, disk
    assert snap["vmm_version"].startswith("QEMU emulator version") and snap["memory_bytes"] == 0
    # The state under its final name only (written under a temporary one), every file 0600.
    d = pathlib.Path(snap["dir"])
    assert sorted(os.listdir(d)) == ["root.img", "vm.state", "work.img"] and snap["state_bytes"] > 0
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for f in d.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    print(f"vm snapshot took {took:.2f} s: {disk}")
    env.info["s1"] = snap
    # Changed and killed after the snapshot ...
    guest(env, SRC, "echo v2 > /root/file; kill %d; sync" % before[0])
    assert counter_pid(env) == []
    t0 = time.monotonic()
    env.banger("vm", "restore", SRC, "s1")
    print(f"vm restore took {time.monotonic() - t0:.2f} s")
    # ... and back as they were, the counter still counting.
    assert guest(env, SRC, "cat /root/file").stdout == "v1\n"
    assert counter_pid(env) == before
    c1 = int(guest(env, SRC, "cat /root/counter").stdout)
    time.sleep(2.5)
    c2 = int(guest(env, SRC, "cat /root/counter").stdout)
    assert c2 > c1, (c1, c2)
    assert show(env)["state"] == "running"


def test_corrupt_state_fails_clearly(env):
    snap = snapshot(env, "s2")[-1]
    state = pathlib.Path(snap["dir"]) / "vm.state"
    with open(state, "r+b") as f:
        f.truncate(state.stat().st_size // 2)
    vm = show(env)
    p = env.banger("vm", "restore", SRC, "s2", check=False)
    assert p.returncode == 1
    assert "could not load the saved state" in p.stderr, p.stderr
    after = show(env)
    assert after["state"] == "error" and "could not load" in after["last_error"]
    assert qemu_pids(env, vm["id"]) == []
    # The VM comes back from a good snapshot.
    env.banger("vm", "restore", SRC, "s1")
    assert guest(env, SRC, "cat /root/file").stdout == "v1\n"
    env.banger("snapshot", "delete", "s2")
    assert not pathlib.Path(snap["dir"]).exists()


def test_other_qemu_version_refused(env):
    snap = snapshot(env, "s3")[-1]
    db = sqlite3.connect(env.state / "banger.db")
    with db:
        db.execute("UPDATE snapshots SET vmm_version = 'QEMU emulator version 6.2.0' WHERE name = 's3'")
    db.close()
    vm = show(env)
    p = env.banger("vm", "restore", SRC, "s3", check=False)
    assert p.returncode == 1 and "6.2.0" in p.stderr and "another version" in p.stderr, p.stderr
    assert qemu_pids(env, vm["id"]) == []
    env.banger("snapshot", "delete", "s3")
    assert not pathlib.Path(snap["dir"]).exists()
    env.banger("vm", "restore", SRC, "s1")


def clone(env, snap, name):
    return subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "create", "--from-snapshot", snap,
                             "--name", name, "--json"], env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_clones_at_once_are_distinct(env):
    """Two VMs from one snapshot, made at the same time, 30 s after it was
    taken: each ready with its own address, MAC and hostname (inside the
    guest too, and over ssh by name), different random bytes, and a clock
    within a second of the host's."""
    t_snap = time.monotonic()
    snapshot(env, "sc")
    time.sleep(max(0, 30 - (time.monotonic() - t_snap)))
    procs = {n: clone(env, "sc", n) for n in ("ca", "cb")}
    vms = {}
    for n, p in procs.items():
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:] + env.daemon_log()[-3000:]
        evs = events(out)
        vms[n] = evs[-1]["vm"]
        assert any(e.get("stage") == "identity" for e in evs), evs
    # The clock first: it was stepped when the clone took its identity.
    for n in vms:
        t0 = time.time()
        out = guest(env, n, "adjtimex").stdout  # busybox date has no sub-second format
        t1 = time.time()
        f = dict(l.split(":", 1) for l in out.splitlines() if ":" in l)
        g = int(f["    time.tv_sec"]) + int(f["    time.tv_usec"]) / 1e6
        print(f"{n}: guest clock {g - t0:+.3f} s from the host's (exec took {t1 - t0:.3f} s)")
        assert t0 - 1 <= g <= t1 + 1, (t0, g, t1)
    a, b = vms["ca"], vms["cb"]
    assert len({a["ip"], b["ip"], show(env)["ip"]}) == 3 and a["mac"] != b["mac"]
    for n, vm in vms.items():
        assert vm["state"] == "running" and vm["ready"]["agent"]
        assert guest(env, n, "hostname").stdout.strip() == n
        info = guest(env, n, "ip -o link show eth0; ip -o -4 addr show eth0").stdout
        assert vm["mac"] in info and f"{vm['ip']}/" in info, info
        # ssh by name reaches this clone, whose files say who it is.
        assert env.banger("vm", "ssh", n, "--", "cat", "/etc/hostname").stdout.strip() == n
    ra = guest(env, "ca", "head -c 32 /dev/urandom | od -An -tx1").stdout
    rb = guest(env, "cb", "head -c 32 /dev/urandom | od -An -tx1").stdout
    assert len(ra.split()) == 32 and ra != rb
    env.banger("vm", "delete", "ca", "cb")
    env.banger("snapshot", "delete", "sc")


def host_keys(env, name):
    """The guest's dropbear host keys (name and checksum) and machine id."""
    out = guest(env, name, "cd /etc/dropbear && md5sum *_host_key; cat /etc/machine-id").stdout
    lines = out.split()
    return {lines[i + 1]: lines[i] for i in range(0, len(lines) - 1, 2)}, lines[-1]


def served_key(env, name):
    """The host key the guest's ssh server presents now (ssh-keyscan)."""
    ip = show(env, name)["ip"]
    p = subprocess.run(["ip", "netns", "exec", env.ns, "ssh-keyscan", "-T", "60", ip], capture_output=True,
                       text=True, timeout=120)
    keys = sorted(l.split(None, 1)[1] for l in p.stdout.splitlines() if l and not l.startswith("#"))
    assert keys, p.stderr
    return keys


def test_new_host_keys(env):
    """vm create --from-snapshot --new-host-keys: the clone's SSH host key
    (made by the guest's dropbearkey) and machine id are its own, and its
    ssh server presents the new key; a clone without the flag keeps the
    snapshot's. The flag without --from-snapshot is refused."""
    p = env.banger("vm", "create", "--name", "nk0", "--new-host-keys", check=False)
    assert p.returncode == 2 and "--from-snapshot" in p.stderr, p.stderr
    env.banger("vm", "ssh", SRC, "--", "true")  # dropbear -R makes its key on first use
    guest(env, SRC, "echo 0123456789abcdef0123456789abcdef > /etc/machine-id")
    src_keys, src_id = host_keys(env, SRC)
    assert src_keys, "the source VM has no dropbear host key"
    snapshot(env, "sk")
    out = env.banger("vm", "create", "--from-snapshot", "sk", "--name", "kn", "--new-host-keys").stderr
    assert "new SSH host keys and machine id" in out, out
    env.banger("vm", "create", "--from-snapshot", "sk", "--name", "ko")
    new_keys, new_id = host_keys(env, "kn")
    old_keys, old_id = host_keys(env, "ko")
    assert old_keys == src_keys and old_id == src_id
    assert sorted(new_keys) == sorted(src_keys), new_keys  # the same types, new keys
    assert all(new_keys[k] != src_keys[k] for k in src_keys), (new_keys, src_keys)
    assert new_id != src_id and len(new_id) == 32
    assert served_key(env, "kn") != served_key(env, "ko")
    assert "banger-new" not in guest(env, "kn", "ls -a /etc/dropbear").stdout
    env.banger("vm", "delete", "kn", "ko")
    env.banger("snapshot", "delete", "sk")


def test_daemon_killed_mid_snapshot(env):
    vm = show(env)
    daemon = env.json("daemon", "status")["pid"]
    p = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "snapshot", SRC, "--name", "cut",
                          "--json"], env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if '"stage": "pause"' in line or '"stage":"pause"' in line:
            os.kill(daemon, signal.SIGKILL)
            break
    p.wait(60)
    assert p.returncode != 0
    listed = [n["name"] for n in env.json("snapshot", "list")["snapshots"]]  # a new daemon
    assert listed == ["s1"], listed
    assert sorted(os.listdir(env.state / "snapshots")) == [env.info["s1"]["id"]]
    after = show(env)
    assert after["state"] == "running" and after["pid"] == vm["pid"]
    # It runs: the paused guest was resumed.
    assert guest(env, SRC, "cat /root/file").stdout == "v1\n"


def test_warm_start_from_template(env):
    """Templates on: the first vm run of a shape boots cold and leaves a
    template behind; the second restores it; a changed image drops it."""
    rootfs = env.tmp / "warm.ext4"
    shutil.copyfile(env.image_dir / "rootfs.ext4", rootfs)
    env.banger("image", "register", "--name", "warm", "--rootfs", str(rootfs), "--kernel-ref", "testk")
    env.banger("daemon", "stop")
    env.write_config('default_vmm = "qemu"\nvm_templates = true\n')
    args = ("vm", "run", "--rm", "--image", "warm", "--vcpu", "1", "--memory", "256M", "--disk-size", "64M",
            "--", "true")
    first = env.banger(*args)
    assert "warm start" not in first.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        tpl = [n for n in env.json("snapshot", "list")["snapshots"] if n["kind"] == "template"]
        if tpl:
            break
        time.sleep(1)
    assert tpl and tpl[0]["image"] == "warm", env.daemon_log()[-3000:]
    t0 = time.monotonic()
    second = env.banger(*args)
    print(f"warm vm run took {time.monotonic() - t0:.2f} s")
    assert "warm start from template" in second.stderr, second.stderr
    os.utime(rootfs)  # the image changed
    third = env.banger(*args)
    assert "stale" in third.stderr and "warm start" not in third.stderr, third.stderr
    # --cold never uses one.
    assert env.banger("vm", "list", "--json").stdout.count('"name"') == 1  # only qsrc is left
