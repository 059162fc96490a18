"""bangerd and the banger CLI, driven as a user would (foundation issue)."""
import json
import os
import pathlib
import select
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time

import shutil

import pytest

from bangerlib import (BANGER, BANGERD, Inotify, Rpc, run_cli, runtime_dir, socket_path, start_daemon, stop_daemon,
                       wait_for_socket)


@pytest.fixture
def daemon(build_dir, xdg):
    p = start_daemon(xdg)
    yield p
    stop_daemon(p)


def test_socket_and_runtime_dir_private_from_birth(build_dir, xdg):
    """Watch the runtime dir being created and the socket being bound: at the
    first moment each exists its mode is already 0700 / 0600, even with a
    permissive umask in the environment."""
    parent = pathlib.Path(xdg["XDG_RUNTIME_DIR"])
    ino = Inotify()
    ino.watch(parent)
    p = subprocess.Popen(["sh", "-c", f"umask 000; exec {BANGERD}"], env=xdg, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        seen_dir_mode = seen_sock_mode = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and seen_sock_mode is None:
            r, _, _ = select.select([ino.fd], [], [], 0.5)
            if not r:
                continue
            for wd, mask, name in ino.read_names():
                if name == "banger" and seen_dir_mode is None:
                    seen_dir_mode = stat.S_IMODE(os.lstat(parent / "banger").st_mode)
                    ino.watch(parent / "banger")
                    # The socket may already exist if we were slow to add the watch.
                    if (parent / "banger/bangerd.sock").exists():
                        seen_sock_mode = stat.S_IMODE(os.lstat(parent / "banger/bangerd.sock").st_mode)
                elif name == "bangerd.sock":
                    seen_sock_mode = stat.S_IMODE(os.lstat(parent / "banger/bangerd.sock").st_mode)
        assert seen_dir_mode == 0o700
        assert seen_sock_mode == 0o600
        st = os.lstat(parent / "banger/bangerd.sock")
        assert stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid()
    finally:
        ino.close()
        stop_daemon(p)


def test_loose_runtime_dir_is_tightened(build_dir, xdg):
    rd = runtime_dir(xdg)
    rd.mkdir(mode=0o755)
    os.chmod(rd, 0o755)
    p = start_daemon(xdg)
    try:
        assert stat.S_IMODE(os.stat(rd).st_mode) == 0o700
    finally:
        stop_daemon(p)


def test_state_and_config_dirs_private(daemon, xdg):
    for d in (xdg["XDG_STATE_HOME"], xdg["XDG_CONFIG_HOME"]):
        assert stat.S_IMODE(os.stat(pathlib.Path(d) / "banger").st_mode) == 0o700
    db = pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/banger.db"
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def test_daemon_status_output(daemon, xdg):
    p = run_cli(xdg, "daemon", "status", check=True)
    assert f"pid {daemon.pid}" in p.stdout
    assert str(socket_path(xdg)) in p.stdout
    assert "schema" in p.stdout and "user mode" in p.stdout
    j = json.loads(run_cli(xdg, "--json", "daemon", "status", check=True).stdout)
    assert j["pid"] == daemon.pid
    assert j["socket"] == str(socket_path(xdg))
    assert j["database"].endswith("/banger/banger.db")
    assert j["schema_version"] == j["schema_latest"] >= 1
    assert j["counts"]["vms"] == 0
    assert j["uptime_sec"] >= 0
    # --json after the command works too.
    j2 = json.loads(run_cli(xdg, "daemon", "status", "--json", check=True).stdout)
    assert j2["pid"] == daemon.pid


def test_daemon_status_when_not_running(build_dir, xdg):
    p = run_cli(xdg, "daemon", "status")
    assert p.returncode == 1
    assert "no daemon answers" in p.stderr
    assert not socket_path(xdg).exists()  # status never starts one


def test_version(build_dir, xdg):
    p = run_cli(xdg, "version", check=True)
    assert p.stdout.startswith("banger ")
    assert run_cli(xdg, "--version", check=True).stdout == p.stdout
    j = json.loads(run_cli(xdg, "--json", "version", check=True).stdout)
    assert set(j) == {"version", "commit"}


def test_usage_errors_exit_2(build_dir, xdg):
    assert run_cli(xdg, "no-such-command").returncode == 2
    assert run_cli(xdg, "daemon", "frobnicate").returncode == 2
    assert run_cli(xdg, "--bogus").returncode == 2
    assert run_cli(xdg, "doctor", "--bogus").returncode == 2
    for args in ([], ["daemon"], ["doctor"], ["version"]):
        p = run_cli(xdg, *args, "--help")
        assert p.returncode == 0 and "Usage: banger" in p.stdout, args


def test_doctor_works_with_daemon_down(build_dir, xdg):
    p = run_cli(xdg, "doctor")
    rows = [l for l in p.stdout.splitlines() if l[:4] in ("PASS", "WARN", "FAIL")]
    checks = {l.split(" ", 1)[1] for l in rows}
    for c in ("/dev/kvm", "/dev/vhost-vsock", "/dev/net/tun", "firecracker", "qemu", "nftables", "ip_forward",
              "runtime dir", "daemon socket", "state dir", "database", "config"):
        assert c in checks, (c, p.stdout)
    # Details are indented under their row.
    assert any(l.startswith("    ") for l in p.stdout.splitlines())
    j = json.loads(run_cli(xdg, "--json", "doctor").stdout)
    assert all(r["status"] in ("PASS", "WARN", "FAIL") and isinstance(r["details"], list) for r in j)
    kvm = next(r for r in j if r["check"] == "/dev/kvm")
    # Usable KVM: the device opens and the CPU has vmx/svm (a paravirtual
    # /dev/kvm in a nested guest opens but cannot run ordinary guests).
    virt = any(f in ("vmx", "svm") for l in open("/proc/cpuinfo") if l.startswith("flags") for f in l.split())
    assert kvm["status"] == ("PASS" if os.access("/dev/kvm", os.R_OK | os.W_OK) and virt else "WARN"), kvm
    assert p.returncode == (1 if any(r["status"] == "FAIL" for r in j) else 0)
    assert not socket_path(xdg).exists()


def test_doctor_reports_running_daemon_socket(daemon, xdg):
    j = json.loads(run_cli(xdg, "--json", "doctor").stdout)
    sock = next(r for r in j if r["check"] == "daemon socket")
    assert sock["status"] == "PASS" and "mode 0600" in sock["details"][0]
    db = next(r for r in j if r["check"] == "database")
    assert db["status"] == "PASS" and "(current)" in db["details"][0]


def test_malformed_requests_get_errors(daemon, xdg):
    bad = [
        b"not json\n",
        b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":1\n",  # truncated
        b"[1,2,3]\n",
        b"42\n",
        b"\"str\"\n",
        b"{\"a\":\"\xff\xfe\"}\n",  # invalid UTF-8
        b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":1,\"id\":2}\n",  # duplicate key
        b"{\"jsonrpc\":\"1.0\",\"method\":\"daemon.ping\",\"id\":1}\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":1}\n",
        b"{\"jsonrpc\":\"2.0\",\"method\":7,\"id\":1}\n",
        b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":{}}\n",
        b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":1,\"params\":[]}\n",
        b"{\"a\":" + b"[" * 100 + b"]" * 100 + b"}\n",  # too deep
        b"{\"a\":\"" + b"x" * (1024 * 1024 + 10) + b"\"}\n",  # over 1 MiB
        b"\x00\x01\x02\n",
    ]
    for i in range(200):
        data = bad[i % len(bad)]
        c = Rpc(socket_path(xdg))
        c.send_raw(data)
        m = c.read_msg()
        assert m is not None, data[:60]
        assert m["error"]["code"] in (-32700, -32600), (data[:60], m)
        assert c.closed_by_peer(), data[:60]
        c.close()
    c = Rpc(socket_path(xdg))
    assert c.call("daemon.ping")["result"]["pong"] is True
    c.close()
    assert daemon.poll() is None


