"""Hostile input against bangerd's socket: a table-driven corpus of bad
requests covering every method of the daemon's table, sent as raw JSON-RPC
to a real bangerd (with the FAKE Firecracker, so a VM runs cheaply) that has
a kernel, an image and one running VM to aim at.

Each request must be refused with a clear error (a JSON-RPC error object, or
for the batch verbs a result whose every entry failed, with a short message
free of control characters); bangerd must answer daemon.ping after it; the
running VM must not be disturbed; and nothing may be created or removed: no
VM, image, kernel or snapshot record, no file under the state or runtime
directories, no link in the namespace, no change to banger's nftables table,
no loop device. The corpus size is printed."""
import json
import os
import pathlib
import re
import socket
import time

import pytest

from bangerlib import Rpc, socket_path
from lifecycle import AGENT
from test_helper import loops_backed_under
from test_lifecycle_fc import fc_env
from test_lifecycle_fc import test_import_kernel_and_register_image as import_kernel_and_image

pytestmark = pytest.mark.slow

VM = "hv"
MIB = "x" * (1 << 20)
BAD_NAMES = {
    "slash": "a/b", "dotdot": "..", "nul": "a\x00b", "newline": "a\nb", "300-chars": "a" * 300, "1mib": MIB,
    "empty": "", "upper": "Web", "space": "a b", "dash-first": "-a", "escape": "\x1b]0;x\x07",
}
BAD_COUNTS = {"negative": -1, "zero": 0, "2^63": 2 ** 63, "fraction": 1.5, "string": "2", "bool": True}
BAD_OFFSETS = {"negative": -1, "2^63": 2 ** 63, "fraction": 0.5, "string": "10", "bool": False}


def bad_paths(h):
    return {
        "shadow": "/etc/shadow", "symlink-into-etc": str(h / "passwd-link"), "fifo": str(h / "fifo"),
        "dev-zero": "/dev/zero", "directory": str(h / "dir"), "relative": "rootfs.ext4",
        "dotdot": str(h / "dir/../../../etc/shadow"), "missing": str(h / "nope"), "nul": str(h / "a\x00b"),
        "5000-chars": "/" + "a" * 5000, "symlinked-dir": str(h / "etc-link/passwd"), "empty-file": str(h / "empty"),
    }


# Each method with the params a valid call would take (the base of the
# wrong-type and extra-key cases), and its string params that hold a name or
# a reference (the bad-name cases).
METHODS = {
    "daemon.ping": ({}, []),
    "daemon.status": ({}, []),
    "daemon.shutdown": ({}, []),
    "events.subscribe": ({"vm": VM}, ["vm"]),
    "vm.create": ({"name": "hx", "image": "test", "no_start": True}, ["name", "image", "from_snapshot"]),
    "vm.start": ({"vms": [VM]}, []),
    "vm.stop": ({"vms": [VM]}, []),
    "vm.restart": ({"vms": [VM]}, []),
    "vm.kill": ({"vms": [VM]}, []),
    "vm.pause": ({"vms": [VM]}, []),
    "vm.resume": ({"vms": [VM]}, []),
    "vm.delete": ({"vms": [VM]}, []),
    "vm.snapshot": ({"vm": VM, "name": "hs"}, ["vm", "name"]),
    "vm.restore": ({"vm": VM, "snapshot": "hs"}, ["vm", "snapshot"]),
    "vm.list": ({}, []),
    "vm.show": ({"vm": VM}, ["vm"]),
    "vm.logs": ({"vm": VM}, ["vm"]),
    "vm.agent": ({"vm": VM}, ["vm"]),
    "vm.ports": ({"vm": VM}, ["vm"]),
    "vm.stats": ({"vm": VM}, ["vm"]),
    "vm.ssh_info": ({"vm": VM}, ["vm"]),
    "vm.set": ({"vm": VM, "vcpu": 1}, ["vm"]),
    "vm.prune": ({}, []),
    "snapshot.list": ({}, []),
    "snapshot.show": ({"name": "hs"}, ["name"]),
    "snapshot.delete": ({"name": "hs"}, ["name"]),
    "snapshot.prune": ({}, []),
    "kernel.import": ({"name": "hk", "from": "/nonexistent"}, ["name"]),
    "kernel.list": ({}, []),
    "kernel.show": ({"name": "testk"}, ["name"]),
    "kernel.rm": ({"name": "hk"}, ["name"]),
    "image.register": ({"name": "hi", "rootfs": "/nonexistent", "kernel": "testk"}, ["name", "kernel"]),
    "image.list": ({}, []),
    "image.show": ({"name": "test"}, ["name"]),
    "image.delete": ({"name": "hi"}, ["name"]),
    "image.promote": ({"name": "hi"}, ["name"]),
    "image.import": ({"name": "hi", "source": "/nonexistent"}, ["name", "kernel"]),
    "image.build": ({"name": "hb"}, ["name"]),
    "image.cache_prune": ({"dry_run": True}, []),
    "vm.port.add": ({"vm": VM, "host_port": 18080, "guest_port": 80}, ["vm"]),
    "vm.port.remove": ({"vm": VM, "host_ip": "127.0.0.1", "host_port": 18080, "proto": "tcp"}, ["vm"]),
    "vm.port.list": ({"vm": VM}, ["vm"]),
    "operations.cancel": ({"id": 987654}, []),
}


