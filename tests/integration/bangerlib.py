"""Helpers for integration tests that drive the real banger binaries."""
import ctypes
import json
import os
import pathlib
import socket
import subprocess
import re
import shutil
import time
import urllib.request

import pytest

from conftest import BUILD

BANGER = BUILD / "src/cli/banger"
BANGERD = BUILD / "src/daemon/bangerd"


def run_cli(env, *args, check=False, timeout=120, input=None):
    p = subprocess.run([str(BANGER), *args], env=env, capture_output=True, text=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise AssertionError(f"banger {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def runtime_dir(env):
    return pathlib.Path(env["XDG_RUNTIME_DIR"]) / "banger"


def socket_path(env):
    return runtime_dir(env) / "bangerd.sock"


def start_daemon(env, *args):
    """Start bangerd in the foreground as a child; wait until it answers."""
    p = subprocess.Popen([str(BANGERD), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_socket(socket_path(env), proc=p)
    return p


def wait_for_socket(path, timeout=15, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"bangerd exited {proc.returncode}: {proc.stderr.read()}")
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(path))
            s.close()
            return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"nothing answered on {path} within {timeout}s")


def stop_daemon(p, timeout=15):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


class Rpc:
    """A raw JSON-RPC connection, line framed."""

    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(str(path))  # blocking: waits when the backlog is full
        self.s.settimeout(timeout)
        self.buf = b""
        self.next_id = 1

    def send_raw(self, data: bytes):
        self.s.sendall(data)

    def read_msg(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, method, params=None):
        i = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "method": method, "id": i}
        if params is not None:
            msg["params"] = params
        self.send_raw(json.dumps(msg).encode() + b"\n")
        while True:
            m = self.read_msg()
            if m is None:
                raise ConnectionError("daemon closed the connection")
            if m.get("id") == i or (m.get("id") is None and "error" in m):
                return m

    def closed_by_peer(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


# inotify through ctypes: the tests watch for the very creation of files.
IN_CREATE = 0x100
_libc = ctypes.CDLL(None, use_errno=True)


class Inotify:
    def __init__(self):
        self.fd = _libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")

    def watch(self, path, mask=IN_CREATE):
        wd = _libc.inotify_add_watch(self.fd, str(path).encode(), mask)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        return wd

    def read_names(self):
        data = os.read(self.fd, 65536)
        names, off = [], 0
        while off < len(data):
            wd, mask, cookie, ln = __import__("struct").unpack_from("iIII", data, off)
            name = data[off + 16:off + 16 + ln].rstrip(b"\0").decode()
            names.append((wd, mask, name))
            off += 16 + ln
        return names

    def close(self):
        os.close(self.fd)


def bash_complete(script, env, *words):
    """The words bash completion offers after words, with script sourced."""
    prog = (f'source {script}; COMP_WORDS=({" ".join(repr(w) for w in words)}); '
            f'COMP_CWORD={len(words) - 1}; _banger; printf "%s\\n" "${{COMPREPLY[@]}}"')
    r = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


# Where the slow tests fetch Debian from, and where they cache what they made.
DEBIAN_SUITE = os.environ.get("BANGER_DEBOOTSTRAP_SUITE", "bookworm")
DEBIAN_MIRROR = os.environ.get("BANGER_DEBOOTSTRAP_MIRROR", "http://deb.debian.org/debian")
TEST_CACHE = pathlib.Path(os.environ.get("BANGER_TEST_CACHE", "/var/cache/banger-test"))


def mirror_reachable():
    try:
        with urllib.request.urlopen(f"{DEBIAN_MIRROR}/dists/{DEBIAN_SUITE}/Release", timeout=15) as r:
            return r.status == 200
    except OSError as e:
        print(f"mirror {DEBIAN_MIRROR} unreachable: {e}")
        return False


def man_page_text(src):
    """A manual page rendered as plain text with whitespace squeezed, after
    checking that groff reads it without a warning; skips without groff."""
    groff = shutil.which("groff")
    if not groff:
        pytest.skip("groff is not installed (package groff-base)")
    lint = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", str(src)], capture_output=True, text=True)
    assert lint.returncode == 0 and lint.stderr == "", lint.stderr
    p = subprocess.run([groff, "-man", "-Tascii", "-P", "-cbou", str(src)], capture_output=True, text=True,
                       check=True, env={**os.environ, "MANWIDTH": "200"})
    return re.sub(r"\s+", " ", p.stdout)
