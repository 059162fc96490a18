"""The VM lifecycle end to end on the Firecracker path: real banger CLI, real
bangerd and bangerd-root, real disks, TAP and nftables, inside a network
namespace this test creates, with the FAKE Firecracker (tests/fakes/
fake-firecracker) standing in for the one program this machine cannot run
(no KVM). Its guest emulation runs the real banger-agent as PID 1 of its own
namespaces behind the vsock socket, so the agent handshake, exec, poweroff
and the VMM's exit are real; what it does not boot is a kernel or the root
disk (the agent runs on the host's kernel, hence `uname -r` is the host's).
The steps run in order and share one VM, as in test_lifecycle_qemu.py."""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import ROOT
from lifecycle import AGENT, BANGER, Env, kernel_dir, process_gone, require_root
from tmuxlib import banger_pane

pytestmark = pytest.mark.slow

FAKE = ROOT / "tests/fakes/fake-firecracker"
NAME = "lf"
MIB = 1 << 20
CONSOLE_MAX = 1 * MIB  # console_log_max in the test's config.toml


def build_kernel_image():
    """The test image's kernel and rootfs. The fake boots neither, so the
    image is built without an agent (the guest's agent is the build's); the
    daemon still clones and patches the ext4 and decompresses the kernel."""
    p = subprocess.run(["bash", str(ROOT / "tests/images/build-test-image.sh")], capture_output=True, text=True,
                       timeout=1800)
    if p.returncode == 77:
        pytest.skip("test image unavailable: " + (p.stderr.strip().splitlines() or ["no reason"])[-1])
    assert p.returncode == 0, p.stderr[-3000:]
    d = pathlib.Path(p.stdout.strip().splitlines()[-1])
    manifest = dict(l.split("=", 1) for l in (d / "manifest").read_text().splitlines() if "=" in l)
    return d, manifest


def fc_env(tmp_path_factory, name, agent):
    """An Env whose daemon uses the fake Firecracker, its guest emulation
    running `agent`; yields it, then kills what runs in its namespace."""
    require_root()
    for tool in ("/usr/bin/unshare", "/usr/bin/setpriv", "/usr/bin/python3"):
        if not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} is missing: the fake Firecracker's guest emulation needs it")
    e = Env(tmp_path_factory.mktemp(name))
    # The daemon checks /proc/<pid>/comm == "firecracker": a symlink of that
    # name makes the kernel name the fake's process so. The fake reads its
    # options from fake-firecracker.json next to it.
    e.fc_dir = e.tmp / "fc"
    e.fc_dir.mkdir()
    (e.fc_dir / "firecracker").symlink_to(FAKE)
    e.record = e.fc_dir / "record.jsonl"
    (e.fc_dir / "fake-firecracker.json").write_text(json.dumps({"record": str(e.record), "agent": str(agent)}))
    e.setup()
    netns = "net:[%d]" % os.stat(f"/run/netns/{e.ns}").st_ino
    try:
        e.write_config(f'default_vmm = "firecracker"\nfirecracker_bin = "{e.fc_dir / "firecracker"}"\n'
                       f'boot_timeout_sec = 60\nconsole_log_max = "{CONSOLE_MAX // MIB}M"\n')
        e.image_dir, e.manifest = build_kernel_image()
        e.info = {}
        yield e
    finally:
        kill_netns_processes(netns)  # bangerd, bangerd-root, fakes (their guests die with them)
        e.teardown()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not AGENT.exists():
        pytest.fail(f"{AGENT} is not built")
    yield from fc_env(tmp_path_factory, "lifecycle-fc", AGENT.resolve())


def kill_netns_processes(netns):
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.readlink(f"/proc/{d}/ns/net") == netns:
                os.kill(int(d), signal.SIGKILL)
        except OSError:
            pass


def record(env):
    try:
        return [json.loads(l) for l in env.record.read_text().splitlines() if l.strip()]
    except FileNotFoundError:
        return []


def fake_events(env, pid):
    """The record's events of the fake process `pid` (from its bind on)."""
    out, mine = [], False
    for ev in record(env):
        if ev["event"] == "bind":
            mine = ev["pid"] == pid
        elif mine:
            out.append(ev)
    return out


