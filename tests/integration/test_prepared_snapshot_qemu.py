"""Prepared workspace snapshots on a QEMU guest: the first `vm run DIR`
whose setup succeeds keeps the prepared VM as a workspace snapshot; the
next run of the same work tree, setup inputs, image and shape resumes it,
copies only what changed and skips the setup (the marker the setup wrote
carries the first run's timestamp); a changed setup or --refresh-setup runs
it again and replaces the snapshot; snapshot list shows it with its kind and
work tree; image delete refuses while it exists; snapshot prune drops it
once unused for workspace_snapshot_max_age_days; two first runs at once keep
one snapshot between them. Real CLI, daemon, helper,
git, SQLite and guest, in a namespace this test creates. Warm-start
templates are off so that the first run boots cold, as a first run does."""
import os
import sqlite3
import subprocess
import time

import pytest

from lifecycle import BANGER
from qemulib import qemu_env
from test_prepared_workspace_qemu import SETUP, SIZES, make_repo


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from qemu_env(tmp_path_factory, "prepared-snap-qemu")


def run_timed(env, *args, check=True):
    t0 = time.monotonic()
    p = env.banger("vm", "run", *SIZES, "--rm", *args, check=check)
    return p, time.monotonic() - t0


def workspace_snapshots(env):
    return [n for n in env.json("snapshot", "list")["snapshots"] if n["kind"] == "workspace"]


def kept_states(env):
    d = env.state / "workspace-snapshots"
    return sorted(os.listdir(d)) if d.exists() else []


def test_second_run_resumes_the_prepared_vm(env):
    repo = make_repo(env.tmp / "home", "shop", extra={"old.txt": "old\n"})
    first, t_first = run_timed(env, str(repo), "--", "cat", "marker")
    assert "setup starts in /root/shop as 0" in first.stderr, first.stderr
    assert "kept as snapshot ws-shop-1" in first.stderr, first.stderr
    stamp = first.stdout
    assert len(stamp.split()) == 2, stamp

    [snap] = workspace_snapshots(env)
    assert snap["name"] == "ws-shop-1" and snap["repository"] == str(repo), snap
    assert snap["vm_id"] is None and snap["last_used_at"] is None, snap
    assert (snap["vcpu"], snap["memory_mib"], snap["vmm"], snap["image"]) == (1, 256, "qemu", "test"), snap
    rows = env.banger("snapshot", "list").stdout.splitlines()
    assert rows[0].split()[-1] == "REPOSITORY", rows
    assert any(r.split()[:2] == ["ws-shop-1", "workspace"] and r.endswith(str(repo)) for r in rows), rows
    assert kept_states(env) == [snap["id"]]

    # Host edits after the snapshot: a change, a new file, a deletion.
    (repo / "code.txt").write_text("v2\n")
    (repo / "new.txt").write_text("new\n")
    (repo / "old.txt").unlink()
    second, t_second = run_timed(env, str(repo), "--", "sh", "-c", "cat marker code.txt new.txt; test ! -e old.txt")
    assert second.stdout == stamp + "v2\nnew\n", second.stderr
    assert "setup starts" not in second.stderr, second.stderr
    assert "resumed from workspace snapshot ws-shop-1" in second.stderr, second.stderr
    assert t_second < t_first / 2, (t_first, t_second)
    print(f"first run {t_first:.1f} s, prepared run {t_second:.1f} s")
    [again] = workspace_snapshots(env)
    assert again["id"] == snap["id"] and again["last_used_at"], again

    # A changed setup changes the key: it runs again and replaces the snapshot
    # (and the replaced one's kept state goes, once older than a few minutes).
    (repo / ".banger/setup").write_text(SETUP + "echo changed\n")
    hour_ago = time.time() - 3600
    os.utime(env.state / "workspace-snapshots" / snap["id"], (hour_ago, hour_ago))
    third, _ = run_timed(env, str(repo), "--", "cat", "marker")
    assert "setup starts" in third.stderr and "changed" in third.stderr, third.stderr
    assert third.stdout != stamp
    [replaced] = workspace_snapshots(env)
    assert replaced["id"] != snap["id"] and replaced["repository"] == str(repo), replaced
    assert kept_states(env) == [replaced["id"]]

    # --refresh-setup runs it though the key is known, and keeps the result.
    fourth, _ = run_timed(env, "--refresh-setup", str(repo), "--", "cat", "marker")
    assert "setup starts" in fourth.stderr, fourth.stderr
    assert fourth.stdout not in (stamp, third.stdout)
    [refreshed] = workspace_snapshots(env)
    assert refreshed["id"] != replaced["id"], refreshed
    fifth, _ = run_timed(env, str(repo), "--", "cat", "marker")
    assert fifth.stdout == fourth.stdout and "setup starts" not in fifth.stderr, fifth.stderr

    # vm create --workspace resumes it too; its setup log is the one that
    # prepared the snapshot.
    env.banger("vm", "create", "--name", "resumed", *SIZES, "--workspace", str(repo))
    assert env.banger("vm", "exec", "resumed", "--", "cat", "/root/shop/marker").stdout == fourth.stdout
    log = env.banger("vm", "workspace", "log", "resumed").stdout
    assert "setup starts" in log and "exit status 0" in log, log
    env.banger("vm", "delete", "resumed")

    # --no-setup neither resumes nor runs it.
    sixth, _ = run_timed(env, "--no-setup", str(repo), "--", "sh", "-c", "test ! -e marker && cat code.txt")
    assert sixth.stdout == "v2\n" and "resumed" not in sixth.stderr, sixth.stderr


