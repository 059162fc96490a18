"""bangerd-root against its owner: two helpers for two throwaway owners (uids
with no user database entry) share one network namespace, as two users'
daemons share one host, and every request is sent as the owner's uid
(setpriv). What one owner may do to the other owner, to a third user and to
root through its own helper is checked on the real links, nftables tables and
loop devices (docs/security.md, "The owner, seen from the helper").

Owner A's helper runs in a mount namespace of its own whose private /dev holds
the device nodes it needs and an empty /dev/mapper/control, so that
dm.snapshot.create gets past its "device-mapper available" check on a host
without device-mapper (dmsetup then fails, and everything it set up is undone).

Everything lives in a namespace, a directory and loop devices this module
creates and removes. Needs root; skips otherwise."""
import contextlib
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from test_helper import HELPER, Helper, detach_loops_under, loops_backed_under, run, wait_for_socket

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bangerd-root tests need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 missing"),
]

# Throwaway owners: high uids no user database holds, so nothing of theirs
# exists before or after this module.
_BASE = 3_000_000 + secrets.randbelow(1_000_000) * 4
OWNER_A, OWNER_B, THIRD = _BASE, _BASE + 1, _BASE + 2

# Sets up the private /dev of owner A's helper, then becomes the helper.
PRIVATE_DEV = r"""
import os, stat, subprocess, sys
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid", "bgdev", "/dev"], check=True)
def node(path, kind, major, minor, mode=0o600):
    os.mknod(path, mode | kind, os.makedev(major, minor))
for name, minor in (("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)):
    node("/dev/" + name, stat.S_IFCHR, 1, minor, 0o666)
os.mkdir("/dev/net")
node("/dev/net/tun", stat.S_IFCHR, 10, 200, 0o666)
node("/dev/loop-control", stat.S_IFCHR, 10, 237)
max_part = int(open("/sys/module/loop/parameters/max_part").read())
shift = max_part.bit_length()
for i in range(256):
    node(f"/dev/loop{i}", stat.S_IFBLK, 7, i << shift)
os.mkdir("/dev/mapper")
os.close(os.open("/dev/mapper/control", os.O_CREAT | os.O_WRONLY, 0o600))
os.execv(sys.argv[1], sys.argv[1:])
"""


class Owner(Helper):
    """A helper and its owner: as_owner() sends requests as the owner's uid."""

    def __init__(self, ns, state, sockdir, proc, log, uid, bridge):
        super().__init__(ns, state, sockdir, proc, log)
        self.uid, self.bridge = uid, bridge

    def as_owner(self, method, params=None, **kw):
        return self.call(method, params, uid=self.uid, **kw)

    def owner_ok(self, method, params=None):
        r = self.as_owner(method, params)
        assert r["ok"] is True, r
        return r["result"]

    def taps(self):
        return {n: l for n, l in self.links().items() if l.get("linkinfo", {}).get("info_kind") == "tun"}

    def owner_file(self, name, size=1 << 20):
        path = self.state / name
        with open(path, "wb") as f:
            f.truncate(size)
        os.chown(path, self.uid, self.uid)
        return path


def start_owner(ns, tmp, name, uid, bridge, cidr, args=(), private_dev=False):
    top = tmp / name
    state, sockdir, log = top / "state", top / "sock", top / "helper.log"
    top.mkdir(mode=0o711)
    os.chmod(top, 0o711)  # the owner must be able to walk to the socket
    state.mkdir(mode=0o755)
    os.chown(state, uid, uid)  # the owner's own state directory, as in user mode
    sockdir.mkdir(mode=0o711)
    os.chmod(sockdir, 0o711)
    argv = [str(HELPER), "--owner-uid", str(uid), "--owner-gid", str(uid), "--state-dir", str(state),
            "--socket", str(sockdir / "h.sock"), "--cidr", cidr, "--bridge", bridge, *args]
    if private_dev:
        argv = ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-c", PRIVATE_DEV, *argv]
    with open(log, "w") as lf:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=lf, stderr=lf)
    h = Owner(ns, state, sockdir, proc, log, uid, bridge)
    wait_for_socket(h)
    return h