def guest_of(env, pid):
    boots = [ev for ev in fake_events(env, pid) if ev["event"] == "guest-boot"]
    assert len(boots) == 1, boots
    return boots[0]


def guest_processes(pidns):
    """Live processes in the emulated guest's PID namespace."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{d}/ns/pid") == pidns and not process_gone(int(d)):
                out.append(int(d))
        except OSError:
            pass
    return out


def wait_until(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def requests(events, path):
    return [ev for ev in events if ev["event"] == "request" and ev["path"] == path]


def fc_api(sock, method, path, body):
    """One request to the VMM's own API socket, behind the daemon's back."""
    data = json.dumps(body).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(sock))
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    reply = s.recv(4096).decode()
    s.close()
    return int(reply.split()[1])


def assert_released(env, vm):
    """No TAP, no NAT rule, no VMM and no guest process left for `vm`."""
    assert vm["tap"] not in {l["ifname"] for l in env.links()}
    assert vm["ip"] not in env.nft_table()
    assert process_gone(vm["pid"])
    assert wait_until(lambda: not guest_processes(env.info["pidns"]), 5), guest_processes(env.info["pidns"])


def show(env):
    return env.json("vm", "show", NAME)


def test_import_kernel_and_register_image(env, tmp_path):
    k = kernel_dir(tmp_path, env.image_dir, env.manifest)
    out = env.json("kernel", "import", "testk", "--from", str(k))
    # Firecracker boots only an ELF vmlinux: the bzImage was decompressed.
    assert pathlib.Path(out["vmlinux"]).read_bytes()[:4] == b"\x7fELF"
    img = env.json("image", "register", "--name", "test", "--rootfs", str(env.image_dir / "rootfs.ext4"),
                   "--kernel-ref", "testk")
    assert img["name"] == "test" and img["kernel"] == "testk"


def started(env, vm):
    """Checks for a freshly started VM; records its pid and guest."""
    assert vm["state"] == "running", vm
    assert vm["vmm"] == "firecracker"
    assert vm["ready"]["agent"] is True
    guest = guest_of(env, vm["pid"])
    # The boot id came from this guest's agent, through the vsock proxy.
    assert vm["boot_id"] == guest["boot_id"]
    env.info.update(vm=vm, pidns=guest["pidns"])
    links = {l["ifname"]: l for l in env.links()}
    assert vm["tap"] in links and links[vm["tap"]].get("master") == "br-fc"
    assert vm["ip"] in env.nft_table()
    # Firecracker was configured through its API with the VM's files.
    ev = fake_events(env, vm["pid"])
    boot = json.loads(requests(ev, "/boot-source")[-1]["body"])
    assert boot["kernel_image_path"].endswith("vmlinux") and f":{NAME}:eth0:" in boot["boot_args"]
    nic = json.loads(requests(ev, "/network-interfaces/eth0")[-1]["body"])
    assert nic["host_dev_name"] == vm["tap"] and nic["guest_mac"] == vm["mac"]
    assert [json.loads(r["body"])["action_type"] for r in requests(ev, "/actions")] == ["InstanceStart"]


def test_kernel_show_is_cleaned(env):
    """A kernel's version comes from the kernel file an image brought: `kernel
    show` must not print its escape sequences raw."""
    import sqlite3
    env.banger("daemon", "stop")  # the record is changed behind its back: not while it runs
    db = sqlite3.connect(env.state / "banger.db", timeout=30)
    with db:
        old = db.execute("SELECT version FROM kernels WHERE name = 'testk'").fetchone()[0]
        db.execute("UPDATE kernels SET version = ? WHERE name = 'testk'", ("6.1\x1b]0;PWN\x07\x1b[2J",))
    try:
        shown = env.banger("kernel", "show", "testk").stdout
        assert "\x1b" not in shown and "\x07" not in shown, repr(shown)
        assert "6.1?]0;PWN??[2J" in shown, repr(shown)
    finally:
        env.banger("daemon", "stop")
        with db:
            db.execute("UPDATE kernels SET version = ? WHERE name = 'testk'", (old,))
        db.close()


def test_create_reaches_agent_ready(env):
    p = env.banger("vm", "create", "--name", NAME, "--image", "test", "--vmm", "firecracker", "--vcpu", "1",
                   "--memory", "256M", "--disk-size", "64M", "--nat")
    assert "spec:" in p.stdout + p.stderr
    # The fake guest runs no sshd: ready says what works meanwhile.
    assert re.search(r"^ready: .*sshd not listening yet \('banger vm exec' works now; 'banger vm ssh' waits for sshd\)",
                     p.stderr, re.M), p.stderr
    vm = show(env)
    started(env, vm)
    # Starting it again changes nothing and says so.
    assert env.banger("vm", "start", NAME).stdout == f"{NAME} is already running\n"
    assert re.fullmatch(r"[0-9a-f-]{36}", vm["boot_id"])
    rows = env.banger("vm", "list").stdout.splitlines()
    assert rows[0].split() == ["ID", "NAME", "STATE", "IMAGE", "IP", "VCPU", "MEM", "DISK", "CREATED"]
    assert any(f" {NAME} " in f" {r} " and "running" in r for r in rows[1:])
    assert [v["name"] for v in env.json("vm", "list")["vms"]] == [NAME]


def test_exec_passes_output_and_exit_code(env):
    # The emulated guest runs on the host's kernel.
    assert env.banger("vm", "exec", NAME, "--", "uname", "-r").stdout.strip() == os.uname().release
    # Its hostname came from the daemon's kernel command line (ip=).
    assert env.banger("vm", "exec", NAME, "--", "hostname").stdout.strip() == NAME
    p = env.banger("vm", "exec", NAME, "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert p.returncode == 7
    assert p.stdout == "out\n" and "err" in p.stderr
    assert env.banger("vm", "exec", NAME, "--", "cat", input="through stdin\n").stdout == "through stdin\n"
    # The guest has a network stack of its own: bangerd's DNS port in the
    # test's namespace is not among the guest's listening sockets.
    ports = env.json("vm", "ports", NAME)["ports"]
    assert not any(x["port"] == 5354 for x in ports), ports


def test_exec_timeout_exits_124_and_ends_the_command(env):
    # As timeout(1): the command is ended, the exit code is 124, and stderr
    # says why (banger's own failures exit 1).
    t0 = time.monotonic()
    p = env.banger("vm", "exec", "--timeout", "2", NAME, "--", "sh", "-c", "echo begun; exec sleep 37",
                   check=False, timeout=60)
    took = time.monotonic() - t0
    assert p.returncode == 124, (p.returncode, p.stderr)
    assert p.stdout == "begun\n"
    assert "vm exec: 'sh' did not finish within 2 s and was killed (exit 124)" in p.stderr, p.stderr
    assert 2 <= took < 20, took
    # Nothing of it is left running in the guest.
    p = env.banger("vm", "exec", NAME, "--", "pgrep", "-f", "^sleep 37$", check=False)
    assert p.returncode == 1, p.stdout
    # A command that ends in time keeps its own exit code.
    p = env.banger("vm", "exec", "--timeout", "30", NAME, "--", "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3, p.stderr


def test_exec_json_reports_exit_code_and_output(env):
    p = env.banger("vm", "exec", "--json", NAME, "--", "sh", "-c",
                   r"printf 'out\n'; printf 'err\377\n' >&2; cat; exit 7", input="in\n", check=False)
    assert p.returncode == 7, p.stderr
    j = json.loads(p.stdout)
    assert j == {"vm": NAME, "command": ["sh", "-c", r"printf 'out\n'; printf 'err\377\n' >&2; cat; exit 7"],
                 "exit_code": 7, "signal": None, "timed_out": False, "stdout": "out\nin\n",
                 "stderr": "err\ufffd\n", "stdout_truncated": False, "stderr_truncated": False}, j
    # The global option works too; a signal and a timeout are reported.
    p = env.banger("--json", "vm", "exec", NAME, "--", "sh", "-c", "kill -TERM $$", check=False)
    assert p.returncode == 128 + signal.SIGTERM and json.loads(p.stdout)["signal"] == signal.SIGTERM, p.stdout
    p = env.banger("vm", "exec", "--json", "--timeout", "1", NAME, "--", "sleep", "30", check=False, timeout=60)
    assert p.returncode == 124 and json.loads(p.stdout)["timed_out"] is True, (p.stdout, p.stderr)
    # Output past 16 MiB is dropped, and the report says so.
    p = env.banger("vm", "exec", "--json", NAME, "--", "head", "-c", str(17 << 20), "/dev/zero", timeout=120)
    j = json.loads(p.stdout)
    assert len(j["stdout"]) == 16 << 20 and j["stdout_truncated"] is True and j["exit_code"] == 0
    # -t cannot keep stdout and stderr apart.
    p = env.banger("vm", "exec", "--json", "-t", NAME, "--", "true", check=False)
    assert p.returncode == 2 and "--json" in p.stderr


GUEST_LISTENER = r"""
import ctypes, socket, time
ctypes.CDLL(None).prctl(15, b"\x1b]0;PWN\x07\x1b[2J", 0, 0, 0)  # PR_SET_NAME: what the agent reports
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen()
time.sleep(120)
"""


def test_guest_text_is_cleaned_for_the_terminal(env):
    """A guest process named with escape sequences must not reach the
    user's terminal raw through `vm ports` (the table)."""
    env.banger("vm", "exec", NAME, "--", "setsid", "-f", "/usr/bin/python3", "-c", GUEST_LISTENER)
    # Listening and named: the agent maps a port to its process in one pass
    # over /proc and reads the sockets in another, so a port that came up
    # in between is listed without its process until the next query.
    name = "\x1b]0;PWN\x07\x1b[2J"
    listed = lambda: any(x["port"] == 8080 and x["process"] == name for x in env.json("vm", "ports", NAME)["ports"])
    assert wait_until(listed, 30), env.json("vm", "ports", NAME)
    out = env.banger("vm", "ports", NAME).stdout
    assert "8080" in out, out
    assert "\x1b" not in out and "\x07" not in out, repr(out)
    assert "?]0;PWN??[2J" in out, repr(out)
    # --json keeps the name as the guest gave it (escaped by JSON).
    ports = env.json("vm", "ports", NAME)["ports"]
    assert any(x["port"] == 8080 and x["process"] == name for x in ports), ports
    env.banger("vm", "exec", NAME, "--", "pkill", "-x", "-f", ".*PWN.*", check=False)


def test_unserialisable_record_stays_listed(env):
    """A last error that is not valid UTF-8 (as a malicious agent's ERROR
    frame once stored) must not make the VM vanish from `vm list`, and
    `vm show` must print it cleaned."""
    import sqlite3
    db = sqlite3.connect(env.state / "banger.db", timeout=30)
    with db:
        db.execute("UPDATE vms SET last_error = CAST(X'FFFE1B5B324A0A666F72676564' AS TEXT) WHERE name = ?", (NAME,))
    try:
        assert NAME in [v["name"] for v in env.json("vm", "list")["vms"]]
        p = env.banger("vm", "list")
        assert NAME in p.stdout
        shown = env.banger("vm", "show", NAME).stdout
        assert "\x1b" not in shown, repr(shown)
        assert "error:" in shown and "[2J?forged" in shown, repr(shown)
    finally:
        with db:
            db.execute("UPDATE vms SET last_error = NULL WHERE name = ?", (NAME,))
        db.close()


def on_terminal(env, *args):
    """Run banger with its stdout on a pseudo-terminal; returns the bytes."""
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), *args], env=env.env, stdout=slave,
                         stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(timeout=60) == 0, p.stderr.read()
    return out


def test_logs_cleaned_on_a_terminal_raw_with_raw(env):
    """A guest's console output with escape sequences: `vm logs` shows them as
    '?' on a terminal, --raw gives the bytes as they are (invalid UTF-8 too)."""
    env.banger("vm", "exec", NAME, "--", "sh", "-c",
               r'printf "\033]0;PWN\007\033[2J\377\376-logmark-\n" >> /proc/1/fd/1')
    out = b""
    for _ in range(50):
        out = on_terminal(env, "vm", "logs", NAME)
        if b"-logmark-" in out:
            break
        time.sleep(0.1)
    assert b"\x1b" not in out and b"\x07" not in out, out[-300:]
    assert b"?]0;PWN??[2J??-logmark-" in out, out[-300:]
    raw = on_terminal(env, "vm", "logs", "--raw", NAME)
    assert b"\x1b]0;PWN\x07\x1b[2J\xff\xfe-logmark-" in raw, raw[-300:]
    j = env.json("vm", "logs", "--raw", NAME)
    assert j["encoding"] == "base64"
    import base64
    assert b"\x1b[2J\xff\xfe-logmark-" in base64.b64decode(j["data"])
    # Not a terminal: the bytes pass (non-ASCII as '?', the text reply is UTF-8).
    assert "\x1b[2J??-logmark-" in env.banger("vm", "logs", NAME).stdout


FLOOD = r"""
f = open("/proc/1/fd/1", "a")  # the agent's stdout: the console
for i in range(80000):
    f.write("flood %07d %s\n" % (i, "x" * 100))
f.write("-end-of-flood-\n")
"""


def part_size(path):
    """A console part's size, 0 while it does not exist: a rotation renames
    console.log to console.log.1 before it makes the next console.log, so
    for a moment there is none."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def console_bytes(vmdir):
    return sum(part_size(vmdir / n) for n in ("console.log", "console.log.1"))


def console_text(vmdir):
    try:
        return (vmdir / "console.log").read_text(errors="replace")
    except FileNotFoundError:  # between a rotation's rename and the next part
        return ""


class Follower:
    """`vm logs -f`, its output read as it comes (a follower blocked on a
    full pipe would not be following)."""

    def __init__(self, env):
        self.p = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "logs", "-f", NAME],
                                  env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.set_blocking(self.p.stdout.fileno(), False)
        self.out = b""

    def read(self):
        self.out += self.p.stdout.read() or b""
        return self.out


def test_console_is_bounded_and_follow_survives_rotation(env):
    """A guest writes 9 MiB to its console, nine times console_log_max: what
    is kept on disk (console.log and console.log.1) stays within the limit
    the whole time, the newest output is kept, and `vm logs -f` goes on
    printing across the rotations."""
    vmdir = env.state / "vms" / show(env)["id"]
    follow = Follower(env)
    try:
        # Following once it printed the log so far (the boot's lines).
        assert wait_until(lambda: follow.read() or follow.p.poll() is not None, 60), follow.p.stderr.read()
        assert follow.p.poll() is None, follow.p.stderr.read()
        seen = len(follow.out)
        flood = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "exec", NAME, "--",
                                  "/usr/bin/python3", "-c", FLOOD], env=env.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        biggest = 0
        while flood.poll() is None:
            biggest = max(biggest, console_bytes(vmdir))
            follow.read()
            time.sleep(0.01)
        assert flood.returncode == 0, flood.stderr.read()
        assert wait_until(lambda: "-end-of-flood-" in console_text(vmdir), 10)
        assert biggest <= CONSOLE_MAX and console_bytes(vmdir) <= CONSOLE_MAX, (biggest, console_bytes(vmdir))
        assert (vmdir / "console.log.1").exists()
        # The newest output, whole: the last lines before the marker.
        tail = env.banger("vm", "logs", "--tail", "4K", NAME).stdout
        assert "flood 0079999 " in tail and tail.rstrip().endswith("-end-of-flood-"), tail[-300:]
        # The follower saw output written after several rotations.
        assert wait_until(lambda: b"-end-of-flood-" in follow.read()[seen:], 30), \
            (follow.p.poll(), follow.out[-300:], env.daemon_log()[-2000:])
        assert follow.p.poll() is None, follow.p.stderr.read()
    finally:
        follow.p.kill()
        follow.p.wait()


def test_stop_is_graceful(env):
    vm = env.info["vm"]
    t0 = time.monotonic()
    env.banger("vm", "stop", NAME)
    took = time.monotonic() - t0
    assert took < 10, took  # well inside stop_timeout_sec (10 s)
    after = show(env)
    assert after["state"] == "stopped" and after["pid"] is None
    assert_released(env, vm)
    ev = fake_events(env, vm["pid"])
    # The agent powered its guest off and the fake exited like Firecracker:
    # no Ctrl-Alt-Del was needed.
    assert not [r for r in requests(ev, "/actions") if "SendCtrlAltDel" in r["body"]]
    assert any(e["event"] == "guest-exit" for e in ev)
    assert "poweroff requested by the host" in env.banger("vm", "logs", NAME).stdout


def test_start_again_is_a_new_boot(env):
    old = env.info["vm"]
    env.banger("vm", "start", NAME)
    vm = show(env)
    started(env, vm)
    assert vm["pid"] != old["pid"] and vm["boot_id"] != old["boot_id"]
    assert vm["ip"] == old["ip"] and vm["tap"] == old["tap"]


def test_stop_of_a_hung_guest_times_out_and_kills(env):
    """A guest that answers nothing: paused through Firecracker's own API
    (PATCH /vm), its agent cannot take the poweroff and Ctrl-Alt-Del has no
    effect, so the daemon kills the VMM when the timeout ends."""
    vm = env.info["vm"]
    sock = pathlib.Path(env.env["XDG_RUNTIME_DIR"]) / "banger/vms" / vm["id"] / "fc.sock"
    assert fc_api(sock, "PATCH", "/vm", {"state": "Paused"}) == 204
    t0 = time.monotonic()
    env.banger("vm", "stop", NAME, "--timeout", "2")
    took = time.monotonic() - t0
    assert 2 <= took < 15, took
    assert show(env)["state"] == "stopped"
    assert_released(env, vm)
    ev = fake_events(env, vm["pid"])
    assert [r for r in requests(ev, "/actions") if "SendCtrlAltDel" in r["body"]]
    assert not any(e["event"] == "guest-exit" for e in ev)  # it never powered off: it was killed
    assert "did not stop within 2 s; killing it" in env.daemon_log()


def test_kill(env):
    env.banger("vm", "start", NAME)
    vm = show(env)
    started(env, vm)
    t0 = time.monotonic()
    env.banger("vm", "kill", NAME)
    assert time.monotonic() - t0 < 5
    after = show(env)
    assert after["state"] == "stopped" and after["pid"] is None
    assert_released(env, vm)
    assert not any(e["event"] == "guest-exit" for e in fake_events(env, vm["pid"]))


def test_daemon_sigkill_then_reattach(env):
    env.banger("vm", "start", NAME)
    vm = show(env)
    started(env, vm)
    st = env.json("daemon", "status")
    os.kill(st["pid"], signal.SIGKILL)
    assert wait_until(lambda: process_gone(st["pid"]), 5)
    again = show(env)  # autostarts a new daemon, which re-attaches
    assert env.json("daemon", "status")["pid"] != st["pid"]
    assert again["state"] == "running" and again["pid"] == vm["pid"]
    assert "re-attached" in env.daemon_log()
    assert guest_processes(env.info["pidns"])
    # The re-attached VM is fully usable: its agent answers through the daemon's records.
    assert env.banger("vm", "exec", NAME, "--", "hostname").stdout.strip() == NAME
    assert len(requests(fake_events(env, vm["pid"]), "/actions")) == 1  # not started twice


def test_graceful_stop_after_reattach(env):
    """The re-attached VMM is not the new daemon's child: its exit is seen
    through the pidfd alone, and the stop is still the agent's poweroff."""
    vm = env.info["vm"]
    t0 = time.monotonic()
    env.banger("vm", "stop", NAME)
    assert time.monotonic() - t0 < 10
    assert show(env)["state"] == "stopped"
    assert_released(env, vm)
    ev = fake_events(env, vm["pid"])
    assert not [r for r in requests(ev, "/actions") if "SendCtrlAltDel" in r["body"]]
    assert any(e["event"] == "guest-exit" for e in ev)
    env.banger("vm", "start", NAME)
    started(env, show(env))


def exited_and_released(env, vm):
    """The VM is recorded stopped, its NAT rules and its TAP are gone (released right after)."""
    return (show(env)["state"] == "stopped" and vm["ip"] not in env.nft_table()
            and vm["tap"] not in {l["ifname"] for l in env.links()})


def test_vmm_exit_on_its_own_is_seen(env):
    """A VMM that exits without the daemon asking (a crash, a kill from
    outside): its pidfd, watched on the daemon's event loop, turns the VM
    stopped and its TAP and NAT entry are released."""
    vm = show(env)
    assert vm["state"] == "running"
    os.kill(vm["pid"], signal.SIGKILL)
    assert wait_until(lambda: exited_and_released(env, vm), 10), show(env)
    assert show(env)["pid"] is None and show(env)["last_error"] is None
    assert_released(env, vm)
    assert "VMM exited; the VM is stopped" in env.daemon_log()
    env.banger("vm", "start", NAME)
    started(env, show(env))


def test_vmm_exit_after_reattach_is_seen(env):
    """The same for a VMM re-attached after a daemon restart: not the new
    daemon's child, so only its pidfd tells."""
    vm = show(env)
    st = env.json("daemon", "status")
    os.kill(st["pid"], signal.SIGKILL)
    assert wait_until(lambda: process_gone(st["pid"]), 5)
    assert show(env)["state"] == "running"  # a new daemon re-attached
    os.kill(vm["pid"], signal.SIGKILL)
    assert wait_until(lambda: exited_and_released(env, vm), 10), show(env)
    assert_released(env, vm)
    env.banger("vm", "start", NAME)
    started(env, show(env))


def test_delete_leaves_nothing(env):
    vm = show(env)
    assert vm["state"] == "running"
    env.banger("vm", "delete", NAME)
    assert env.banger("vm", "show", NAME, check=False).returncode != 0
    assert not any(l["ifname"] == vm["tap"] for l in env.links())
    assert vm["ip"] not in env.nft_table()
    assert process_gone(vm["pid"])
    assert wait_until(lambda: not guest_processes(env.info["pidns"]), 5)
    assert list((env.state / "vms").iterdir()) == []
    assert list((pathlib.Path(env.env["XDG_RUNTIME_DIR"]) / "banger/vms").iterdir()) == []
    for pid in env.ns_pids():
        if process_gone(pid):
            continue
        cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        assert vm["id"].encode() not in cmd, cmd


def test_stop_interrupts_a_hung_boot(env):
    """A guest whose agent never answers holds its VM in 'starting' for up
    to boot_timeout_sec (60 s here); vm stop must not wait that out."""
    cfg = env.fc_dir / "fake-firecracker.json"
    saved = cfg.read_text()
    cfg.write_text(json.dumps({"record": str(env.record)}))  # no guest emulation: no agent
    create = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "create", "--name", "hang",
                               "--image", "test", "--memory", "256M", "--disk-size", "64M"],
                              env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            p = env.banger("vm", "show", "hang", "--json", check=False)
            if p.returncode == 0 and '"starting"' in p.stdout:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the VM never reached 'starting'")
        pid = env.json("vm", "show", "hang")["pid"]
        t0 = time.monotonic()
        env.banger("vm", "stop", "hang")
        took = time.monotonic() - t0
        out, err = create.communicate(timeout=30)
        assert took < 30, f"vm stop waited {took:.1f} s for the boot timeout"
        assert create.returncode == 1 and "interrupted" in err, err
        vm = env.json("vm", "show", "hang")
        assert vm["state"] == "stopped" and vm["last_error"] is None
        assert pid is None or process_gone(pid)
    finally:
        cfg.write_text(saved)
        if create.poll() is None:
            create.kill()
        env.banger("vm", "delete", "hang", check=False)


def test_run_without_command_opens_a_shell_through_the_agent(env, tmp_path):
    """`vm run` with no command, on a terminal (tmux), in a guest with no
    sshd (the fake's): a login shell through the agent, on a terminal of
    the pane's size; its exit code is banger's, and --rm removes the VM."""
    with banger_pane(env, tmp_path / "run.sh", "banger-run-test",
                     "vm run --rm --name sh1 --image test --vcpu 1 --memory 256M --disk-size 64M", "run") as pane:
        assert pane.has("a shell through banger's agent"), pane.text()
        pane.send("stty size; echo in-$((6*7)); exit 7", "Enter")
        assert pane.has(r"^40 120$", 30), pane.text()
        assert pane.has(r"^in-42$", 30), pane.text()
        assert pane.has(r"^run-rc=7$", 60), pane.text()
    assert "sh1" not in env.banger("vm", "list").stdout


def proc_state(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_fake_pause_right_after_start_outlives_no_guest(env, tmp_path):
    """The fake itself: a guest whose start is slow (held back here for
    3 s before its namespaces are made, as load can) is paused the moment
    InstanceStart answers. The answer waits for the guest's PID 1 to run the
    guest init, so the pause stops every process of the guest, each past
    its exec (unshare's child sets its parent-death signal before that),
    and killing the fake ends the guest rather than leaving a process."""
    sock, gate = tmp_path / "fc.sock", tmp_path / "gate"
    fake = subprocess.Popen(["ip", "netns", "exec", env.ns, str(env.fc_dir / "firecracker"), "--api-sock", str(sock),
                             "--guest-gate", str(gate)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidns = None
    try:
        assert wait_until(sock.exists, 30)
        assert fc_api(sock, "PUT", "/boot-source", {"kernel_image_path": str(FAKE),
                                                    "boot_args": f"ip=::::{NAME}-pause:eth0:off"}) == 204
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(str(sock))

        def request(method, path, body):
            data = json.dumps(body).encode()
            s.sendall(f"{method} {path} HTTP/1.1\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(data)}\r\n\r\n".encode() + data)

        request("PUT", "/actions", {"action_type": "InstanceStart"})
        time.sleep(3)  # the slow start: longer than any bounded wait for it
        gate.touch()
        reply = s.recv(4096).decode()
        assert reply.split()[1] == "204", reply
        request("PATCH", "/vm", {"state": "Paused"})
        reply = s.recv(4096).decode()
        assert reply.split()[1] == "204", reply
        s.close()
        boot = [ev for ev in record(env) if ev["event"] == "guest-boot" and ev["hostname"] == f"{NAME}-pause"]
        assert len(boot) == 1, boot
        ours = os.readlink("/proc/self/ns/pid")
        assert wait_until(lambda: os.readlink(f"/proc/{boot[0]['pid']}/ns/pid_for_children") != ours, 10)
        pidns = os.readlink(f"/proc/{boot[0]['pid']}/ns/pid_for_children")
        assert wait_until(lambda: guest_processes(pidns), 10)
        procs = guest_processes(pidns)
        assert wait_until(lambda: all(proc_state(p) == "T" for p in procs), 10), \
            [(p, proc_state(p)) for p in procs]
        unshare = pathlib.Path(f"/proc/{boot[0]['pid']}/cmdline").read_bytes().split(b"\0")[0]
        assert all(pathlib.Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] != unshare for p in procs)
    finally:
        gate.touch()
        fake.kill()  # ip netns exec execs: this is the fake
        fake.wait()
    assert wait_until(lambda: not guest_processes(pidns), 10), \
        [(p, proc_state(p), pathlib.Path(f"/proc/{p}/cmdline").read_bytes()) for p in guest_processes(pidns)]


def test_reattach_unsure_keeps_the_tap_of_a_vmm_that_may_run(env):
    """A restarted daemon that cannot identify a running VM's VMM (its
    liveness lock is held, but the pidfile and API socket name no VMM)
    marks the VM error and must leave its TAP alone: the VMM may still run
    on it (a QEMU whose TAP went spins on the dead device). Its delete
    finds the VMM again, once it can be identified, and releases the TAP."""
    env.banger("vm", "create", "--name", "lost", "--image", "test", "--vmm", "firecracker", "--vcpu", "1",
               "--memory", "256M", "--disk-size", "64M")
    vm = env.json("vm", "show", "lost")
    assert vm["state"] == "running" and vm["tap"] in {l["ifname"] for l in env.links()}
    run = pathlib.Path(env.env["XDG_RUNTIME_DIR"]) / "banger/vms" / vm["id"]
    hidden = [(run / n, run / f".{n}.hidden") for n in ("fc.sock", "fc.pid")]
    st = env.json("daemon", "status")
    os.kill(st["pid"], signal.SIGKILL)
    assert wait_until(lambda: process_gone(st["pid"]), 5)
    try:
        for path, away in hidden:
            path.rename(away)
        again = env.json("vm", "show", "lost")  # autostarts a daemon; recovery waits 5 s for an identifiable VMM
        assert again["state"] == "error", again
        assert "cannot re-attach" in env.daemon_log()
        assert not process_gone(vm["pid"])
        assert vm["tap"] in {l["ifname"] for l in env.links()}, env.daemon_log()[-2000:]
    finally:
        for path, away in hidden:
            if away.exists():
                away.rename(path)
    env.banger("vm", "delete", "lost")
    assert wait_until(lambda: process_gone(vm["pid"]), 10)
    assert vm["tap"] not in {l["ifname"] for l in env.links()}