def wrong_type(v):
    if isinstance(v, bool):
        return "yes"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return 5
    if isinstance(v, list):
        return VM
    return [v]


def corpus(h):
    cases = []

    def add(cid, method, params):
        cases.append((cid, method, params))

    for m, (base, names) in METHODS.items():
        add(f"{m}/params-array", m, [])
        add(f"{m}/params-string", m, "x")
        add(f"{m}/params-number", m, 7)
        add(f"{m}/extra-key", m, {**base, "bogus": 1})
        for k, v in base.items():
            add(f"{m}/{k}-wrong-type", m, {**base, k: wrong_type(v)})
            add(f"{m}/{k}-null", m, {**base, k: None})
        for k in names:
            for bid, bad in BAD_NAMES.items():
                add(f"{m}/{k}-{bid}", m, {**base, k: bad})
    # Batch verbs: the references themselves, and the list's shape.
    for m in ("vm.start", "vm.stop", "vm.restart", "vm.kill", "vm.pause", "vm.resume", "vm.delete"):
        add(f"{m}/vms-empty", m, {"vms": []})
        add(f"{m}/vms-missing", m, {})
        add(f"{m}/vms-number-item", m, {"vms": [5]})
        for bid in ("slash", "nul", "newline", "1mib", "escape"):
            add(f"{m}/vms-{bid}", m, {"vms": [BAD_NAMES[bid]]})
    add("vm.kill/vms-10000", "vm.kill", {"vms": ["no-such-vm"] * 10000})
    # Numbers.
    for k in ("vcpu", "memory_mib", "disk_bytes"):
        for bid, bad in BAD_COUNTS.items():
            add(f"vm.create/{k}-{bid}", "vm.create", {"name": "hx", "image": "test", "no_start": True, k: bad})
    for k in ("vcpu", "memory_mib"):
        for bid, bad in BAD_COUNTS.items():
            add(f"vm.set/{k}-{bid}", "vm.set", {"vm": VM, k: bad})
        add(f"vm.set/{k}-more-than-host", "vm.set", {"vm": VM, k: 1 << 40})
    for k in ("tail_bytes", "offset"):
        for bid, bad in BAD_OFFSETS.items():
            add(f"vm.logs/{k}-{bid}", "vm.logs", {"vm": VM, k: bad})
    add("vm.logs/tail_bytes-over-8mib", "vm.logs", {"vm": VM, "tail_bytes": (8 << 20) + 1})
    for bid, bad in BAD_OFFSETS.items():
        add(f"vm.stop/timeout_sec-{bid}", "vm.stop", {"vms": [VM], "timeout_sec": bad})
    for bid, bad in {"negative": -1, "huge": 99999, "2^63": 2 ** 63, "fraction": 1.5, "unknown-name": "SIGFOO",
                     "shell": "KILL;rm -rf /", "empty": ""}.items():
        add(f"vm.kill/signal-{bid}", "vm.kill", {"vms": [VM], "signal": bad})
    for bid, bad in {"zero": 0, "negative": -1, "1025": 1025, "2^63": 2 ** 63, "fraction": 1.5}.items():
        add(f"events.subscribe/queue-{bid}", "events.subscribe", {"queue": bad})
    for bid, bad in {"xen": "xen", "empty": "", "number": 1}.items():
        add(f"vm.create/vmm-{bid}", "vm.create", {"name": "hx", "image": "test", "no_start": True, "vmm": bad})
    add("vm.create/from-snapshot-no-start", "vm.create", {"name": "hx", "from_snapshot": "hs", "no_start": True})
    add("vm.create/name-taken", "vm.create", {"name": VM, "image": "test", "no_start": True})
    add("vm.create/image-missing", "vm.create", {"name": "hx", "image": "nope", "no_start": True})
    add("vm.restore/snapshot-of-nothing", "vm.restore", {"vm": VM, "snapshot": "nope"})
    add("image.register/name-taken", "image.register",
        {"name": "test", "rootfs": str(h / "empty"), "kernel": "testk"})
    add("image.register/kernel-missing", "image.register",
        {"name": "hi", "rootfs": str(h / "empty"), "kernel": "nope"})
    add("kernel.rm/in-use", "kernel.rm", {"name": "testk"})
    add("image.delete/in-use", "image.delete", {"name": "test"})
    # Paths.
    for pid, p in bad_paths(h).items():
        add(f"kernel.import/from-{pid}", "kernel.import", {"name": "hk", "from": p})
        add(f"image.register/rootfs-{pid}", "image.register", {"name": "hi", "rootfs": p, "kernel": "testk"})
        add(f"image.import/source-{pid}", "image.import", {"name": "hi", "source": p})
    for pid in ("shadow", "fifo", "dev-zero", "directory", "relative", "symlink-into-etc"):
        p = bad_paths(h)[pid]
        add(f"kernel.import/initrd-{pid}", "kernel.import", {"name": "hk", "from": "/nonexistent", "initrd": p})
        add(f"image.register/work_seed-{pid}", "image.register",
            {"name": "hi", "rootfs": str(h / "empty"), "kernel": "testk", "work_seed": p})
    # Port forwards.
    ports = {"zero": 0, "negative": -1, "65536": 65536, "2^63": 2 ** 63, "fraction": 80.5, "string": "80"}
    for k in ("host_port", "guest_port"):
        for bid, bad in ports.items():
            add(f"vm.port.add/{k}-{bid}", "vm.port.add", {"vm": VM, "host_port": 18080, "guest_port": 80, k: bad})
    for bid, bad in {"junk": "0.0.0.0x", "octet": "256.1.1.1", "v6-junk": "::g", "newline": "127.0.0.1\n",
                     "5000-chars": "1" * 5000, "name": "localhost"}.items():
        add(f"vm.port.add/host_ip-{bid}", "vm.port.add",
            {"vm": VM, "host_ip": bad, "host_port": 18080, "guest_port": 80})
    for bid, bad in {"udp": "udp", "sctp": "sctp", "number": 6, "upper": "TCP;"}.items():
        add(f"vm.port.add/proto-{bid}", "vm.port.add", {"vm": VM, "host_port": 18080, "guest_port": 80, "proto": bad})
    add("vm.port.remove/no-such-forward", "vm.port.remove", {"vm": VM, "host_port": 18081})
    # Registry references that must fail without leaving the namespace.
    for rid, ref in {"refused-port": "127.0.0.1:1/x/y:1", "dotdot": "127.0.0.1:1/../y:1",
                     "bad-digest": "127.0.0.1:1/x@sha256:zz", "space": "debian 12", "scheme": "http://127.0.0.1:1/x",
                     "newline": "127.0.0.1:1/x\n:1"}.items():
        add(f"image.import/ref-{rid}", "image.import", {"name": "hi", "source": ref})
    # Methods that do not exist.
    for m in ("vm.exec", "system.shell", "", "daemon.ping\n", "VM.LIST", "vm.list.x", "__proto__"):
        add(f"unknown/{m!r}", m, {})
    return cases