def stop_owner(h):
    """SIGTERM must be handled promptly: a helper stuck in a syscall fails."""
    if h.proc.poll() is None:
        h.proc.terminate()
        try:
            h.proc.wait(10)
        except subprocess.TimeoutExpired:
            h.proc.kill()
            h.proc.wait()
            return "did not exit within 10 s of SIGTERM"
    text = h.log.read_text() if h.log.exists() else ""
    if h.proc.returncode != 0:
        return f"exited {h.proc.returncode}:\n{text}"
    if "Sanitizer" in text or "runtime error" in text:
        return text
    return None


@contextlib.contextmanager
def owner_pair():
    if not HELPER.exists():
        pytest.fail(f"{HELPER} is not built")
    ns = "bgown-" + secrets.token_hex(4)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bgo-", dir="/tmp"))
    os.chmod(tmp, 0o711)
    run("ip", "netns", "add", ns)
    helpers = []
    try:
        run("ip", "link", "set", "lo", "up", ns=ns)
        helpers.append(start_owner(ns, tmp, "a", OWNER_A, "br-fc-a", "172.16.10.0/24",
                                   ["--max-taps", "3", "--max-loops", "3"], private_dev=True))
        helpers.append(start_owner(ns, tmp, "b", OWNER_B, "br-fc-b", "172.16.11.0/24", ["--tap-pool", "2"]))
        yield helpers
    finally:
        problems = [(h.uid, stop_owner(h)) for h in helpers]
        detach_loops_under(tmp)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    bad = [f"helper of uid {u}: {p}" for u, p in problems if p]
    assert not bad, "\n".join(bad)


@pytest.fixture(scope="module")
def pair():
    with owner_pair() as helpers:
        yield helpers


def test_owners_cannot_touch_foreign_taps(pair):
    """Item 7: tap.delete, tap.list and reconcile act only on the owner's TAPs
    on its own bridge (or those the helper made)."""
    a, b = pair
    ns = a.ns
    b.owner_ok("tap.create", {"name": "bgtb1"})
    a.owner_ok("tap.create", {"name": "bgta1"})
    # A stale TAP of A's (owned by A, on A's bridge) and a third user's TAP.
    run("ip", "tuntap", "add", "bgtastale", "mode", "tap", "user", str(OWNER_A), ns=ns)
    run("ip", "link", "set", "bgtastale", "master", a.bridge, ns=ns)
    run("ip", "tuntap", "add", "bgtelse", "mode", "tap", "user", str(THIRD), ns=ns)
    try:
        b_pool = sorted(n for n in b.taps() if n.startswith("bgtp"))
        assert len(b_pool) == 2, b.taps()
        for name in ("bgtb1", "bgtelse", b_pool[0]):
            r = a.as_owner("tap.delete", {"name": name})
            assert r["ok"] is False and r["errno"] == "EPERM", r
            assert f"{name} does not belong to this helper" in r["error"], r
        assert sorted(a.owner_ok("tap.list")["taps"]) == ["bgta1", "bgtastale"]

        res = a.owner_ok("reconcile", {"keep_taps": ["bgta1"], "keep_files": []})
        assert res["taps"] == ["bgtastale"]
        present = a.taps()
        assert {"bgta1", "bgtb1", "bgtelse", *b_pool} <= present.keys(), present.keys()
        assert "bgtastale" not in present
        assert b.owner_ok("helper.ping")["tap_pool"]["size"] == 2

        # B's reconcile, with nothing to keep, leaves A's TAP and its own pool.
        res = b.owner_ok("reconcile", {"keep_taps": [], "keep_files": []})
        assert res["taps"] == ["bgtb1"]
        assert {"bgta1", "bgtelse", *b_pool} <= b.taps().keys()
    finally:
        run("ip", "link", "del", "bgtelse", ns=ns, check=False)
        run("ip", "link", "del", "bgtastale", ns=ns, check=False)
        a.as_owner("tap.delete", {"name": "bgta1"})
        b.as_owner("tap.delete", {"name": "bgtb1"})


