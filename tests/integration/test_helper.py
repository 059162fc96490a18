"""bangerd-root, the privileged helper, driven over its socket as the daemon
would drive it. It runs inside a network namespace this module creates, so
every bridge, TAP and nft table it makes is checked there and vanishes with
the namespace. Needs root; skips otherwise."""
import json
import os
import pathlib
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import BUILD

OWNER = 65534  # nobody / nogroup
FOREIGN = 65533
HELPER = (BUILD / "src/helper/bangerd-root").resolve()

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bangerd-root tests need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 missing"),
]

CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
data = sys.stdin.buffer.read()
try:
    s.sendall(data)
except (BrokenPipeError, ConnectionResetError):
    pass
try:
    s.shutdown(socket.SHUT_WR)
except OSError:
    pass
out = b""
while True:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.buffer.write(out)
"""


def run(*argv, check=True, ns=None):
    if ns:
        argv = ("ip", "netns", "exec", ns) + argv
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=60)


class Helper:
    def __init__(self, ns, state, sockdir, proc, log):
        self.ns, self.state, self.sockdir, self.proc, self.log = ns, state, sockdir, proc, log
        self.sock = str(sockdir / "h.sock")

    def raw(self, data, uid=None, dac_override=False, gid=None, timeout=30):
        """Send raw bytes as one request; returns the parsed reply."""
        if isinstance(data, str):
            data = data.encode()
        argv = [sys.executable, "-c", CLIENT, self.sock]
        if uid is not None:
            pre = ["setpriv", f"--reuid={uid}", f"--regid={uid if gid is None else gid}", "--clear-groups"]
            if dac_override:
                pre += ["--inh-caps=+dac_override", "--ambient-caps=+dac_override"]
            argv = pre + argv
        p = subprocess.run(argv, input=data, capture_output=True, timeout=timeout)
        assert p.returncode == 0, p.stderr.decode()
        return json.loads(p.stdout)

    def call(self, method, params=None, **kw):
        req = {"method": method}
        if params is not None:
            req["params"] = params
        return self.raw(json.dumps(req), **kw)

    def ok(self, method, params=None, **kw):
        r = self.call(method, params, **kw)
        assert r["ok"] is True, r
        return r["result"]

    def links(self):
        return {l["ifname"]: l for l in json.loads(run("ip", "-j", "-d", "link", "show", ns=self.ns).stdout)}


def wait_for_socket(h, deadline=10):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if h.proc.poll() is not None:
            pytest.fail("bangerd-root exited: " + h.log.read_text())
        if os.path.exists(h.sock):
            try:
                if h.call("helper.ping")["ok"]:
                    return
            except (ConnectionRefusedError, FileNotFoundError, AssertionError, json.JSONDecodeError):
                pass
        time.sleep(0.05)
    pytest.fail("bangerd-root did not answer: " + h.log.read_text())


def loops_backed_under(path):
    """{"/dev/loopN": backing file} for the loop devices bound to files below path."""
    out = {}
    for b in pathlib.Path("/sys/block").glob("loop*"):
        try:
            backing = (b / "loop/backing_file").read_text().strip()
        except OSError:
            continue
        if backing.startswith(str(path) + "/"):
            out["/dev/" + b.name] = backing.removesuffix(" (deleted)")
    return out


def detach_loops_under(path):
    for dev in loops_backed_under(path):
        subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)


@pytest.fixture(scope="module")
def helper():
    if not HELPER.exists():
        pytest.fail(f"{HELPER} is not built")
    ns = "bgtest-" + secrets.token_hex(4)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bgh-", dir="/tmp"))
    os.chmod(tmp, 0o711)  # the owner must be able to walk to the socket
    state = tmp / "state"
    state.mkdir(mode=0o755)
    sockdir = tmp / "sock"
    sockdir.mkdir()
    os.chmod(sockdir, 0o711)
    log = tmp / "helper.log"
    run("ip", "netns", "add", ns)
    proc = None
    try:
        with open(log, "w") as lf:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, str(HELPER), "--owner-uid", str(OWNER), "--owner-gid", str(OWNER),
                 "--state-dir", str(state), "--socket", str(sockdir / "h.sock"), "--cidr", "172.16.0.0/24",
                 "--bridge", "br-fc"], stdout=lf, stderr=lf)
        h = Helper(ns, state, sockdir, proc, log)
        wait_for_socket(h)
        yield h
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        detach_loops_under(state)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        text = log.read_text() if log.exists() else ""
        shutil.rmtree(tmp, ignore_errors=True)
    # A clean SIGTERM exit, and no sanitizer report when run from an ASan build.
    assert proc.returncode == 0, text
    assert "Sanitizer" not in text and "runtime error" not in text, text


def test_socket_is_private(helper):
    st = os.lstat(helper.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (OWNER, OWNER)
    d = os.lstat(helper.sockdir)
    assert d.st_uid == 0 and stat.S_IMODE(d.st_mode) == 0o711


def test_ping_reports_configuration(helper):
    r = helper.ok("helper.ping")
    assert r["owner_uid"] == OWNER and r["bridge"] == "br-fc" and r["bridge_ip"] == "172.16.0.1"
    assert r["state_dir"] == str(helper.state)


def test_bridge_ensure_is_idempotent(helper):
    first = helper.ok("bridge.ensure")
    second = helper.ok("bridge.ensure", {"bridge": "br-fc", "ip": "172.16.0.1", "cidr": "172.16.0.0/24"})
    assert first["created"] is True and second["created"] is False
    links = helper.links()
    assert [n for n in links if n.startswith("br-fc")] == ["br-fc"]
    assert links["br-fc"]["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in links["br-fc"]["flags"]
    addrs = json.loads(run("ip", "-j", "-4", "addr", "show", "br-fc", ns=helper.ns).stdout)
    assert [(a["local"], a["prefixlen"]) for a in addrs[0]["addr_info"]] == [("172.16.0.1", 24)]


def test_tap_create_owned_enslaved_up(helper):
    helper.ok("tap.create", {"name": "bgt1"})
    # The owner itself may call too.
    helper.ok("tap.create", {"name": "bgt2", "uid": OWNER, "gid": OWNER}, uid=OWNER)
    links = helper.links()
    for name in ("bgt1", "bgt2"):
        l = links[name]
        assert l["master"] == "br-fc"
        assert "UP" in l["flags"]
        info = l["linkinfo"]["info_data"]
        assert info["type"] == "tap" and info["persist"] is True
        assert str(info["user"]) in (str(OWNER), "nobody")
    assert sorted(helper.ok("tap.list")["taps"]) == ["bgt1", "bgt2"]
    r = helper.call("tap.create", {"name": "bgt1"})
    assert r["ok"] is False and "already exists" in r["error"]


def nft_table(ns):
    p = run("nft", "-j", "list", "table", "ip", "banger", ns=ns, check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables (nft) missing")
def test_nat_apply_and_remove(helper):
    ns = helper.ns
    r = helper.call("nat.apply", {"entries": [{"ip": "172.16.0.2", "tap": "bgt1"}]})
    assert r["ok"] is False and "default route" in r["error"]
    run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", ns=ns)
    run("ip", "link", "set", "up0", "up", ns=ns)
    run("ip", "link", "set", "up1", "up", ns=ns)
    run("ip", "addr", "add", "10.99.0.1/24", "dev", "up0", ns=ns)
    run("ip", "route", "add", "default", "via", "10.99.0.254", "dev", "up0", ns=ns)
    res = helper.ok("nat.apply", {"entries": [{"ip": "172.16.0.2", "tap": "bgt1"},
                                              {"ip": "172.16.0.3", "tap": "bgt2"}]})
    assert res == {"entries": 2, "uplink": "up0", "table": "banger"}
    table = json.dumps(nft_table(ns))
    for needle in ("172.16.0.2", "172.16.0.3", "bgt1", "bgt2", "up0", "masquerade"):
        assert needle in table
    assert run("sysctl", "-n", "net.ipv4.ip_forward", ns=ns).stdout.strip() == "1"
    helper.ok("nat.apply", {"entries": []})
    assert nft_table(ns) is None
    # Put back as the helper found it in the new namespace.
    assert run("sysctl", "-n", "net.ipv4.ip_forward", ns=ns).stdout.strip() == "0"


def test_loop_attach_detach(helper):
    img = helper.state / "disk.img"
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    os.chown(img, OWNER, OWNER)
    dev = helper.ok("loop.attach", {"path": "disk.img", "read_only": True})["device"]
    sysdir = pathlib.Path("/sys/block") / os.path.basename(dev)
    try:
        assert (sysdir / "loop/backing_file").read_text().strip() == str(img)
        assert (sysdir / "ro").read_text().strip() == "1"
        helper.ok("loop.detach", {"device": dev})
        assert not (sysdir / "loop/backing_file").exists()
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_reconcile_removes_orphans(helper):
    ns = helper.ns
    # A stale TAP of this owner's on this bridge (one the helper did not make).
    run("ip", "tuntap", "add", "bgt9", "mode", "tap", "user", str(OWNER), ns=ns)
    run("ip", "link", "set", "bgt9", "master", "br-fc", ns=ns)
    img = helper.state / "orphan.img"
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    os.chown(img, OWNER, OWNER)
    keep = helper.state / "keep.img"
    with open(keep, "wb") as f:
        f.truncate(1 << 20)
    os.chown(keep, OWNER, OWNER)
    orphan_dev = helper.ok("loop.attach", {"path": "orphan.img"})["device"]
    keep_dev = helper.ok("loop.attach", {"path": "keep.img"})["device"]
    try:
        res = helper.ok("reconcile", {"keep_taps": ["bgt1", "bgt2"], "keep_files": ["keep.img"]})
        assert res["taps"] == ["bgt9"]
        assert res["loops"] == [{"device": orphan_dev, "file": str(img)}]
        links = helper.links()
        assert "bgt9" not in links and "bgt1" in links and "bgt2" in links
        assert not (pathlib.Path("/sys/block") / os.path.basename(orphan_dev) / "loop/backing_file").exists()
        assert (pathlib.Path("/sys/block") / os.path.basename(keep_dev) / "loop/backing_file").exists()
    finally:
        helper.ok("loop.detach", {"device": keep_dev})


def test_tap_delete(helper):
    helper.ok("tap.delete", {"name": "bgt2"})
    assert "bgt2" not in helper.links()
    assert helper.ok("tap.list")["taps"] == ["bgt1"]


def test_resolved_configure_reports_clearly(helper):
    r = helper.call("resolved.configure")
    if r["ok"]:
        pytest.skip("systemd-resolved is running here; the refusal path cannot be shown")
    assert r["errno"] == "EOPNOTSUPP" and "systemd-resolved is not running" in r["error"]


def test_dm_snapshot(helper):
    for name in ("base.img", "cow.img"):
        with open(helper.state / name, "wb") as f:
            f.truncate(1 << 20)
        os.chown(helper.state / name, OWNER, OWNER)
    r = helper.call("dm.snapshot.create", {"name": "banger-t1", "base": "base.img", "cow": "cow.img"})
    if not os.path.exists("/dev/mapper/control"):
        assert r["ok"] is False and r["errno"] == "EOPNOTSUPP" and "device-mapper" in r["error"]
        pytest.skip("device-mapper is missing on this host (/dev/mapper/control); only the refusal was checked")
    assert r["ok"], r
    assert os.path.exists(r["result"]["device"])
    helper.ok("dm.snapshot.remove", {"name": "banger-t1"})
    assert not os.path.exists(r["result"]["device"])


def plant_bad_files(state):
    """Traps inside the state directory that a client might try to use."""
    for name, target in (("shadow", "/etc/shadow"), ("etcdir", "/etc")):
        if not (state / name).is_symlink():
            os.symlink(target, state / name)
    (state / "subdir").mkdir(exist_ok=True)
    if not (state / "fifo").exists():
        os.mkfifo(state / "fifo")
    (state / "rootfile").write_bytes(b"x" * 4096)  # owned by root, not the owner


LONG = "x" * (70 * 1024)

BAD_REQUESTS = [
    # paths
    ("loop-dotdot", {"method": "loop.attach", "params": {"path": "../../etc/shadow"}}, "EPERM", "not a clean relative path"),
    ("loop-inner-dotdot", {"method": "loop.attach", "params": {"path": "subdir/../../x"}}, "EPERM", "not a clean relative path"),
    ("loop-absolute", {"method": "loop.attach", "params": {"path": "/etc/shadow"}}, "EPERM", "absolute"),
    ("loop-symlink-file", {"method": "loop.attach", "params": {"path": "shadow"}}, "EPERM", "symlink"),
    ("loop-symlink-dir", {"method": "loop.attach", "params": {"path": "etcdir/shadow"}}, "EPERM", "symlink"),
    ("loop-dot", {"method": "loop.attach", "params": {"path": "."}}, "EPERM", "not a clean relative path"),
    ("loop-empty", {"method": "loop.attach", "params": {"path": ""}}, "EPERM", "not a clean relative path"),
    ("loop-missing", {"method": "loop.attach", "params": {"path": "nope.img"}}, "ENOENT", "does not exist"),
    ("loop-not-owner", {"method": "loop.attach", "params": {"path": "rootfile"}}, "EPERM", "not by the owner"),
    ("loop-directory", {"method": "loop.attach", "params": {"path": "subdir"}}, "EPERM", "not a regular file"),
    ("loop-fifo", {"method": "loop.attach", "params": {"path": "fifo"}}, "EPERM", "not a regular file"),
    ("loop-detach-foreign", {"method": "loop.detach", "params": {"device": "/dev/loop0"}}, "EPERM", "not backed by a file in the state directory"),
    ("loop-detach-not-loop", {"method": "loop.detach", "params": {"device": "/dev/sda"}}, "EINVAL", "not a loop device"),
    ("dm-bad-name", {"method": "dm.snapshot.create", "params": {"name": "root", "base": "a", "cow": "b"}}, "EINVAL", "invalid dm device name"),
    ("dm-traversal", {"method": "dm.snapshot.create", "params": {"name": "banger-x", "base": "../a", "cow": "b"}}, "EPERM", "not a clean relative path"),
    # bridges
    ("bridge-eth0", {"method": "bridge.ensure", "params": {"bridge": "eth0"}}, "EPERM", "not a banger bridge"),
    ("bridge-br0", {"method": "bridge.ensure", "params": {"bridge": "br0"}}, "EPERM", "not a banger bridge"),
    ("bridge-br-fcx", {"method": "bridge.ensure", "params": {"bridge": "br-fcx"}}, "EPERM", "not a banger bridge"),
    ("bridge-other", {"method": "tap.create", "params": {"name": "bgt5", "bridge": "br-fc-other"}}, "EPERM", "not the configured bridge"),
    ("bridge-ip", {"method": "bridge.ensure", "params": {"ip": "10.0.0.1"}}, "EPERM", "differs from the configured"),
    ("bridge-cidr", {"method": "bridge.ensure", "params": {"cidr": "0.0.0.0/0"}}, "EPERM", "differs from the configured"),
    # TAP names
    ("tap-foreign", {"method": "tap.create", "params": {"name": "eth0"}}, "EINVAL", "invalid TAP name"),
    ("tap-prefix-only", {"method": "tap.create", "params": {"name": "bgt"}}, "EINVAL", "invalid TAP name"),
    ("tap-too-long", {"method": "tap.create", "params": {"name": "bgt1234567890123"}}, "EINVAL", "invalid TAP name"),
    ("tap-upper", {"method": "tap.create", "params": {"name": "bgtA"}}, "EINVAL", "invalid TAP name"),
    ("tap-shell", {"method": "tap.delete", "params": {"name": "bgt1;rm"}}, "EINVAL", "invalid TAP name"),
    ("tap-nul", {"method": "tap.delete", "params": {"name": "bgt1\u0000x"}}, "EBADMSG", "is not allowed"),
    # ids
    ("tap-uid-root", {"method": "tap.create", "params": {"name": "bgt5", "uid": 0}}, "EPERM", "uid 0 is not the owner's"),
    ("tap-gid-root", {"method": "tap.create", "params": {"name": "bgt5", "gid": 0}}, "EPERM", "gid 0 is not the owner's"),
    ("tap-uid-negative", {"method": "tap.create", "params": {"name": "bgt5", "uid": -1}}, "EINVAL", "non-negative integer"),
    # addresses
    ("nat-outside", {"method": "nat.apply", "params": {"entries": [{"ip": "10.0.0.5", "tap": "bgt1"}]}}, "EPERM", "not a host address inside the VM network"),
    ("nat-bridge-ip", {"method": "nat.apply", "params": {"entries": [{"ip": "172.16.0.1", "tap": "bgt1"}]}}, "EPERM", "bridge's own address"),
    ("nat-broadcast", {"method": "nat.apply", "params": {"entries": [{"ip": "172.16.0.255", "tap": "bgt1"}]}}, "EPERM", "not a host address"),
    ("nat-malformed-ip", {"method": "nat.apply", "params": {"entries": [{"ip": "172.16.0", "tap": "bgt1"}]}}, "EINVAL", "not an IPv4 address"),
    ("nat-ip-junk", {"method": "nat.apply", "params": {"entries": [{"ip": "172.16.0.2; flush ruleset", "tap": "bgt1"}]}}, "EINVAL", "not an IPv4 address"),
    ("nat-bad-tap", {"method": "nat.apply", "params": {"entries": [{"ip": "172.16.0.2", "tap": "eth0"}]}}, "EINVAL", "invalid TAP name"),
    ("nat-entry-extra", {"method": "nat.apply", "params": {"entries": [{"ip": "172.16.0.2", "tap": "bgt1", "port": 1}]}}, "EINVAL", "unknown field 'port'"),
    ("nat-entry-type", {"method": "nat.apply", "params": {"entries": ["172.16.0.2"]}}, "EINVAL", "must be an object"),
    ("nat-entries-type", {"method": "nat.apply", "params": {"entries": {}}}, "EINVAL", "field 'entries' must be an array"),
    ("nat-missing", {"method": "nat.apply", "params": {}}, "EINVAL", "missing field 'entries'"),
    # reconcile
    ("reconcile-bad-tap", {"method": "reconcile", "params": {"keep_taps": ["eth0"], "keep_files": []}}, "EINVAL", "invalid TAP name"),
    ("reconcile-bad-file", {"method": "reconcile", "params": {"keep_taps": [], "keep_files": ["../x"]}}, "EPERM", "not a clean relative path"),
    ("reconcile-missing", {"method": "reconcile", "params": {"keep_taps": []}}, "EINVAL", "missing field 'keep_files'"),
    # protocol
    ("unknown-method", {"method": "system.shell", "params": {}}, "EOPNOTSUPP", "unknown method 'system.shell'"),
    ("unknown-field", {"method": "tap.list", "params": {"all": True}}, "EINVAL", "unknown field 'all'"),
    ("unknown-top-field", {"method": "helper.ping", "id": 1}, "EINVAL", "unknown field 'id'"),
    ("wrong-type-name", {"method": "tap.create", "params": {"name": 5}}, "EINVAL", "field 'name' must be a string"),
    ("wrong-type-ro", {"method": "loop.attach", "params": {"path": "x", "read_only": "yes"}}, "EINVAL", "must be a boolean"),
    ("missing-name", {"method": "tap.create", "params": {}}, "EINVAL", "missing field 'name'"),
    ("missing-method", {"params": {}}, "EINVAL", "missing field 'method'"),
    ("method-type", {"method": ["helper.ping"]}, "EINVAL", "field 'method' must be a string"),
    ("params-array", {"method": "helper.ping", "params": []}, "EINVAL", "'params' must be an object"),
]

RAW_BAD_REQUESTS = [
    ("oversized", '{"method":"helper.ping","params":{"pad":"' + LONG + '"}}', "EMSGSIZE", "larger than 65536 bytes"),
    ("malformed", '{"method": "helper.ping",', "EBADMSG", "malformed JSON"),
    ("not-json", "rm -rf /", "EBADMSG", "malformed JSON"),
    ("two-objects", '{"method":"helper.ping"}{"method":"helper.ping"}', "EINVAL", "more than one JSON value"),
    ("two-lines", '{"method":"helper.ping"}\n{"method":"tap.list"}\n', "EINVAL", "more than one JSON value"),
    ("empty", "", "EINVAL", "empty request"),
    ("top-array", '[{"method":"helper.ping"}]', "EINVAL", "must be a JSON object"),
    ("deep", '{"method":"helper.ping","params":{"a":' + "[" * 50 + "]" * 50 + "}}", "EINVAL", "nests deeper"),
    ("duplicate-key", '{"method":"helper.ping","method":"tap.list"}', "EBADMSG", "duplicate"),
    ("invalid-utf8", b'{"method":"helper.ping\xff"}', "EBADMSG", "malformed JSON"),
]


@pytest.mark.parametrize("name,req,errno,text", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_refused(helper, name, req, errno, text):
    plant_bad_files(helper.state)
    before = helper.links().keys()
    r = helper.raw(json.dumps(req))
    assert r["ok"] is False, r
    assert r["errno"] == errno, r
    assert text in r["error"], r
    assert helper.links().keys() == before  # nothing was created or removed
    assert helper.call("helper.ping")["ok"] is True  # and the helper is still there


@pytest.mark.parametrize("name,raw,errno,text", RAW_BAD_REQUESTS, ids=[b[0] for b in RAW_BAD_REQUESTS])
def test_bad_raw_request_refused(helper, name, raw, errno, text):
    r = helper.raw(raw)
    assert r["ok"] is False and r["errno"] == errno and text in r["error"], r
    assert helper.call("helper.ping")["ok"] is True


def test_hostile_corpus_size():
    """The table above is the hostile-input corpus against bangerd-root."""
    n = len(BAD_REQUESTS) + len(RAW_BAD_REQUESTS)
    print(f"\nhostile requests to bangerd-root: {n} in the corpus")
    assert n >= 50


def test_connection_flood(helper):
    """Hundreds of connections held open, half of them with a request never
    finished: the helper answers or refuses clearly (a uid may hold only so
    many at once), and serves again once they are gone."""
    held = []
    try:
        for i in range(300):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(helper.sock)
            except OSError:
                s.close()
                break
            held.append(s)
            if i % 2:
                try:
                    s.sendall(b'{"method":"helper.ping"')
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused: more at once than one uid may have
        assert len(held) >= 32
        # While they are held: an answer, or the clear refusal of a flood.
        r = helper.call("helper.ping", timeout=30)
        assert r["ok"] is True or "too many concurrent requests" in r["error"], r
    finally:
        for s in held:
            s.close()
    assert helper.proc.poll() is None
    assert helper.call("helper.ping")["ok"] is True


def test_symlink_targets_untouched(helper):
    plant_bad_files(helper.state)
    r = helper.call("loop.attach", {"path": "shadow"})
    assert not r["ok"]
    for b in pathlib.Path("/sys/block").glob("loop*"):
        f = b / "loop/backing_file"
        if f.exists():
            assert f.read_text().strip() not in ("/etc/shadow",)


def test_foreign_peer_refused(helper):
    # dac_override lets uid 65533 open the 0600 socket: only SO_PEERCRED stops it.
    r = helper.call("tap.create", {"name": "bgt7"}, uid=FOREIGN, dac_override=True)
    assert r["ok"] is False and r["errno"] == "EPERM"
    assert f"uid {FOREIGN} is neither root nor the owner" in r["error"]
    assert "bgt7" not in helper.links()


def test_foreign_peer_cannot_reach_socket(helper):
    p = subprocess.run(["setpriv", f"--reuid={FOREIGN}", f"--regid={FOREIGN}", "--clear-groups",
                        sys.executable, "-c", CLIENT, helper.sock], input=b"{}", capture_output=True, timeout=30)
    assert p.returncode != 0 and b"PermissionError" in p.stderr


def test_owner_peer_still_validated(helper):
    r = helper.call("tap.create", {"name": "bgt5", "uid": 0}, uid=OWNER)
    assert r["ok"] is False and "not the owner's" in r["error"]


def start_helper(args, tmp):
    return subprocess.run([str(HELPER)] + args, capture_output=True, text=True, timeout=15)


@pytest.fixture
def scratch():
    d = pathlib.Path(tempfile.mkdtemp(prefix="bgh-", dir="/tmp"))
    os.chmod(d, 0o711)
    (d / "state").mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def base_args(d, sockdir="sock"):
    return ["--owner-uid", str(OWNER), "--owner-gid", str(OWNER), "--state-dir", str(d / "state"),
            "--socket", str(d / sockdir / "h.sock")]


def test_refuses_non_root(scratch):
    p = subprocess.run(["setpriv", f"--reuid={OWNER}", f"--regid={OWNER}", "--clear-groups", str(HELPER)]
                       + base_args(scratch), capture_output=True, text=True, timeout=15)
    assert p.returncode != 0 and "must run as root" in p.stderr


def test_refuses_socket_dir_not_root_owned(scratch):
    (scratch / "sock").mkdir(mode=0o711)
    os.chown(scratch / "sock", OWNER, OWNER)
    p = start_helper(base_args(scratch), scratch)
    assert p.returncode != 0 and "must be owned by root" in p.stderr
    assert not (scratch / "sock/h.sock").exists()


def test_refuses_socket_dir_symlink(scratch):
    (scratch / "real").mkdir(mode=0o711)
    os.symlink(scratch / "real", scratch / "sock")
    p = start_helper(base_args(scratch), scratch)
    assert p.returncode != 0 and "not a symlink" in p.stderr


def test_refuses_world_writable_state_dir(scratch):
    os.chmod(scratch / "state", 0o777)
    p = start_helper(base_args(scratch), scratch)
    assert p.returncode != 0 and "not writable by group or others" in p.stderr


def test_refuses_bridge_ip_outside_cidr(scratch):
    p = start_helper(base_args(scratch) + ["--cidr", "172.16.0.0/24", "--bridge-ip", "172.17.0.1"], scratch)
    assert p.returncode != 0 and "bridge address '172.17.0.1' is not a host address inside" in p.stderr


def test_refuses_foreign_bridge_option(scratch):
    p = start_helper(base_args(scratch) + ["--bridge", "eth0"], scratch)
    assert p.returncode != 0 and "invalid bridge name 'eth0'" in p.stderr


def test_sigterm_removes_socket(scratch):
    proc = subprocess.Popen([str(HELPER)] + base_args(scratch), stderr=subprocess.PIPE, text=True)
    try:
        h = Helper(None, scratch / "state", scratch / "sock", proc, scratch / "none")
        h.log.write_text("")
        wait_for_socket(h)
        d = os.lstat(scratch / "sock")
        assert d.st_uid == 0 and stat.S_IMODE(d.st_mode) == 0o711  # created by the helper
        proc.terminate()
        assert proc.wait(10) == 0
        assert not os.path.exists(h.sock)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