def test_failing_setup_keeps_nothing(env):
    before = workspace_snapshots(env)
    repo = make_repo(env.tmp / "home", "broken", setup="#!/bin/sh\necho failing\nexit 3\n")
    p, _ = run_timed(env, str(repo), "--", "true", check=False)
    assert p.returncode == 3, p.stderr
    assert "kept as snapshot" not in p.stderr
    assert workspace_snapshots(env) == before


def test_image_delete_and_prune(env):
    [snap] = workspace_snapshots(env)
    p = env.banger("image", "delete", "test", check=False)
    assert p.returncode != 0 and snap["name"] in p.stderr, p.stderr
    # Used recently: prune keeps it.
    assert snap["name"] not in env.json("snapshot", "prune")["deleted"]
    # Made and last used 30 days ago (config default: 14 days), in the real database.
    old = int((time.time() - 30 * 86400) * 1e6)
    with sqlite3.connect(env.state / "banger.db") as db:
        db.execute("UPDATE snapshots SET created_at = ?, last_used_at = ? WHERE id = ?", (old, old, snap["id"]))
    assert env.json("snapshot", "prune")["deleted"] == [snap["name"]]
    assert workspace_snapshots(env) == []
    assert not os.path.exists(snap["dir"])


# Answers each TCP connection once argv[1] of them are open, all at once:
# the setups of two runs end together, so their snapshots are kept together.
# (busybox nc in the guest: its static wget crashes looking up "http".)
BARRIER = r'''
import os, socket, sys
n, portfile = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.bind(("0.0.0.0", 0))
s.listen(8)
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
conns = [s.accept()[0] for _ in range(n)]
for c in conns:
    c.sendall(b"go\n")
    c.close()
'''


def start_barrier(env, n):
    port_file = env.tmp / "barrier.port"
    proc = subprocess.Popen(["ip", "netns", "exec", env.ns, "/usr/bin/python3", "-c", BARRIER, str(n),
                             str(port_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if port_file.exists():
            return proc, int(port_file.read_text())
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError("the barrier server did not start")


def test_two_first_runs_at_once_keep_one_snapshot(env):
    """Two first runs of one work tree at once, their setups ending at the
    same moment (each waits at a barrier on the host): both succeed, one
    keeps the workspace snapshot and the other says why it keeps none, and
    the next run resumes the one kept."""
    barrier, port = start_barrier(env, 2)
    try:
        setup = ("#!/bin/sh\necho \"setup starts in $(pwd)\"\n"
                 f"nc 172.16.0.1 {port} </dev/null | grep -q go || exit 5\n"
                 "echo \"$(date +%s) $(cat /proc/sys/kernel/random/uuid)\" > marker\n")
        repo = make_repo(env.tmp / "home", "twin", setup=setup)
        argv = ["ip", "netns", "exec", env.ns, str(BANGER), "vm", "run", *SIZES, "--rm", str(repo), "--", "cat",
                "marker"]
        runs = [subprocess.Popen(argv, env=env.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [r.communicate(timeout=900) for r in runs]
    finally:
        for r in locals().get("runs", []):
            if r.poll() is None:
                r.kill()
                r.wait()
        barrier.kill()
        barrier.wait()
    for r, (out, err) in zip(runs, outs):
        assert r.returncode == 0, (r.returncode, out, err, env.daemon_log()[-3000:])
        assert "setup starts" in err, err
        assert "banger: vm run:" not in err, err
    kept = [(out, err) for out, err in outs if "kept as snapshot ws-twin-" in err]
    skipped = [err for _, err in outs if "setup: not kept: another run " in err]
    assert len(kept) == 1 and len(skipped) == 1, outs
    mine = [n for n in workspace_snapshots(env) if n["repository"] == str(repo)]
    assert len(mine) == 1, mine
    assert f"kept as snapshot {mine[0]['name']} " in kept[0][1], kept[0][1]
    assert f"workspace snapshot {mine[0]['name']} of {repo} with the same setup inputs" in skipped[0], skipped[0]

    third, _ = run_timed(env, str(repo), "--", "cat", "marker")
    assert f"resumed from workspace snapshot {mine[0]['name']}" in third.stderr, third.stderr
    assert third.stdout == kept[0][0] and "setup starts" not in third.stderr, (third.stdout, kept[0][0])
    assert [n["id"] for n in workspace_snapshots(env) if n["repository"] == str(repo)] == [mine[0]["id"]]
    env.banger("snapshot", "delete", mine[0]["name"])
