"""bangerd-root's TAP pool (--tap-pool / tap_pool_size), checked on the real
links of a network namespace this module creates: pooled TAPs exist right
after start, tap.create renames one, the pool refills, reconcile keeps it and
SIGTERM removes it. Needs root; skips otherwise."""
import contextlib
import grp
import json
import os
import pathlib
import pwd
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import pytest

from test_helper import HELPER, OWNER, Helper, run, wait_for_socket

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bangerd-root tests need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 missing"),
]

POOL = 3


@contextlib.contextmanager
def pooled_helper(pool):
    if not HELPER.exists():
        pytest.fail(f"{HELPER} is not built")
    ns = "bgpool-" + secrets.token_hex(4)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bgp-", dir="/tmp"))
    os.chmod(tmp, 0o711)
    state, sockdir, log = tmp / "state", tmp / "sock", tmp / "helper.log"
    state.mkdir(mode=0o755)
    sockdir.mkdir(mode=0o711)
    run("ip", "netns", "add", ns)
    proc = None
    try:
        with open(log, "w") as lf:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, str(HELPER), "--owner-uid", str(OWNER), "--owner-gid", str(OWNER),
                 "--state-dir", str(state), "--socket", str(sockdir / "h.sock"), "--tap-pool", str(pool)],
                stdout=lf, stderr=lf)
        h = Helper(ns, state, sockdir, proc, log)
        wait_for_socket(h)
        yield h
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def taps(h):
    return {n: l for n, l in h.links().items() if l.get("linkinfo", {}).get("info_kind") == "tun"}


def pool_taps(h):
    return {n: l for n, l in taps(h).items() if n.startswith("bgtp")}


def assert_vm_ready(l):
    info = l["linkinfo"]["info_data"]
    assert info["type"] == "tap" and info["persist"] is True
    assert (info["user"], info["group"]) == (pwd.getpwuid(OWNER).pw_name, grp.getgrgid(OWNER).gr_name)
    assert l["master"] == "br-fc"
    assert "UP" in l["flags"]


def wait_pool_full(h, deadline=5):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if len(pool_taps(h)) == POOL and h.ok("helper.ping")["tap_pool"]["size"] == POOL:
            return
        time.sleep(0.05)
    pytest.fail(f"pool not refilled: {sorted(pool_taps(h))}\n" + h.log.read_text())


def timed_call(h, method, params):
    """One request on a socket of our own, so the figure is the helper's
    time plus one round trip, not a Python start-up."""
    start = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(h.sock)
        s.sendall(json.dumps({"method": method, "params": params}).encode())
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    elapsed = time.perf_counter() - start
    reply = json.loads(out)
    assert reply["ok"] is True, reply
    return elapsed


def test_pool_lifecycle():
    with pooled_helper(POOL) as h:
        # Filled before the first request is answered; the bridge was made for it.
        ping = h.ok("helper.ping")
        assert ping["tap_pool"] == {"size": POOL, "target": POOL}
        pooled = pool_taps(h)
        assert len(pooled) == POOL, sorted(taps(h))
        for l in pooled.values():
            assert_vm_ready(l)
        pooled_ifindex = {l["ifindex"] for l in pooled.values()}

        h.ok("tap.create", {"name": "bgtvm1"})
        vm = taps(h)["bgtvm1"]
        assert_vm_ready(vm)
        # It is one of the pooled devices, renamed, not a new one.
        assert vm["ifindex"] in pooled_ifindex
        wait_pool_full(h)
        assert pooled_ifindex - {vm["ifindex"]} <= {l["ifindex"] for l in pool_taps(h).values()}

        # A name that exists does not cost a pooled TAP.
        r = h.call("tap.create", {"name": "bgtvm1"})
        assert r["ok"] is False and r["errno"] == "EEXIST", r
        assert len(pool_taps(h)) == POOL

        # reconcile keeps the pool and the listed VM TAP, removes a stray one.
        run("ip", "tuntap", "add", "bgtstray", "mode", "tap", "user", str(OWNER), ns=h.ns)
        run("ip", "link", "set", "bgtstray", "master", "br-fc", ns=h.ns)
        before = set(pool_taps(h))
        res = h.ok("reconcile", {"keep_taps": ["bgtvm1"], "keep_files": []})
        assert res["taps"] == ["bgtstray"]
        assert set(pool_taps(h)) == before and "bgtvm1" in taps(h) and "bgtstray" not in taps(h)

        h.ok("tap.delete", {"name": "bgtvm1"})
        h.proc.terminate()
        assert h.proc.wait(10) == 0, h.log.read_text()
        assert taps(h) == {}, "pooled TAPs survived SIGTERM:\n" + h.log.read_text()


def test_pool_size_bounds():
    p = subprocess.run([str(HELPER), "--tap-pool", "65", "--owner-uid", str(OWNER)], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode != 0 and "invalid --tap-pool '65'" in p.stderr


def create_latencies(pool, n=8):
    with pooled_helper(pool) as h:
        h.ok("bridge.ensure")
        out = []
        for i in range(n):
            if pool:
                wait_pool_full(h)  # measure the pooled path, not a drained pool
            out.append(timed_call(h, "tap.create", {"name": f"bgtlat{i}"}))
            assert_vm_ready(taps(h)[f"bgtlat{i}"])
        return out


def test_tap_create_latency_with_and_without_pool():
    without = create_latencies(0)
    with_pool = create_latencies(POOL)
    print(f"\ntap.create median: {statistics.median(without) * 1000:.2f} ms without a pool, "
          f"{statistics.median(with_pool) * 1000:.2f} ms with --tap-pool {POOL} "
          f"(min {min(without) * 1000:.2f} / {min(with_pool) * 1000:.2f} ms)")