def test_unknown_method_and_bad_params_keep_connection(daemon, xdg):
    c = Rpc(socket_path(xdg))
    m = c.call("no.such.method")
    assert m["error"]["code"] == -32601 and "no.such.method" in m["error"]["message"]
    m = c.call("daemon.ping", {"bogus": 1})
    assert m["error"]["code"] == -32602 and "bogus" in m["error"]["message"]
    assert c.call("daemon.ping")["result"]["pong"] is True
    c.close()


def test_partial_and_pipelined_requests(daemon, xdg):
    c = Rpc(socket_path(xdg))
    msgs = b"".join(json.dumps({"jsonrpc": "2.0", "method": "daemon.ping", "id": i}).encode() + b"\n" for i in range(5))
    for b in msgs[:37], msgs[37:38], msgs[38:]:
        c.send_raw(b)
        time.sleep(0.01)
    ids = [c.read_msg()["id"] for _ in range(5)]
    assert ids == list(range(5))
    c.close()


def test_concurrent_clients(daemon, xdg):
    errors = []

    def client():
        try:
            c = Rpc(socket_path(xdg))
            for _ in range(100):
                r = c.call("daemon.ping")
                if r.get("result", {}).get("pong") is not True:
                    errors.append(r)
            c.close()
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]


def test_connection_limit(daemon, xdg):
    conns = []
    try:
        for _ in range(256):
            conns.append(Rpc(socket_path(xdg)))
        # Make sure the daemon accepted them all before the extra one.
        assert conns[-1].call("daemon.ping")["result"]["pong"] is True
        extra = Rpc(socket_path(xdg))
        m = extra.read_msg()
        assert m["error"]["message"] == "too many connections"
        assert extra.closed_by_peer()
        extra.close()
    finally:
        for c in conns:
            c.close()
    time.sleep(0.2)
    c = Rpc(socket_path(xdg))
    assert c.call("daemon.ping")["result"]["pong"] is True
    c.close()