def nft_tables(ns):
    out = json.loads(run("nft", "-j", "list", "tables", "ip", ns=ns).stdout)["nftables"]
    return sorted(t["table"]["name"] for t in out if "table" in t)


def ip_forward(ns):
    return run("sysctl", "-n", "net.ipv4.ip_forward", ns=ns).stdout.strip()


@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables (nft) missing")
def test_owners_keep_their_own_nat_tables(pair):
    """Item 8: each helper owns the nft table named from its bridge and touches
    no other; ip_forward goes back as found when the last banger table goes."""
    a, b = pair
    ns = a.ns
    run("ip", "link", "add", "upl0", "type", "veth", "peer", "name", "upl1", ns=ns)
    try:
        run("ip", "link", "set", "upl0", "up", ns=ns)
        run("ip", "addr", "add", "10.98.0.1/24", "dev", "upl0", ns=ns)
        run("ip", "route", "add", "default", "via", "10.98.0.254", "dev", "upl0", ns=ns)
        # Tables that are not these helpers': another helper's, and the host's own.
        run("nft", "add table ip banger; add table ip filter; add chain ip filter input", ns=ns)
        run("sysctl", "-qw", "net.ipv4.ip_forward=0", ns=ns)

        a.owner_ok("nat.apply", {"entries": [{"ip": "172.16.10.2", "tap": "bgta1"}]})
        b.owner_ok("nat.apply", {"entries": [{"ip": "172.16.11.2", "tap": "bgtb1"}]})
        a.owner_ok("nat.apply", {"entries": []})
        ruleset = run("nft", "list", "ruleset", "ip", ns=ns).stdout
        assert "172.16.11.2" in ruleset, "A's nat.apply [] removed B's NAT:\n" + ruleset
        assert "172.16.10.2" not in ruleset
        assert "table ip banger {" in ruleset and "chain input" in ruleset, ruleset
        assert ip_forward(ns) == "1"  # B's VMs still need it

        res = a.owner_ok("nat.apply", {"entries": [{"ip": "172.16.10.2", "tap": "bgta1"}]})
        assert res["table"] == "banger-a"
        assert nft_tables(ns) == ["banger", "banger-a", "banger-b", "filter"]
        b_rules = run("nft", "list", "table", "ip", "banger-b", ns=ns).stdout
        assert "172.16.11.2" in b_rules and "172.16.10.2" not in b_rules
        a.owner_ok("nat.apply", {"entries": []})
        assert nft_tables(ns) == ["banger", "banger-b", "filter"]
        assert run("nft", "list", "table", "ip", "banger-b", ns=ns).stdout == b_rules

        # The last of the two goes: forwarding back off, as they found it...
        run("nft", "delete table ip banger", ns=ns)
        b.owner_ok("nat.apply", {"entries": []})
        assert nft_tables(ns) == ["filter"]
        assert ip_forward(ns) == "0"
        # ...and left on when it was on.
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=ns)
        a.owner_ok("nat.apply", {"entries": [{"ip": "172.16.10.2", "tap": "bgta1"}]})
        a.owner_ok("nat.apply", {"entries": []})
        assert ip_forward(ns) == "1"
    finally:
        run("nft", "delete table ip filter", ns=ns, check=False)
        run("ip", "link", "del", "upl0", ns=ns, check=False)
        a.as_owner("nat.apply", {"entries": []})
        b.as_owner("nat.apply", {"entries": []})


