"""Shared helpers for banger's benchmarks: statistics, a small table
printer, a time budget, cleanup on signals, and the network-namespace + XDG
scaffolding the lifecycle tests use (tests/integration/lifecycle.py), so the
real CLI and daemon run isolated from the host.

Python 3 standard library only; run with /usr/bin/python3."""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
SKIP = 77
# Results and progress (stderr) interleave in order when both go to one file.
sys.stdout.reconfigure(line_buffering=True)


def build_dir(arg):
    """The build to measure: --build, else $BANGER_BUILD_DIR, else build/."""
    d = pathlib.Path(arg or os.environ.get("BANGER_BUILD_DIR") or ROOT / "build")
    return d if d.is_absolute() else ROOT / d


def skip(why):
    print(f"skipped: {why}", file=sys.stderr)
    sys.exit(SKIP)


def die(why):
    print(f"error: {why}", file=sys.stderr)
    sys.exit(1)


def require_root():
    if os.geteuid() != 0:
        skip("needs root (network namespaces, TAP devices, loop mounts)")


class Interrupted(Exception):
    pass


def raise_on_signals():
    """Turn SIGTERM/SIGINT/SIGHUP into an exception so every finally block
    (namespaces, mounts, processes) still runs."""
    def handler(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, handler)


class Budget:
    """A wall-clock budget for a whole benchmark: loops stop early (and say
    so) rather than overrun."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self):
        return self.end - time.monotonic()

    def expired(self):
        return self.left() <= 0


def median(xs):
    s = sorted(xs)
    if not s:
        return float("nan")
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100) of a list."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def table(headers, rows):
    """Print rows (lists of strings) under headers, columns left-aligned."""
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def run(argv, timeout=120, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode}: {(p.stderr or p.stdout)[-2000:]}")
    return p


def fmt_s(x):
    return f"{x:.3f} s"


class BangerEnv:
    """A network namespace with an uplink veth into a second namespace (so
    the VM namespace has a default route for NAT; no traffic leaves it), a
    private XDG tree, and the banger CLI run inside the namespace (it
    autostarts bangerd there)."""

    def __init__(self, build, prefix):
        self.build = build
        self.banger_bin = build / "src/cli/banger"
        tag = uuid.uuid4().hex[:8]
        self.ns = f"{prefix}-{tag}"
        self.up = self.ns + "-up"
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/var/tmp"))
        # Runtime paths must stay short (sun_path is 108 bytes).
        self.rt = pathlib.Path(tempfile.mkdtemp(prefix=f"{prefix}r-", dir="/tmp"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "BANGER_"))}
        self.env.update(HOME=str(self.tmp / "home"), XDG_CONFIG_HOME=str(self.tmp / "config"),
                        XDG_STATE_HOME=str(self.tmp / "state"), XDG_CACHE_HOME=str(self.tmp / "cache"),
                        XDG_RUNTIME_DIR=str(self.rt))
        (self.tmp / "home").mkdir(parents=True)
        self.state = self.tmp / "state/banger"
        self.made = []

    def setup(self, uplink=True):
        for ns in (self.ns, self.up) if uplink else (self.ns,):
            run(["ip", "netns", "add", ns])
            self.made.append(ns)
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"])
        if not uplink:
            return
        for cmd in (["ip", "-n", self.ns, "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
                     "netns", self.up],
                    ["ip", "-n", self.ns, "addr", "add", "198.18.0.1/30", "dev", "uplink0"],
                    ["ip", "-n", self.ns, "link", "set", "uplink0", "up"],
                    ["ip", "-n", self.up, "addr", "add", "198.18.0.2/30", "dev", "uplink1"],
                    ["ip", "-n", self.up, "link", "set", "uplink1", "up"],
                    ["ip", "-n", self.ns, "route", "add", "default", "via", "198.18.0.2"]):
            run(cmd)

    def in_ns(self, argv):
        return ["ip", "netns", "exec", self.ns, *map(str, argv)]

    def banger(self, *args, timeout=300, check=True):
        p = subprocess.run(self.in_ns([self.banger_bin, *args]), env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"banger {' '.join(args)} exited {p.returncode}\n{p.stdout[-2000:]}\n"
                               f"{p.stderr[-2000:]}\n--- daemon log ---\n{self.daemon_log()[-3000:]}")
        return p

    def json(self, *args, timeout=300):
        """The last JSON value of a --json command (progress events come first)."""
        return json_values(self.banger(*args, "--json", timeout=timeout).stdout)[-1]

    def daemon_log(self):
        try:
            return (self.state / "bangerd.log").read_text(errors="replace")
        except OSError:
            return ""

    def ns_pids(self):
        p = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True)
        return [int(x) for x in p.stdout.split()]

    def teardown(self):
        if self.ns in self.made:
            subprocess.run(self.in_ns([self.banger_bin, "daemon", "stop"]), env=self.env, capture_output=True,
                           timeout=30)
            for pid in self.ns_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for _ in range(50):
                if not self.ns_pids():
                    break
                time.sleep(0.1)
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.rt, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Xfs:
    """An XFS filesystem in an image file, loop-mounted at dir/mnt."""

    def __init__(self, dir, size):
        self.img = dir / "xfs.img"
        self.mnt = dir / "mnt"
        self.loop = None
        self.mounted = False
        with open(self.img, "wb") as f:
            f.truncate(size)
        p = run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(self.img)], check=False)
        if p.returncode != 0:
            skip(f"mkfs.xfs failed: {p.stderr.strip()}")
        self.mnt.mkdir()
        self.loop = run(["losetup", "--find", "--show", str(self.img)]).stdout.strip()
        run(["mount", "-t", "xfs", self.loop, str(self.mnt)])
        self.mounted = True

    def close(self):
        if self.mounted:
            subprocess.run(["umount", str(self.mnt)], capture_output=True)
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True)


def json_values(text):
    """Every JSON value in a stream of concatenated values."""
    dec, i, out = json.JSONDecoder(), 0, []
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        v, i = dec.raw_decode(text, i)
        out.append(v)
    return out


def test_image(build):
    """The cached bootable test guest (tests/images/build-test-image.sh) with
    this build's agent: (directory, manifest dict)."""
    agent = build / "src/agent/banger-agent"
    p = subprocess.run(["bash", str(ROOT / "tests/images/build-test-image.sh"), "--agent", str(agent)],
                       capture_output=True, text=True, timeout=1800)
    if p.returncode == SKIP:
        skip("test image unavailable: " + (p.stderr.strip().splitlines() or ["no reason"])[-1])
    if p.returncode != 0:
        die("building the test image failed: " + p.stderr[-2000:])
    d = pathlib.Path(p.stdout.strip().splitlines()[-1])
    manifest = dict(line.split("=", 1) for line in (d / "manifest").read_text().splitlines() if "=" in line)
    return d, manifest


