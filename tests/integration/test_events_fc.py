"""The event stream (events.subscribe, `banger events`) on the Firecracker
path with the fake Firecracker (see test_lifecycle_fc.py): real bangerd,
bangerd-root, disks, TAP and nftables in a namespace of the test's own.
Subscribers here are plain sockets or `banger events`, while another
client drives the VMs."""
import json
import pathlib
import socket
import subprocess
import time

import pytest

from lifecycle import BANGER
from test_lifecycle_fc import env, test_import_kernel_and_register_image  # noqa: F401 (fixture, first step)

pytestmark = pytest.mark.slow

LIFE = [("vm", "created", None, "created"), ("vm", "state", "created", "starting"),
        ("vm", "state", "starting", "running"), ("vm", "state", "running", "stopping"),
        ("vm", "state", "stopping", "stopped"), ("vm", "deleted", "stopped", None)]


def sock_path(env):
    return pathlib.Path(env.env["XDG_RUNTIME_DIR"]) / "banger/bangerd.sock"


class Subscriber:
    """A raw events.subscribe connection."""

    def __init__(self, env, read=True, **params):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(str(sock_path(env)))
        self.s.sendall((json.dumps({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe",
                                    "params": params}) + "\n").encode())
        self.buf = b""
        if read:
            reply = self.line(10)
            assert reply.get("result", {}).get("subscribed") is True, reply

    def line(self, timeout):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        l, self.buf = self.buf.split(b"\n", 1)
        return json.loads(l)

    def drain(self, timeout=0.5):
        out = []
        try:
            while (m := self.line(timeout)) is not None:
                out.append(m)
        except (socket.timeout, TimeoutError):
            pass
        return out


def lifecycle(events, name):
    return [(e["kind"], e["event"], e.get("old_state"), e.get("new_state"))
            for e in events if e.get("kind") == "vm" and e.get("name") == name]


def params(msgs):
    return [m["params"] for m in msgs if m.get("method") == "event"]


def create(env, name):
    t0 = time.monotonic()
    env.banger("vm", "create", "--name", name, "--image", "test", "--vmm", "firecracker", "--vcpu", "1",
               "--memory", "256M", "--disk-size", "64M")
    return time.monotonic() - t0


def test_subscribers_see_the_lifecycle_in_order(env):
    everything = Subscriber(env)
    only_b = Subscriber(env, vm="evb")
    base = create(env, "eva")
    env.banger("vm", "stop", "eva")
    env.banger("vm", "delete", "eva")

    # A subscriber that never reads, with a queue of 4: it must not slow a
    # create, and is dropped with a notice once its queue overflows.
    slow = Subscriber(env, read=False, queue=4)
    with_slow = create(env, "evb")
    assert with_slow < 3 * base + 5, (base, with_slow)
    for _ in range(40):
        if "event subscriber is not reading" in env.daemon_log():
            break
        env.banger("vm", "stop", "evb")
        env.banger("vm", "start", "evb")
    assert "event subscriber is not reading" in env.daemon_log(), len(slow.drain(2))
    env.banger("vm", "stop", "evb")
    env.banger("vm", "delete", "evb")

    got = params(everything.drain())
    assert lifecycle(got, "eva") == LIFE
    b = lifecycle(got, "evb")
    assert b[:3] == LIFE[:3] and b[-2:] == LIFE[-2:], b
    seqs = [e["seq"] for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(isinstance(e["time"], int) for e in got)
    assert all(e["id"] for e in got if e["event"] != "progress")
    # Long operations' progress comes along, named by the method that sent it.
    assert any(e["event"] == "progress" and e["method"] == "vm.create" and e["kind"] == "vm" for e in got)

    filtered = params(only_b.drain())
    assert filtered and {e["name"] for e in filtered} == {"evb"}
    assert lifecycle(filtered, "evb") == b

    # The slow one: its reply, the events its queue held, the notice, EOF.
    rest = slow.drain(5)
    assert rest[0]["result"]["subscribed"] is True
    assert rest[-1]["method"] == "events.dropped", rest[-3:]
    assert 1 <= len(params(rest)) < 60
    assert slow.line(5) is None  # the daemon closed it
    env.banger("vm", "list")  # and the daemon went on