def refused(reply):
    """The error text(s) of a refusal, or None when the request succeeded."""
    if reply is None:
        return None
    if "error" in reply:
        e = reply["error"]
        assert isinstance(e.get("code"), int), reply
        return [e.get("message")]
    res = reply.get("result")
    if isinstance(res, dict) and isinstance(res.get("results"), list) and res["results"]:
        if all(r.get("ok") is False for r in res["results"]):
            return [r.get("error") for r in res["results"]]
    return None


CONTROL = re.compile(r"[\x00-\x1f\x7f\x80-\x9f]")


def clear(msg):
    return isinstance(msg, str) and 0 < len(msg) <= 1000 and not CONTROL.search(msg)


def call_once(sock, method, params):
    """One request on a fresh connection: a refusal may close it (an
    oversize line does), and a subscription would keep it."""
    c = Rpc(sock, timeout=60)
    try:
        msg = {"jsonrpc": "2.0", "method": method, "id": 1, "params": params}
        c.send_raw(json.dumps(msg).encode() + b"\n")
        while True:
            m = c.read_msg()
            if m is None or m.get("id") == 1 or "error" in m:
                return m
    except (ConnectionResetError, BrokenPipeError):
        return None
    except TimeoutError:
        return {"no reply": "within 60 s"}
    finally:
        c.close()


def tree(*roots):
    """Every path below roots, logs and the database (which a refusal may
    touch: a log line, a read) aside."""
    out = set()
    for root in roots:
        for d, dirs, files in os.walk(root):
            for n in dirs + files:
                p = os.path.join(d, n)
                if n.endswith((".log", ".log.1")) or "banger.db" in n or n.startswith("."):
                    continue
                out.add(p)
    return out