def cpu_seconds(pid):
    """User + system CPU seconds a process (all its threads) has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_qemu(marker):
    """The pid of the QEMU whose command line mentions marker (a path of this
    run's own), or None."""
    m = marker.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm", "rb") as f:
                if not f.read().startswith(b"qemu-system"):
                    continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if m in f.read():
                    return int(d)
        except OSError:
            continue
    return None


def qemu_sample(pid):
    """What a QEMU process has cost since it started: its CPU seconds (all
    threads, /proc/PID/stat) and, for its busiest thread (the TCG vCPU), the
    seconds it ran and the seconds it was runnable but waited for a host CPU
    (/proc/PID/task/TID/schedstat), and how often it was preempted
    (nonvoluntary context switches)."""
    if pid is None:
        return None
    try:
        cpu = cpu_seconds(pid)
        best = (0, 0, 0)
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, wait_ns = (int(x) for x in f.read().split()[:2])
            if run_ns > best[0]:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    inv = int(re.search(r"nonvoluntary_ctxt_switches:\s*(\d+)", f.read()).group(1))
                best = (run_ns, wait_ns, inv)
        return {"cpu": cpu, "run": best[0] / 1e9, "wait": best[1] / 1e9, "preempted": best[2],
                "context": process_context(pid)}
    except (OSError, AttributeError):
        return None


def process_context(pid):
    """How the host runs a process: what banger could do differently from a
    plain exec of the same command line (scheduling, placement, limits,
    cgroup, open files, environment)."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    ctx = {"nice": st[16], "policy": st[38], "rt priority": st[37],
           "cpus allowed": status.get("Cpus_allowed_list", "?").strip()}
    with open(f"/proc/{pid}/cgroup") as f:
        ctx["cgroup"] = f.read().strip()
    # With sched_autogroup_enabled, each session is a scheduling group of
    # its own: CPU time is shared between the groups first.
    ctx["session"] = "its own" if os.getsid(pid) == pid else "its parent's"
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            ctx["autogroup"] = f.read().strip()
    except OSError:
        pass
    with open(f"/proc/{pid}/limits") as f:
        ctx["limits"] = " ".join(f.read().split())
    for ns in ("mnt", "net", "pid", "uts", "ipc", "cgroup"):
        ctx[f"{ns} namespace"] = os.readlink(f"/proc/{pid}/ns/{ns}")
    fds = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        fds.append(re.sub(r"/[^ ]*/", ".../", target) if target.startswith("/") else target.split(":")[0])
    ctx["fds"] = f"{len(fds)}: " + ", ".join(fds)
    with open(f"/proc/{pid}/environ", "rb") as f:
        ctx["environment"] = " ".join(sorted(e.split(b"=", 1)[0].decode() for e in f.read().split(b"\0") if e))
    return ctx



def guest_timeline(console):
    """The guest's own clock at two points of its boot, from its serial
    console: the kernel handing over to the initramfs ("Run /init", a printk
    timestamp) and the ready line (the uptime it prints). NaN where absent."""
    try:
        text = console.read_bytes() if console else b""
    except OSError:
        text = b""
    init = re.search(rb"\[\s*([0-9]+\.[0-9]+)\] Run /init as init process", text)
    ready = re.search(rb"banger-guest: ready \(uptime ([0-9.]+)s\)", text)
    return {"init": float(init.group(1)) if init else float("nan"),
            "ready": float(ready.group(1)) if ready else float("nan")}


def fmt_sample(x):
    """A qemu_sample() as 'CPU s, vCPU ran / waited s, preempted'."""
    if not x:
        return "?"
    return f"{x['cpu']:.2f} s, {x['run']:.2f} / {x['wait']:.2f} s, {x['preempted']:.0f}"

def compile_c(src, out, *extra):
    """Build one of bench/'s helper programs with the system cc, into a
    temporary directory (nothing is written to the source tree)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        skip("no C compiler (cc) for the benchmark's helper program")
    run([cc, "-O2", "-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wformat=2",
         "-Wvla", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wimplicit-fallthrough", "-o", str(out),
         str(ROOT / "bench" / src), *extra])
    return out


def entry(main):
    """Run a benchmark's main: an interruption or a failed step ends it with
    one line on stderr (cleanup has run in main's finally blocks)."""
    try:
        main()
    except Interrupted as e:
        print(f"interrupted ({e}); cleaned up", file=sys.stderr)
        sys.exit(130)
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