# Holds N idle connections to the socket as the calling uid; prints how many
# the helper refused at once (they have a reply waiting), then waits for
# stdin to close.
HOLDER = r"""
import select, socket, sys, time
n = int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    socks.append(s)
time.sleep(0.5)
refused = [s for s in socks if select.select([s], [], [], 0)[0]]
replies = {s.recv(4096).decode().strip() for s in refused}
print(len(refused), *sorted(replies), sep="\n", flush=True)
sys.stdin.read()
"""


def test_owner_cannot_lock_root_out(pair):
    """Item 9: connections are limited per uid (32 for the owner), and root
    keeps its own room (8)."""
    a, b = pair
    holder = subprocess.Popen(["setpriv", f"--reuid={a.uid}", f"--regid={a.uid}", "--clear-groups",
                               sys.executable, "-c", HOLDER, a.sock, "40"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        refused, *replies = [holder.stdout.readline().strip() for _ in range(2)]
        # Root is served while the owner holds all it may.
        for _ in range(10):
            r = a.call("helper.ping")
            assert r["ok"] is True, f"root locked out while the owner holds 40 connections: {r}"
        assert int(refused) == 40 - 32, (refused, replies)
        reply = json.loads(replies[0])
        assert reply["errno"] == "EBUSY", reply
        assert f"too many concurrent requests from uid {a.uid}" in reply["error"], reply
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert a.owner_ok("helper.ping")["owner_uid"] == a.uid


def as_uid(uid, code, *args):
    subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c", code,
                    *map(str, args)], check=True, timeout=30)


def test_owner_limits_loops_and_taps(pair):
    """Item 10: one loop device per file, whatever name it is asked under; at
    most max_loop_devices loops and max_taps TAPs per owner (A runs with 3 of
    each), with a clear error, and a rename out of the state directory does
    not make room."""
    a, b = pair
    x = a.owner_file("x.img")
    os.link(x, a.state / "x-again.img")
    for name in ("y.img", "z.img", "w.img"):
        a.owner_file(name)
    elsewhere = a.state.parent / "elsewhere"
    elsewhere.mkdir()
    os.chown(elsewhere, a.uid, a.uid)
    created = []
    try:
        dev = a.owner_ok("loop.attach", {"path": "x.img"})["device"]
        for name in ("x.img", "x-again.img"):
            r = a.as_owner("loop.attach", {"path": name, "read_only": True})
            assert r["ok"] is False and r["errno"] == "EBUSY", r
            assert f"already attached to {dev}; detach it first" in r["error"], r
        assert list(loops_backed_under(a.state)) == [dev]

        devs = [dev] + [a.owner_ok("loop.attach", {"path": n})["device"] for n in ("y.img", "z.img")]
        r = a.as_owner("loop.attach", {"path": "w.img"})
        assert r["ok"] is False and r["errno"] == "EDQUOT", r
        assert f"uid {a.uid} already holds 3 loop device(s) and may hold at most 3 (max_loop_devices)" in r["error"]
        as_uid(a.uid, "import os, sys; os.rename(sys.argv[1], sys.argv[2])", a.state / "y.img", elsewhere / "y.img")
        r = a.as_owner("loop.attach", {"path": "w.img"})
        assert r["ok"] is False and r["errno"] == "EDQUOT", r
        a.owner_ok("loop.detach", {"device": devs[0]})
        devs.append(a.owner_ok("loop.attach", {"path": "w.img"})["device"])

        for i in range(3):
            a.owner_ok("tap.create", {"name": f"bgtlim{i}"})
            created.append((a, f"bgtlim{i}"))
        r = a.as_owner("tap.create", {"name": "bgtlim3"})
        assert r["ok"] is False and r["errno"] == "EDQUOT", r
        assert f"uid {a.uid} already holds 3 TAP(s) and may hold at most 3 (max_taps" in r["error"], r
        assert "bgtlim3" not in a.taps()
        b.owner_ok("tap.create", {"name": "bgtlimb"})  # another owner's count
        created.append((b, "bgtlimb"))
    finally:
        for h, name in created:
            h.as_owner("tap.delete", {"name": name})
        detach_loops_under(a.state.parent)
        shutil.rmtree(elsewhere, ignore_errors=True)
        for name in ("x.img", "x-again.img", "y.img", "z.img", "w.img"):
            (a.state / name).unlink(missing_ok=True)


