"""The event stream (events.subscribe, `banger events`) on the Firecracker
path with the fake Firecracker (see test_lifecycle_fc.py): real bangerd,
bangerd-root, disks, TAP and nftables in a namespace of the test's own.
Subscribers here are plain sockets or `banger events`, while another
client drives the VMs."""
import json
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import threading
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


class Cli:
    """`banger ARGS` in the background (exec'd by `ip netns exec`, so the
    process is banger's own), its stdout lines collected by a thread."""

    def __init__(self, env, *args):
        self.p = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), *args], env=env.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.json = "--json" in args
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for l in self.p.stdout:
            self.lines.append(l.rstrip("\n"))

    def events(self):
        return [json.loads(l) for l in list(self.lines)]

    def wait(self, pred, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return True
            if self.p.poll() is not None:
                self.t.join(5)
                return pred(self)
            time.sleep(0.1)
        return False

    def end(self, sig=signal.SIGINT, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        rc = self.p.wait(timeout)
        self.t.join(5)
        return rc, self.p.stderr.read()


def saw(name, event):
    def seen(cli):
        if cli.json:
            return any(e.get("name") == name and e.get("event") == event for e in cli.events())
        return any(re.search(rf" {name} +{event}\b", l) for l in list(cli.lines))
    return seen


def sync(env, clis, name):
    """Return once every cli is subscribed: a VM created (not started) and
    deleted until each has seen its creation."""
    for _ in range(10):
        env.banger("vm", "create", "--name", name, "--image", "test", "--vmm", "firecracker", "--disk-size", "64M",
                   "--no-start")
        ok = all(c.wait(saw(name, "created"), 5) for c in clis)
        env.banger("vm", "delete", name)
        if ok:
            return
    raise AssertionError("banger events never saw a VM created")


def test_banger_events_json_sees_another_clients_vm(env):
    everything = Cli(env, "events", "--json")
    only = Cli(env, "events", "--json", "--vm", "evc")
    filtered = Cli(env, "events", "--json", "--filter", "vm=evc")  # the same filter, as the issue spells it
    sync(env, [everything, only, filtered], "evc")
    create(env, "evc")
    env.banger("vm", "stop", "evc")
    env.banger("vm", "delete", "evc")
    for cli in (everything, only, filtered):
        assert cli.wait(lambda c: len([e for e in c.events() if e.get("event") == "deleted"]) >= 2), cli.lines
        rc, err = cli.end()  # Ctrl-C is how a stream ends: cleanly
        assert rc == 0 and err == "", (rc, err)
        life = lifecycle(cli.events(), "evc")
        # The sync's VM (created, stopped, deleted) some times, then the life.
        assert life[-len(LIFE):] == LIFE, life
        assert life[-len(LIFE) - 1] == ("vm", "deleted", "stopped", None), life
        assert all(t[2] != "starting" for t in life[:-len(LIFE)]), life
    assert {e.get("name") for e in only.events()} == {"evc"}
    assert {e.get("name") for e in filtered.events()} == {"evc"}
    assert any(e["event"] == "progress" and e["method"] == "vm.create" for e in everything.events())


def test_a_stream_ends_when_the_daemon_goes(env):
    """`banger events` and `vm list --watch` off a terminal: the list again on
    each VM change; both fail clearly when the daemon stops."""
    ev = Cli(env, "events")
    watch = Cli(env, "vm", "list", "--watch")
    watch_json = Cli(env, "vm", "list", "--watch", "--json")
    assert watch.wait(lambda c: any(l.startswith("ID ") for l in c.lines), 30), watch.lines
    sync(env, [ev], "evd")
    create(env, "evd")
    # Each change lists again: the last list shows the VM running.
    assert watch_json.wait(lambda c: any(v["name"] == "evd" and v["state"] == "running"
                                         for v in c.events()[-1]["vms"]), 30), watch_json.lines
    assert watch.wait(lambda c: any(l.split()[1:3] == ["evd", "running"] for l in c.lines if l.strip()), 30)
    assert sum(l.startswith("ID ") for l in watch.lines) >= 2
    env.banger("vm", "stop", "evd")  # (a running VM's delete may race its stop: "was running" or "stopped")
    env.banger("vm", "delete", "evd")
    assert watch_json.wait(lambda c: not any(v["name"] == "evd" for v in c.events()[-1]["vms"]), 30)
    # Readable lines: time, kind, name, what changed.
    assert ev.wait(lambda c: any(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}  vm +evd +deleted \(was stopped\)", l)
                                 for l in c.lines)), "\n".join(ev.lines)
    for l in ("vm +evd +created$", r"vm +evd +created -> starting$", r"vm +evd +starting -> running$",
              r"vm +evd +running -> stopping$", r"vm +evd +stopping -> stopped$"):
        assert any(re.search(l, x) for x in ev.lines), (l, ev.lines)
    env.banger("daemon", "stop")
    for cli in (ev, watch, watch_json):
        rc = cli.p.wait(30)
        err = cli.p.stderr.read()
        assert rc == 1 and "the daemon closed the connection" in err, (rc, err)
        assert err.count("\n") == 1, err
    env.banger("vm", "list")  # a new daemon starts


def tmux(*args, check=True):
    return subprocess.run(["tmux", "-L", "banger-events-test", *args], capture_output=True, text=True, check=check)


class Pane:
    """The tmux pane, read as a Cli's lines are (for sync and saw)."""
    json = False

    @property
    def lines(self):
        return tmux("capture-pane", "-p", "-t", "ev").stdout.splitlines()

    def wait(self, pred, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return True
            time.sleep(0.2)
        return False

    def has(self, pattern):
        return lambda pane: any(re.search(pattern, l) for l in pane.lines)


def test_events_and_watch_on_a_terminal(env, tmp_path):
    """`banger events`, then `vm list --watch`, in a terminal (tmux), each
    ended by Ctrl-C."""
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    envs = " ".join(f"{k}='{v}'" for k, v in env.env.items() if k in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME",
                                                                      "XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "PATH"))
    run = f"ip netns exec {env.ns} env {envs} TERM=xterm {BANGER}"
    script = tmp_path / "session.sh"
    # bash goes on after a child that handled Ctrl-C itself (sh would not).
    script.write_text(f"#!/bin/bash\n{run} events\necho events-rc=$? | tee {tmp_path}/events-rc\n"
                      f"{run} vm list --watch\necho watch-rc=$?\nsleep 600\n")
    script.chmod(0o755)
    tmux("kill-server", check=False)
    tmux("new-session", "-d", "-s", "ev", "-x", "160", "-y", "40", str(script))
    pane = Pane()
    try:
        sync(env, [pane], "evt")
        create(env, "evt")
        assert pane.wait(pane.has(r"^\d\d:\d\d:\d\d\.\d{3}  vm +evt +starting -> running$")), "\n".join(pane.lines)
        tmux("send-keys", "-t", "ev", "C-c")
        rc_file = tmp_path / "events-rc"  # tee makes it, then writes: wait for the line
        assert pane.wait(lambda _: rc_file.exists() and rc_file.read_text().endswith("\n"), 10), "\n".join(pane.lines)
        assert rc_file.read_text() == "events-rc=0\n"

        # The watch: drawn in place, so its header is on the screen once.
        header = r"^\d\d:\d\d:\d\d  banger vm list --watch \(Ctrl-C to stop\)$"
        assert pane.wait(pane.has(r"^[0-9a-f]{12} +evt +running "), 30), "\n".join(pane.lines)
        env.banger("vm", "stop", "evt")
        assert pane.wait(pane.has(r"^[0-9a-f]{12} +evt +stopped "), 30), "\n".join(pane.lines)
        assert sum(bool(re.match(header, l)) for l in pane.lines) == 1, "\n".join(pane.lines)
        assert not any(re.search("events-rc", l) for l in pane.lines)  # the screen was cleared
        tmux("send-keys", "-t", "ev", "C-c")
        assert pane.wait(pane.has("^watch-rc=0$"), 10), "\n".join(pane.lines)
        # Ctrl-C leaves the last list on the screen.
        assert any(re.match(r"^[0-9a-f]{12} +evt +stopped ", l) for l in pane.lines)
        env.banger("vm", "delete", "evt")
    finally:
        tmux("kill-server", check=False)