def fingerprint(env, sock):
    c = Rpc(sock, timeout=60)
    try:
        lists = {}
        for method, key in (("vm.list", "vms"), ("image.list", "images"), ("kernel.list", "kernels"),
                            ("snapshot.list", "snapshots")):
            lists[key] = sorted((o["name"], o.get("state"), o.get("pid")) for o in c.call(method)["result"][key])
        lists["forwards"] = c.call("vm.port.list", {"vm": VM})["result"]["forwards"]
    finally:
        c.close()
    nft = re.sub(r'"handle": \d+', "", env.nft_table())
    return {"lists": lists, "files": tree(env.state, env.rt / "banger"),
            "links": sorted(l["ifname"] for l in env.links()), "nft": nft, "loops": loops_backed_under(env.tmp)}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not AGENT.exists():
        pytest.fail(f"{AGENT} is not built")
    yield from fc_env(tmp_path_factory, "hostile", AGENT.resolve())


@pytest.fixture(scope="module")
def target(env, tmp_path_factory):
    import_kernel_and_image(env, tmp_path_factory.mktemp("kernel"))
    # --cold: no warm-start template taken in the background while the
    # corpus runs; a snapshot of its own, so refusals can be seen to keep it.
    env.banger("vm", "create", "--name", VM, "--image", "test", "--vcpu", "1", "--memory", "256M", "--disk-size",
               "64M", "--nat", "--cold")
    env.banger("vm", "snapshot", VM, "--name", "keep")
    vm = env.json("vm", "show", VM)
    assert vm["state"] == "running", vm
    h = env.tmp / "hostile"
    (h / "dir").mkdir(parents=True)
    os.mkfifo(h / "fifo")
    (h / "passwd-link").symlink_to("/etc/passwd")
    (h / "etc-link").symlink_to("/etc")
    (h / "empty").write_bytes(b"")
    return h


def test_bangerd_refuses_every_hostile_request(env, target):
    sock = socket_path(env.env)
    cases = corpus(target)
    ids = [c[0] for c in cases]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    # The corpus covers every method the daemon has.
    for m in METHODS:
        r = call_once(sock, m, {"probe": 1})
        assert r is not None and r.get("error", {}).get("code") != -32601, f"{m} is not a method of bangerd: {r}"
    before = fingerprint(env, sock)
    failures = []
    for cid, method, params in cases:
        t0 = time.monotonic()
        reply = call_once(sock, method, params)
        took = time.monotonic() - t0
        msgs = refused(reply)
        if msgs is None:
            failures.append(f"{cid}: not refused: {str(reply)[:300]}")
        elif not all(clear(m) for m in msgs):
            failures.append(f"{cid}: unclear error: {str(msgs)[:300]!r}")
        elif took > 30:
            failures.append(f"{cid}: took {took:.1f} s")
        p = Rpc(sock, timeout=30)
        pong = p.call("daemon.ping")
        p.close()
        if pong.get("result", {}).get("pong") is not True:
            pytest.fail(f"{cid}: daemon.ping after it: {pong}")
        after = fingerprint(env, sock)
        if after != before:
            diff = {}
            for k in before:
                if before[k] == after[k]:
                    continue
                if isinstance(before[k], set):
                    diff[k] = {"added": sorted(after[k] - before[k]), "removed": sorted(before[k] - after[k])}
                else:
                    diff[k] = (before[k], after[k])
            failures.append(f"{cid}: state changed: {str(diff)[:600]}")
            before = after
    print(f"\nhostile requests to bangerd: {len(cases)} sent, {len(cases) - len(failures)} refused cleanly, "
          f"{len(failures)} failures")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 150


def test_connection_flood_and_slow_clients(env, target):
    """Many idle connections and half-sent requests: ping still answers, and
    the daemon sheds what it cannot hold without dying."""
    sock = str(socket_path(env.env))
    held = []
    try:
        for i in range(400):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(sock)
            except OSError:
                s.close()
                break
            if i % 2:
                s.sendall(b'{"jsonrpc":"2.0","method":"daemon.ping","id":1')  # never finished
            held.append(s)
        assert len(held) >= 64
        for s in held:
            s.close()
        held = []
        # Until the daemon has seen every close it may still refuse a new
        # connection ("too many connections"): an error reply, retried.
        deadline = time.monotonic() + 30
        while True:
            try:
                c = Rpc(socket_path(env.env), timeout=10)
                reply = c.call("daemon.ping")
                c.close()
                assert reply.get("result", {}).get("pong") is True, reply
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        for s in held:
            s.close()
    assert env.json("vm", "show", VM)["state"] == "running"