# The owner's side of the race: waits (inotify) until the helper opens
# argv[6] for I/O, which it does right after that file passed its checks,
# then swaps argv[2] with argv[3] (renameat2 RENAME_EXCHANGE) and, for up to
# argv[4] seconds, watches for a loop device bound to argv[5] (the trap's
# path after the swap). Prints "swapped", then "bound" or "clean".
SWAP_ON_OPEN = r"""
import ctypes, os, pathlib, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
IN_OPEN, RENAME_EXCHANGE = 0x20, 2
state, a, b, secs, trap = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
trigger = sys.argv[6].encode()
d = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
ino = libc.inotify_init1(os.O_CLOEXEC)
if ino < 0 or libc.inotify_add_watch(ino, state.encode(), IN_OPEN) < 0:
    sys.exit("inotify: " + os.strerror(ctypes.get_errno()))
print("ready", flush=True)
seen = False
while not seen:
    buf = os.read(ino, 4096)
    while buf:
        wd, mask, cookie, n = struct.unpack_from("iIII", buf)
        seen |= buf[16:16 + n].rstrip(b"\0") == trigger
        buf = buf[16 + n:]
if libc.renameat2(d, a.encode(), d, b.encode(), RENAME_EXCHANGE) != 0:
    sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
print("swapped", flush=True)
end = time.monotonic() + secs
while time.monotonic() < end:
    for f in pathlib.Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if f.read_text().strip() == trap:
                print("bound", flush=True)
                sys.exit()
        except OSError:
            pass
print("clean", flush=True)
"""


