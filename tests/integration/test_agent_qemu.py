"""Agent protocol 2 end to end on a QEMU guest (TCG here, so no vhost-vsock:
the agent's one virtio-serial channel carries everything): many execs at
once while a large copy runs, a terminal session driven through tmux, `vm cp`
round trips, and hostile tar streams refused on both sides. Real CLI,
daemon, helper and guest, inside a network namespace this test creates; the
tests share one booted VM."""
import hashlib
import os
import pathlib
import shutil
import socket
import struct
import subprocess
import tarfile
import io
import time

import pytest

from lifecycle import BANGER, env_with_test_image

pytestmark = pytest.mark.slow

VM = "ag"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = env_with_test_image(tmp_path_factory, "agent-qemu")
    try:
        e.banger("vm", "create", "--name", VM, "--image", "test", "--vmm", "qemu", "--vcpu", "1", "--memory", "512M",
                 "--disk-size", "128M")
        e.vm = e.json("vm", "show", VM)
        yield e
    finally:
        e.teardown()


def popen(env, *args, **kw):
    return subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), *args], env=env.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_exec_latency(env):
    """No reconnect polling on the exec path: each exec is a stream on the
    daemon's standing connection to the agent."""
    times = []
    for _ in range(7):
        t0 = time.monotonic()
        env.banger("vm", "exec", VM, "--", "true")
        times.append((time.monotonic() - t0) * 1000)
    print("vm exec -- true, ms:", " ".join("%.0f" % t for t in times))
    assert sorted(times)[3] < 1000, times


