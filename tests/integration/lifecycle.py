"""Shared scaffolding for the end-to-end lifecycle tests: a network
namespace, a private XDG tree, the banger CLI run inside the namespace (it
autostarts bangerd there, which starts bangerd-root)."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import BUILD, ROOT

BANGER = BUILD / "src/cli/banger"
AGENT = BUILD / "src/agent/banger-agent"


class Env:
    def __init__(self, tmp):
        self.ns = "bgt-" + uuid.uuid4().hex[:8]
        self.tmp = pathlib.Path(tmp)
        self.rt = pathlib.Path(tempfile.mkdtemp(prefix="bgl-", dir="/tmp"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "BANGER_"))}
        self.env.update(HOME=str(self.tmp / "home"), XDG_CONFIG_HOME=str(self.tmp / "config"),
                        XDG_STATE_HOME=str(self.tmp / "state"), XDG_CACHE_HOME=str(self.tmp / "cache"),
                        XDG_RUNTIME_DIR=str(self.rt))
        (self.tmp / "home").mkdir(parents=True, exist_ok=True)
        self.state = self.tmp / "state/banger"

    def setup(self):
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self.netns_id = "net:[%d]" % os.stat(f"/run/netns/{self.ns}").st_ino
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
        # An "uplink": a veth into a second namespace of ours, so the VM
        # namespace has a default route for NAT. No traffic leaves it.
        self.up = self.ns + "-up"
        subprocess.run(["ip", "netns", "add", self.up], check=True)
        for cmd in (["ip", "-n", self.ns, "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
                     "netns", self.up],
                    ["ip", "-n", self.ns, "addr", "add", "198.18.0.1/30", "dev", "uplink0"],
                    ["ip", "-n", self.ns, "link", "set", "uplink0", "up"],
                    ["ip", "-n", self.up, "addr", "add", "198.18.0.2/30", "dev", "uplink1"],
                    ["ip", "-n", self.up, "link", "set", "uplink1", "up"],
                    ["ip", "-n", self.ns, "route", "add", "default", "via", "198.18.0.2"]):
            subprocess.run(cmd, check=True)

    def write_config(self, text):
        d = self.tmp / "config/banger"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        (d / "config.toml").write_text(text)
        os.chmod(d / "config.toml", 0o600)

    def banger(self, *args, check=True, timeout=600, input=None):
        p = subprocess.run(["ip", "netns", "exec", self.ns, str(BANGER), *args], env=self.env, capture_output=True,
                           text=True, timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"banger {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\n"
                                 f"stderr:\n{p.stderr}\n--- daemon log ---\n{self.daemon_log()[-4000:]}")
        return p

    def json(self, *args):
        """--json prints progress events as JSON lines, then the result last."""
        out = self.banger(*args, "--json").stdout
        dec, i, last = json.JSONDecoder(), 0, None
        while i < len(out):
            if out[i].isspace():
                i += 1
                continue
            last, i = dec.raw_decode(out, i)
        return last

    def in_ns(self, *argv, check=True):
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True, text=True, check=check,
                              timeout=120)

    def daemon_log(self):
        try:
            return (self.state / "bangerd.log").read_text(errors="replace")
        except OSError:
            return ""

    def ns_pids(self):
        p = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True)
        return [int(x) for x in p.stdout.split()]

    def links(self):
        return json.loads(self.in_ns("ip", "-j", "link").stdout)

    def nft_table(self):
        p = self.in_ns("nft", "-j", "list", "table", "ip", "banger", check=False)
        return p.stdout if p.returncode == 0 else ""

    def teardown(self):
        # By namespace inode, not `ip netns pids`: that misses processes that
        # moved or whose lookup races the deletion; nothing may outlive a test.
        netns_id = getattr(self, "netns_id", None)
        for d in os.listdir("/proc"):
            try:
                if d.isdigit() and (int(d) in self.ns_pids() if netns_id is None
                                    else os.readlink(f"/proc/{d}/ns/net") == netns_id):
                    os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.up], capture_output=True)
        shutil.rmtree(self.rt, ignore_errors=True)


def build_test_image():
    """The small bootable guest (Debian kernel, busybox, dropbear, agent), cached."""
    p = subprocess.run(["bash", str(ROOT / "tests/images/build-test-image.sh"), "--agent", str(AGENT)],
                       capture_output=True, text=True, timeout=1800)
    if p.returncode == 77:
        pytest.skip("test image unavailable: " + (p.stderr.strip().splitlines() or ["no reason"])[-1])
    assert p.returncode == 0, p.stderr[-3000:]
    d = pathlib.Path(p.stdout.strip().splitlines()[-1])
    manifest = dict(l.split("=", 1) for l in (d / "manifest").read_text().splitlines() if "=" in l)
    return d, manifest


def env_with_test_image(tmp_path_factory, name):
    """An Env set up in its namespace, with the test guest's kernel imported
    as 'testk' and its image registered as 'test'; torn down on failure."""
    require_root()
    e = Env(tmp_path_factory.mktemp(name))
    e.setup()
    try:
        e.image_dir, e.manifest = build_test_image()
        k = kernel_dir(e.tmp, e.image_dir, e.manifest)
        e.banger("kernel", "import", "testk", "--from", str(k))
        e.banger("image", "register", "--name", "test", "--rootfs", str(e.image_dir / "rootfs.ext4"),
                 "--kernel-ref", "testk")
    except BaseException:
        e.teardown()
        raise
    return e


def kernel_dir(tmp, image_dir, manifest):
    """A directory laid out like an unpacked Debian kernel package."""
    k = pathlib.Path(tmp) / "kernel"
    k.mkdir(exist_ok=True)
    rel = manifest["KERNEL_RELEASE"]
    shutil.copyfile(image_dir / "vmlinuz", k / f"vmlinuz-{rel}")
    shutil.copyfile(image_dir / "initrd.img", k / f"initrd.img-{rel}")
    return k


def process_gone(pid):
    """Not running: gone, or a zombie nobody reaped (a VMM outlives the daemon
    that started it and is reparented; this machine's init may not reap)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, TAP devices, nftables")