def swap_on_open(h, a, b, watch_secs, trap, trigger):
    # At a higher priority than the helper: on a loaded machine the swap must
    # still come before the helper's next step.
    p = subprocess.Popen(["nice", "-n", "-10", "setpriv", f"--reuid={h.uid}", f"--regid={h.uid}", "--clear-groups",
                          sys.executable, "-c", SWAP_ON_OPEN, h.state, a, b, str(watch_secs), str(h.state / trap),
                          trigger], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def test_dm_snapshot_create_attaches_what_it_checked(pair):
    """Item 6: dm.snapshot.create must attach the files it checked, never
    reopen their names. Right after both checks the owner swaps cow.img with
    a root-owned file, then base.img with a FIFO: a helper that reopens the
    names binds root's file read-write, then blocks in open() on the FIFO
    (and nobody, root included, gets an answer)."""
    a, _ = pair
    a.owner_file("base.img")
    a.owner_file("cow.img")
    os.mkfifo(a.state / "fifo")
    os.chown(a.state / "fifo", a.uid, a.uid)
    (a.state / "rootfile").write_bytes(b"r" * (1 << 20))  # root's, 0644
    req = {"name": "banger-race", "base": "base.img", "cow": "cow.img"}
    swapper = None
    try:
        # The COW store swapped for root's file: after the swap the name
        # rootfile is the owner's COW file and cow.img is root's.
        swapper = swap_on_open(a, "cow.img", "rootfile", 2, "cow.img", "cow.img")
        r = a.as_owner("dm.snapshot.create", req, timeout=10)
        assert swapper.stdout.readline().strip() == "swapped"
        assert swapper.stdout.readline().strip() == "clean", "root's file was bound to a loop device"
        assert r["ok"] is False and "dmsetup" in r["error"], r  # dmsetup fails: no device-mapper in the kernel
        swapper.wait(10)
        os.rename(a.state / "cow.img", a.state / "tmp")
        os.rename(a.state / "rootfile", a.state / "cow.img")
        os.rename(a.state / "tmp", a.state / "rootfile")

        # The base swapped for a FIFO, right after its check. A few rounds:
        # the swap must land before the helper's next open of the base.
        for _ in range(5):
            swapper = swap_on_open(a, "base.img", "fifo", 0, "none", "base.img")
            try:
                r = a.as_owner("dm.snapshot.create", req, timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail("dm.snapshot.create blocked the helper:\n" + a.log.read_text())
            assert swapper.stdout.readline().strip() == "swapped"
            assert r["ok"] is False and "dmsetup" in r["error"], r
            swapper.wait(10)
            os.rename(a.state / "base.img", a.state / "tmp")
            os.rename(a.state / "fifo", a.state / "base.img")
            os.rename(a.state / "tmp", a.state / "fifo")
        assert a.call("helper.ping", timeout=5)["ok"] is True
        assert not loops_backed_under(a.state)
    finally:
        if swapper and swapper.poll() is None:
            swapper.kill()
            swapper.wait()
        for name in ("base.img", "cow.img", "fifo", "rootfile", "tmp"):
            (a.state / name).unlink(missing_ok=True)


# Takes a read lease on argv[1] as its owner, ignoring the SIGIO a lease
# break sends; prints "ready" and holds it until stdin closes.
LEASE_HOLDER = r"""
import fcntl, os, signal, sys
F_SETLEASE, F_RDLCK = 1024, 0
signal.signal(signal.SIGIO, signal.SIG_IGN)
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.fcntl(fd, F_SETLEASE, F_RDLCK)
print("ready", flush=True)
sys.stdin.read()
"""


def test_owner_cannot_stall_path_resolution(pair):
    """Paths in the state directory never cross a mount point (the owner could
    mount a FUSE filesystem there and stall any lookup or open in it; a tmpfs
    stands in for it, mounted in the helper's own mount namespace), and an
    open never waits on a lease the owner holds (45 s per request)."""
    a, _ = pair
    mnt = a.state / "mnt"
    mnt.mkdir()
    os.chown(mnt, a.uid, a.uid)
    in_helper_ns = ["nsenter", f"--mount=/proc/{a.proc.pid}/ns/mnt", "--"]
    a.owner_file("leased.img")
    holder = None
    try:
        run(*in_helper_ns, "mount", "-t", "tmpfs", "-o", "mode=0755", "bgfuse", str(mnt))
        run(*in_helper_ns, sys.executable, "-c", "import os, sys; p = sys.argv[1]; open(p, 'wb').truncate(1 << 20); "
            "os.chown(p, int(sys.argv[2]), int(sys.argv[2]))", str(mnt / "disk.img"), str(a.uid))
        r = a.as_owner("loop.attach", {"path": "mnt/disk.img"})
        assert r["ok"] is False and r["errno"] == "EPERM", r
        assert "path 'mnt/disk.img' crosses a mount point inside the state directory" in r["error"], r
        assert not loops_backed_under(a.state)

        holder = subprocess.Popen(["setpriv", f"--reuid={a.uid}", f"--regid={a.uid}", "--clear-groups",
                                   sys.executable, "-c", LEASE_HOLDER, a.state / "leased.img"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "ready"
        start = time.monotonic()
        try:
            r = a.as_owner("loop.attach", {"path": "leased.img"}, timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("loop.attach waited on the owner's lease")
        assert time.monotonic() - start < 5
        assert r["ok"] is False and r["errno"] == "EBUSY" and "is leased by another process" in r["error"], r
        assert a.call("helper.ping", timeout=5)["ok"] is True
    finally:
        if holder:
            holder.stdin.close()
            holder.wait(10)
        run(*in_helper_ns, "umount", str(mnt), check=False)
        detach_loops_under(a.state)
        shutil.rmtree(mnt, ignore_errors=True)
        (a.state / "leased.img").unlink(missing_ok=True)