def test_concurrent_execs_while_copying(env, tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.write(os.urandom(50 << 20))
    cp = popen(env, "vm", "cp", str(big), f"{VM}:/tmp/big")
    time.sleep(1)
    t0 = time.monotonic()
    execs = [popen(env, "vm", "exec", VM, "--", "sh", "-c", f"sleep 2; echo {n}") for n in range(8)]
    outs = [p.communicate(timeout=120) for p in execs]
    took = time.monotonic() - t0
    for n, (p, (out, err)) in enumerate(zip(execs, outs)):
        assert p.returncode == 0, err
        assert out == f"{n}\n", (out, err)
    print("8 concurrent execs of sleep 2 during a 50 MiB vm cp: %.1f s" % took)
    # Side by side: one after another would take 16 s or more.
    assert took < 8, took
    out, err = cp.communicate(timeout=600)
    assert cp.returncode == 0, err
    p = env.banger("vm", "exec", VM, "--", "sha256sum", "/tmp/big")
    assert p.stdout.split()[0] == sha256(big)
    env.banger("vm", "exec", VM, "--", "rm", "/tmp/big")


def tmux(*args, check=True):
    return subprocess.run(["tmux", "-L", "banger-test", *args], capture_output=True, text=True, check=check)


def pane_text():
    return tmux("capture-pane", "-p", "-t", "pty").stdout


def wait_pane(pattern, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = pane_text()
        if pattern in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} never appeared in the pane:\n{pane_text()}")


def test_pty_session_through_tmux(env, tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    script = tmp_path / "session.sh"
    envs = " ".join(f"{k}='{v}'" for k, v in env.env.items() if k in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME",
                                                                      "XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "PATH"))
    script.write_text(f"#!/bin/sh\nstty -g > {tmp_path}/before\n"
                      f"ip netns exec {env.ns} env {envs} TERM=xterm {BANGER} vm exec -it {VM} -- sh\n"
                      f"echo $? > {tmp_path}/rc\nstty -g > {tmp_path}/after\nsleep 600\n")
    script.chmod(0o755)
    tmux("kill-server", check=False)
    tmux("new-session", "-d", "-s", "pty", "-x", "100", "-y", "30", str(script))
    try:
        tmux("send-keys", "-t", "pty", "stty size; echo ready-$((6*7))", "Enter")
        text = wait_pane("ready-42")
        assert "30 100" in text, text
        tmux("resize-window", "-t", "pty", "-x", "120", "-y", "40")
        time.sleep(1)
        tmux("send-keys", "-t", "pty", "clear; stty size", "Enter")
        wait_pane("40 120")
        tmux("send-keys", "-t", "pty", "sleep 100", "Enter")
        time.sleep(2)
        t0 = time.monotonic()
        tmux("send-keys", "-t", "pty", "C-c")
        tmux("send-keys", "-t", "pty", "echo alive-$((40+2))", "Enter")
        wait_pane("alive-42", timeout=30)
        assert time.monotonic() - t0 < 30
        tmux("send-keys", "-t", "pty", "exit 4", "Enter")
        deadline = time.monotonic() + 30
        while not (tmp_path / "after").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (tmp_path / "rc").read_text().strip() == "4"
        # The terminal is as banger found it.
        assert (tmp_path / "after").read_text() == (tmp_path / "before").read_text()
    finally:
        tmux("kill-server", check=False)


def make_tree(root):
    root.mkdir()
    (root / "sub/deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "sub/file").write_text("hello\n")
    os.link(root / "sub/file", root / "hardlink")
    os.symlink("sub/file", root / "symlink")
    os.symlink("../file", root / "sub/deeper/up")
    (root / "suid").write_bytes(b"#!/bin/sh\n")
    os.chown(root / "suid", 1234, 5678)
    os.chmod(root / "suid", 0o4755)
    with open(root / "big", "wb") as f:
        f.write(os.urandom(20 << 20))
    os.chmod(root / "big", 0o640)
    os.utime(root / "sub/file", ns=(981173106_123456789, 981173106_123456789))


def describe(root):
    listing = subprocess.run(["find", ".", "-printf", "%m %U %G %s %y %p %l %n %T@\n"], cwd=root,
                             capture_output=True, text=True, check=True).stdout
    lines = sorted(l for l in listing.splitlines() if not l.startswith("755 0 0 ") or " d . " not in l)
    sums = subprocess.run("find . -type f -exec sha256sum {} + | sort", shell=True, cwd=root, capture_output=True,
                          text=True, check=True).stdout
    # Directory sizes depend on the filesystem; their mode, owner and type must match.
    return [l if " d " not in l else " ".join(l.split()[:3] + l.split()[4:6]) for l in lines], sums


def test_cp_round_trip(env, tmp_path):
    src = tmp_path / "tree"
    make_tree(src)
    env.banger("vm", "exec", VM, "--", "mkdir", "-p", "/tmp/in")
    env.banger("vm", "cp", str(src), f"{VM}:/tmp/in")
    st = env.banger("vm", "exec", VM, "--", "stat", "-c", "%a %u %g", "/tmp/in/tree/suid").stdout.split()
    assert st == ["4755", "1234", "5678"]
    back = tmp_path / "back"
    env.banger("vm", "cp", f"{VM}:/tmp/in/tree", str(back))  # a new name: the tree becomes it
    assert describe(back) == describe(src)
    # Into an existing directory, and a directory's contents.
    (tmp_path / "into").mkdir()
    env.banger("vm", "cp", f"{VM}:/tmp/in/tree/sub", str(tmp_path / "into"))
    assert (tmp_path / "into/sub/file").read_text() == "hello\n"
    env.banger("vm", "cp", f"{VM}:/tmp/in/tree/sub/.", str(tmp_path / "contents"))
    assert (tmp_path / "contents/file").read_text() == "hello\n"
    env.banger("vm", "exec", VM, "--", "rm", "-rf", "/tmp/in")


def test_cp_refuses_symlinks_out_of_the_tree(env, tmp_path):
    # Host to guest: the agent refuses, and writes nothing through the link.
    src = tmp_path / "t"
    src.mkdir()
    os.symlink("/etc", src / "abs")
    p = env.banger("vm", "cp", str(src), f"{VM}:/tmp/t1", check=False)
    assert p.returncode == 1 and "refused" in p.stderr and "pointing out of the copied tree" in p.stderr, p.stderr
    # Guest to host: banger refuses.
    env.banger("vm", "exec", VM, "--", "sh", "-c", "mkdir -p /tmp/t2 && ln -s ../../../etc /tmp/t2/up")
    p = env.banger("vm", "cp", f"{VM}:/tmp/t2", str(tmp_path / "out"), check=False)
    assert p.returncode == 1 and "refused" in p.stderr, p.stderr
    assert not (tmp_path / "out/up").exists()
    env.banger("vm", "exec", VM, "--", "rm", "-rf", "/tmp/t1", "/tmp/t2")


# ---- a hostile client of the multiplexer, speaking protocol 2 itself ----

def frame(t, payload):
    return struct.pack(">BI", t, len(payload)) + payload


class Raw:
    """Just enough of protocol 2 (docs/agent-protocol.md) to open one stream."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(path)
        self.s.sendall(frame(0x01, b"BNGR" + struct.pack(">II", 2, 77)))
        t, p = self.read()
        assert t == 0x01 and p[:4] == b"BNGR" and struct.unpack(">I", p[4:8])[0] == 2
        self.window = struct.unpack(">I", p[16:20])[0]

    def read(self):
        hdr = self.recv(5)
        t, n = struct.unpack(">BI", hdr)
        return t, self.recv(n)

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf

    def put(self, dest, data):
        """OPEN files-put, the tar bytes, EOF; returns (exit code, stderr)."""
        req = struct.pack(">I", 0) + dest.encode() + b"\0"
        self.s.sendall(frame(0x30, struct.pack(">IBI", 1, 6, 1 << 20) + req))
        assert len(data) <= self.window
        for i in range(0, len(data), 65536):
            self.s.sendall(frame(0x32, struct.pack(">IB", 1, 0) + data[i:i + 65536]))
        self.s.sendall(frame(0x33, struct.pack(">IB", 1, 0)))
        code, err = None, b""
        while True:
            t, p = self.read()
            if t == 0x32 and p[4] == 2:
                err += p[5:]
            elif t == 0x37:
                code = struct.unpack(">I", p[5:9])[0]
            elif t == 0x38:
                self.s.sendall(frame(0x38, struct.pack(">II", 1, 0)))
                return code, err.decode()


def tar_of(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def reg(name, data=b"evil\n"):
    i = tarfile.TarInfo(name)
    i.size = len(data)
    return i, data


def link(name, target, kind=tarfile.SYMTYPE):
    i = tarfile.TarInfo(name)
    i.type = kind
    i.linkname = target
    return i, None


def dirent(name):
    i = tarfile.TarInfo(name)
    i.type = tarfile.DIRTYPE
    i.mode = 0o755
    return i, None


def test_hostile_streams_refused_by_the_agent(env):
    mux = env.rt / "banger/vms" / env.vm["id"] / "agent-mux.sock"
    assert oct(os.lstat(mux).st_mode & 0o777) == "0o600"
    env.banger("vm", "exec", VM, "--", "mkdir", "-p", "/tmp/dest")
    hostile = [
        [dirent("t"), reg("t/../../evil")],
        [reg("/tmp/evil")],
        [dirent("t"), link("t/l", "../.."), reg("t/l/evil")],
        [dirent("t"), link("t/a", "/tmp")],
        [dirent("t"), link("t/h", "../evil", tarfile.LNKTYPE)],
        [dirent("t"), reg("other")],
    ]
    for entries in hostile:
        code, err = Raw(str(mux)).put("/tmp/dest", tar_of(entries))
        assert code != 0 and "refused" in err, (entries, code, err)
    # Nothing landed outside the destination.
    p = env.banger("vm", "exec", VM, "--", "sh", "-c", "ls /evil /tmp/evil /tmp/dest/evil 2>&1; true")
    assert p.stdout.count("No such file") == 3, p.stdout
    # And a well-formed stream through the same socket works.
    code, err = Raw(str(mux)).put("/tmp/dest", tar_of([dirent("ok"), reg("ok/file", b"fine\n")]))
    assert code == 0, err
    assert env.banger("vm", "exec", VM, "--", "cat", "/tmp/dest/ok/file").stdout == "fine\n"


class FakeMux:
    """A stand-in for the VM's multiplexer socket that answers files-get with
    a given (hostile) tar stream: what a compromised guest could send."""

    def __init__(self, path, data):
        import threading
        self.path, self.data = path, data
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        try:
            c, _ = self.srv.accept()
        except OSError:
            return
        c.settimeout(30)
        r = Raw.__new__(Raw)
        r.s = c
        t, p = r.read()
        nonce = p[8:12]
        caps = b"exec files"
        c.sendall(frame(0x01, b"BNGR" + struct.pack(">I", 2) + nonce + struct.pack(">III", 1 << 20, 1 << 20, 64) + caps))
        t, p = r.read()
        sid = p[:4]
        c.sendall(frame(0x31, sid + struct.pack(">I", 4242)))
        for i in range(0, len(self.data), 65536):
            c.sendall(frame(0x32, sid + b"\x01" + self.data[i:i + 65536]))
        c.sendall(frame(0x37, sid + struct.pack(">BI", 0, 0)) + frame(0x38, sid + struct.pack(">I", 0)))
        try:
            while True:
                r.read()
        except (AssertionError, OSError):
            pass

    def close(self):
        self.srv.close()
        os.unlink(self.path)


def test_hostile_streams_refused_by_the_host(env, tmp_path):
    mux = str(env.rt / "banger/vms" / env.vm["id"] / "agent-mux.sock")
    os.rename(mux, mux + ".real")
    try:
        hostile = [
            [dirent("t"), reg("t/../../evil")],
            [reg(str(tmp_path / "evil"))],
            [dirent("t"), link("t/a", str(tmp_path))],
            [dirent("t"), link("t/h", "../evil", tarfile.LNKTYPE)],
            [dirent("t"), reg("other")],
        ]
        for n, entries in enumerate(hostile):
            fake = FakeMux(mux, tar_of(entries))
            try:
                dest = tmp_path / f"dest{n}"
                p = env.banger("vm", "cp", f"{VM}:/t", str(dest), check=False)
            finally:
                fake.close()
            assert p.returncode == 1 and "refused" in p.stderr, (entries, p.stderr)
        assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()
    finally:
        os.rename(mux + ".real", mux)
    assert env.banger("vm", "exec", VM, "--", "echo", "back").stdout == "back\n"