def test_other_uid_refused(daemon, xdg):
    """A client of another uid is refused by SO_PEERCRED even when it can
    reach the socket (here: uid 65534 keeping CAP_DAC_OVERRIDE through
    setpriv, so only the peer check stands in its way)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client as another uid")
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX);s.settimeout(10);s.connect(sys.argv[1])\n"
        "try: s.sendall(b'{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":1}\\n')\n"
        "except BrokenPipeError: pass\n"
        "d=b''\n"
        "while True:\n"
        "  c=s.recv(4096)\n"
        "  if not c: break\n"
        "  d+=c\n"
        "sys.stdout.write(d.decode())\n"
    )
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+dac_override",
                        "--ambient-caps=+dac_override", "/usr/bin/python3", "-c", code, str(socket_path(xdg))],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    reply = json.loads(p.stdout.splitlines()[0])
    assert "permission denied" in reply["error"]["message"]
    assert "pong" not in p.stdout
    # Without the capability the 0600 socket in a 0700 directory is unreachable.
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", code,
                        str(socket_path(xdg))], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "PermissionError" in p.stderr
    assert daemon.poll() is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(build_dir, xdg, sig):
    p = start_daemon(xdg)
    assert socket_path(xdg).exists()
    p.send_signal(sig)
    assert p.wait(15) == 0
    assert not socket_path(xdg).exists()
    log = (pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/bangerd.log").read_text()
    assert "shutting down" in log and "bangerd stopped" in log


def test_second_daemon_refused(daemon, xdg):
    p = subprocess.run([str(BANGERD)], env=xdg, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "already listening" in p.stderr
    assert daemon.poll() is None
    assert Rpc(socket_path(xdg)).call("daemon.ping")["result"]["pong"] is True


def test_stale_socket_replaced(build_dir, xdg):
    rd = runtime_dir(xdg)
    rd.mkdir(mode=0o700)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(rd / "bangerd.sock"))
    s.close()  # a dead socket file, as a crashed daemon leaves it
    p = start_daemon(xdg)
    try:
        assert Rpc(socket_path(xdg)).call("daemon.ping")["result"]["pong"] is True
    finally:
        stop_daemon(p)


def test_cli_autostarts_daemon_and_stops_it(build_dir, xdg):
    assert not socket_path(xdg).exists()
    p = run_cli(xdg, "daemon", "start", check=True)
    assert "running" in p.stdout
    j = json.loads(run_cli(xdg, "--json", "daemon", "status", check=True).stdout)
    pid = j["pid"]
    os.kill(pid, 0)
    # The daemon is in its own session: it survives its starter.
    assert os.getsid(pid) == pid
    p = run_cli(xdg, "daemon", "stop", check=True)
    assert "stopped" in p.stdout
    assert not socket_path(xdg).exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # Not our child; it is reaped by init, but may linger as a zombie briefly.
        if pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail("daemon still running after stop")
    assert run_cli(xdg, "daemon", "stop", check=True).stdout.strip() == "bangerd is not running"


def test_cli_restarts_different_build(build_dir, xdg, tmp_path):
    """A daemon of another build (a copy of bangerd whose commit string we
    patch) is replaced in user mode."""
    fake = tmp_path / "bangerd-old"
    data = BANGERD.read_bytes()
    j = json.loads(run_cli(xdg, "--json", "version", check=True).stdout)
    commit = j["commit"].encode()
    assert data.count(commit) >= 1
    patched = data.replace(commit, b"0" * len(commit) if commit != b"0" * len(commit) else b"1" * len(commit))
    fake.write_bytes(patched)
    fake.chmod(0o755)
    old = subprocess.Popen([str(fake)], env=xdg, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_socket(socket_path(xdg), proc=old)
    try:
        p = run_cli(xdg, "--json", "daemon", "status", check=False)
        # A daemon the CLI was pointed at is reported, not replaced; the
        # call it refused (the build travels with it) is then sent again.
        p = run_cli(xdg, "--socket", str(socket_path(xdg)), "vm", "list", check=True)
        assert f"warning: the daemon is {j['version']}" in p.stderr and "this CLI is" in p.stderr, p.stderr
        assert p.stdout.startswith("ID") and old.poll() is None
        # status does not auto-(re)start; daemon start does.
        p = run_cli(xdg, "daemon", "start", check=True)
        assert "restarting bangerd" in p.stderr
        old.wait(15)
        j = json.loads(run_cli(xdg, "--json", "daemon", "status", check=True).stdout)
        assert j["commit"] == commit.decode() and j["pid"] != old.pid
    finally:
        if old.poll() is None:
            old.kill()
        run_cli(xdg, "daemon", "stop")


def test_request_for_another_build_refused(daemon, xdg):
    """A request naming another build ("VERSION COMMIT") is refused before it
    runs, with the daemon's build; its own build, or none, runs."""
    v = json.loads(run_cli(xdg, "--json", "version", check=True).stdout)
    c = Rpc(socket_path(xdg))
    for i, build in enumerate(["0.0.1 000000000000", v["version"], f"{v['version']} {v['commit']}x"]):
        c.send_raw(json.dumps({"jsonrpc": "2.0", "method": "daemon.shutdown", "id": i, "build": build}).encode() + b"\n")
        m = c.read_msg()
        assert m["id"] == i and m["error"]["code"] == -32005, m
        assert m["error"]["data"] == {"version": v["version"], "commit": v["commit"]}
        assert v["commit"] in m["error"]["message"] and build in m["error"]["message"]
    assert daemon.poll() is None
    c.send_raw(json.dumps({"jsonrpc": "2.0", "method": "daemon.ping", "id": 9,
                           "build": f"{v['version']} {v['commit']}"}).encode() + b"\n")
    assert c.read_msg()["result"]["pong"] is True
    assert c.call("daemon.ping")["result"]["pong"] is True
    c.close()
    for bad in [7, "", "x" * 129, None]:
        c = Rpc(socket_path(xdg))
        c.send_raw(json.dumps({"jsonrpc": "2.0", "method": "daemon.ping", "id": 1, "build": bad}).encode() + b"\n")
        assert c.read_msg()["error"]["code"] == -32600
        c.close()


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
def test_cli_call_is_one_round_trip(daemon, xdg, tmp_path):
    """banger vm list sends one request, vm.list carrying the CLI's build
    (no daemon.ping before it), and reads one reply."""
    v = json.loads(run_cli(xdg, "--json", "version", check=True).stdout)
    log = tmp_path / "strace"
    p = subprocess.run(["strace", "-f", "-s", "4096", "-e", "trace=sendto,sendmsg,write", "-o", str(log), str(BANGER),
                        "vm", "list"], env=xdg, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    sent = [ln for ln in log.read_text().splitlines() if '\\"jsonrpc\\"' in ln]
    assert len(sent) == 1, sent
    assert '\\"method\\":\\"vm.list\\"' in sent[0]
    assert f'\\"build\\":\\"{v["version"]} {v["commit"]}\\"' in sent[0], sent[0]


def test_check_migrations(build_dir, xdg):
    db = pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/banger.db"
    p = subprocess.run([str(BANGERD), "--check-migrations"], env=xdg, capture_output=True, text=True)
    assert p.returncode == 1 and "pending" in p.stdout
    assert not db.exists()  # inspecting never creates it
    d = start_daemon(xdg)
    stop_daemon(d)
    p = subprocess.run([str(BANGERD), "--check-migrations"], env=xdg, capture_output=True, text=True)
    assert p.returncode == 0 and "compatible" in p.stdout
    con = sqlite3.connect(db)
    latest = con.execute("PRAGMA user_version").fetchone()[0]
    con.execute(f"PRAGMA user_version = {latest + 1}")
    con.commit()
    con.close()
    before = db.read_bytes()
    p = subprocess.run([str(BANGERD), "--check-migrations"], env=xdg, capture_output=True, text=True)
    assert p.returncode == 2 and "newer" in p.stdout
    # The daemon refuses to start on it and leaves it untouched.
    p = subprocess.run([str(BANGERD)], env=xdg, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "newer" in p.stderr
    assert db.read_bytes() == before


def test_bad_config_refused_with_line(build_dir, xdg):
    cfg = pathlib.Path(xdg["XDG_CONFIG_HOME"]) / "banger"
    cfg.mkdir(parents=True, mode=0o700)
    (cfg / "config.toml").write_text('log_level = "debug"\n\n[vm_defaults]\nvcpu = 2\nbogus = 1\n')
    os.chmod(cfg / "config.toml", 0o600)
    p = subprocess.run([str(BANGERD)], env=xdg, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "config.toml:5" in p.stderr and "bogus" in p.stderr
    # The CLI that tries to start it shows why it failed.
    p = run_cli(xdg, "daemon", "start")
    assert p.returncode == 1
    assert "bogus" in p.stderr
    # doctor reports it as a FAIL row.
    j = json.loads(run_cli(xdg, "--json", "doctor").stdout)
    row = next(r for r in j if r["check"] == "config")
    assert row["status"] == "FAIL" and "bogus" in row["details"][0]


def test_config_log_level_used(build_dir, xdg):
    cfg = pathlib.Path(xdg["XDG_CONFIG_HOME"]) / "banger"
    cfg.mkdir(parents=True, mode=0o700)
    (cfg / "config.toml").write_text('log_level = "debug"\n')
    os.chmod(cfg / "config.toml", 0o600)
    p = start_daemon(xdg)
    try:
        Rpc(socket_path(xdg)).call("daemon.ping")
    finally:
        stop_daemon(p)
    log = (pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/bangerd.log").read_text()
    assert "debug" in log and "call daemon.ping" in log


def test_socket_activation(build_dir, xdg):
    """systemd hands over the listening socket: bangerd serves on it and
    leaves the socket file to its owner when it stops."""
    sa = shutil.which("systemd-socket-activate")
    if not sa:
        pytest.skip("systemd-socket-activate is not installed")
    rd = runtime_dir(xdg)
    rd.mkdir(mode=0o700)
    sock = rd / "bangerd.sock"
    envs = [f"-E{k}={xdg[k]}" for k in ("HOME", "XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")]
    p = subprocess.Popen([sa, "-l", str(sock), *envs, str(BANGERD)], env=xdg, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for_socket(sock, proc=p)
        j = json.loads(run_cli(xdg, "--json", "daemon", "status", check=True).stdout)
        assert j["socket_activated"] is True
        assert j["pid"] == p.pid  # systemd-socket-activate execs the daemon
    finally:
        stop_daemon(p)
    assert sock.exists()  # not ours to remove


def test_long_multibyte_error_still_answered(daemon, xdg):
    """An error message cut at the 1 KiB limit must not split a UTF-8
    character (the reply could not be encoded and the client would hang)."""
    c = Rpc(socket_path(xdg), timeout=10)
    for name in ("é" * 600, "ü" * 700, "x" + "€" * 400):
        m = c.call("vm.create", {"name": name})
        assert m["error"]["code"] == -32602, m
        m["error"]["message"].encode("utf-8")
    assert c.call("daemon.ping")["result"]["pong"] is True
    c.close()


def test_closing_connection_does_not_spin(daemon, xdg):
    """A client that pipelines many requests, sends a bad line and never
    reads: the daemon must wait for it, not busy-loop."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(socket_path(xdg)))
    s.settimeout(20)
    req = json.dumps({"jsonrpc": "2.0", "method": "daemon.ping", "id": 1, "params": {"x" * 900: 1}}).encode() + b"\n"
    # Replies (~1 KiB each) pile up unread in the daemon's output buffer.
    s.sendall(req * 3000 + b"not json\n")
    time.sleep(0.3)
    s.sendall(b"more bytes the daemon will not read\n" * 10)  # arrive after it stopped reading
    time.sleep(0.5)
    def cpu():
        f = pathlib.Path(f"/proc/{daemon.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    before = cpu()
    time.sleep(3)
    used = cpu() - before
    s.close()
    assert used < 1.0, f"daemon used {used:.2f} s of CPU in 3 s while waiting on a stuck client"
    assert Rpc(socket_path(xdg)).call("daemon.ping")["result"]["pong"] is True


def test_start_sweeps_leftover_image_dirs(build_dir, xdg):
    """An import or build interrupted by a crash leaves a directory no image
    row names; the next start removes it (and nothing else)."""
    images = pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/images"
    (images / "ghost/sub").mkdir(parents=True)
    (images / "ghost/rootfs.ext4").write_bytes(b"\0" * 4096)
    os.symlink("/etc/passwd", images / "ghost/link")
    p = start_daemon(xdg)
    try:
        assert not (images / "ghost").exists()
        assert pathlib.Path("/etc/passwd").exists()
    finally:
        stop_daemon(p)
