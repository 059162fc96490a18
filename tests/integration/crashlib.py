"""Crash consistency: a random VM operation, bangerd SIGKILLed in the middle
of it (in some rounds bangerd-root too), a new daemon started, and the host
checked against the database once its start-up reconcile is done.

The rounds are drawn from one seeded RNG: the seed is printed at the start
and with every violation, and BANGER_CRASH_SEED replays a run. A violation
is a string naming the round, the operation and what was left; the run goes
on after one (each is reported once) so that a long run counts them."""
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import time

from lifecycle import BANGER, process_gone

TAP_PREFIX = "bgt"  # src/shared/net/tap.h: banger's TAP names
LIVE = ("starting", "running", "paused", "stopping")
TRANSITIONAL = ("starting", "stopping")
VMM_COMMS = ("firecracker", "qemu-system-x86")  # /proc/PID/comm (15 characters at most)


def crash_seed():
    s = os.environ.get("BANGER_CRASH_SEED")
    return int(s) if s else random.SystemRandom().randrange(1 << 32)


def ns_processes(netns_id):
    """{pid: comm} of the live processes in the network namespace (zombies
    are gone: a VMM outlives the daemon that started it, and nobody may
    reap it here)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{d}/ns/net") != netns_id or process_gone(int(d)):
                continue
            out[int(d)] = pathlib.Path(f"/proc/{d}/comm").read_text().strip()
        except OSError:
            pass
    return out


def all_threads_gone(pid):
    """No thread of the process is alive (process_gone looks at the main
    thread only)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    return all(process_gone_task(pid, t) for t in tids)


def process_gone_task(pid, tid):
    try:
        stat = pathlib.Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def loop_backing_files():
    """Backing files of every loop device (the kernel's own view)."""
    out = []
    for f in pathlib.Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            out.append(f.read_text().strip())
        except OSError:
            pass
    return out


def vmm_guest_state(fc_sock, qmp_sock, timeout=10):
    """Firecracker's GET / state or QEMU's query-status; None when the VMM
    cannot be asked (gone: the process check reports that)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            if fc_sock.exists():
                s.connect(str(fc_sock))
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n")
                reply = b""
                while b"}" not in reply:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
                return json.loads(reply.split(b"\r\n\r\n", 1)[1]).get("state")
            if qmp_sock.exists():
                s.connect(str(qmp_sock))
                f = s.makefile("rwb")
                f.readline()  # the greeting
                for cmd in ("qmp_capabilities", "query-status"):
                    f.write(json.dumps({"execute": cmd}).encode() + b"\n")
                    f.flush()
                    while True:
                        msg = json.loads(f.readline())
                        if "return" in msg or "error" in msg:
                            break
                return msg.get("return", {}).get("status")
    except (OSError, ValueError, IndexError):
        return None
    return None


class Harness:
    """Drives one Env (lifecycle.Env, set up with an image 'test') through
    crash rounds. `vmm_args` are extra `vm create` options (size, VMM)."""

    def __init__(self, env, seed, create_args, max_vms=5, op_timeout=120, settle=20, only=None):
        self.env = env
        self.seed = seed
        self.rng = random.Random(seed)
        self.create_args = list(create_args)
        self.max_vms = max_vms
        self.op_timeout = op_timeout
        self.settle = settle
        self.only = only  # the operations drawn from (default: all)
        self.netns_id = "net:[%d]" % os.stat(f"/run/netns/{env.ns}").st_ino
        self.runtime = pathlib.Path(env.env["XDG_RUNTIME_DIR"]) / "banger"
        self.violations = []
        self.seen = set()
        self.counter = 0
        self.kills = 0
        self.helper_kills = 0
        self.daemon_pid = None

    # -- the system as it is ------------------------------------------------

    def cli(self, *args, timeout=120):
        return subprocess.run(["ip", "netns", "exec", self.env.ns, str(BANGER), *args], env=self.env.env,
                              capture_output=True, text=True, timeout=timeout)

    def cli_json(self, *args):
        p = self.cli(*args, "--json")
        if p.returncode != 0:
            raise AssertionError(f"banger {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}\n"
                                 f"--- daemon log ---\n{self.env.daemon_log()[-3000:]}")
        dec, i, last = json.JSONDecoder(), 0, None  # progress lines, then the result
        while i < len(p.stdout):
            if p.stdout[i].isspace():
                i += 1
                continue
            last, i = dec.raw_decode(p.stdout, i)
        return last

    def vms(self):
        return self.cli_json("vm", "list")["vms"]

    def snapshots(self):
        return self.cli_json("snapshot", "list")["snapshots"]

    def start_daemon(self):
        """A new bangerd (the CLI starts it on demand); its recovery and
        reconcile are done once it answers, since it listens only after."""
        p = self.cli("daemon", "start")
        if p.returncode != 0:
            raise AssertionError(f"banger daemon start exited {p.returncode}: {p.stderr.strip()}\n"
                                 f"--- daemon log ---\n{self.env.daemon_log()[-3000:]}")
        st = self.cli_json("daemon", "status")
        self.daemon_pid = st["pid"]
        return st["pid"]

    def vmm_pids(self):
        return [p for p, c in ns_processes(self.netns_id).items() if c.startswith(VMM_COMMS)]

    def helper_pids(self):
        return [p for p, c in ns_processes(self.netns_id).items() if c == "bangerd-root"]

    # -- invariants ------------------------------------------------------------

    def check(self):
        """What is wrong now, as a list of strings (empty: nothing)."""
        vms = self.vms()
        snaps = self.snapshots()
        bad = []
        live = {v["id"]: v for v in vms if v["state"] in LIVE}
        for v in vms:
            if v["state"] in TRANSITIONAL:
                bad.append(f"vm {v['name']} stuck in {v['state']}")
        for s in snaps:
            if s["state"] != "ready":
                bad.append(f"snapshot {s['name']} stuck in {s['state']}")
        for key in ("ip", "mac", "tap"):
            vals = [v.get(key) for v in vms if v.get(key)]
            dup = {x for x in vals if vals.count(x) > 1}
            if dup:
                bad.append(f"VMs share {key} {sorted(dup)}")
        # TAPs: exactly those of live VMs.
        taps = {l["ifname"] for l in self.env.links() if l["ifname"].startswith(TAP_PREFIX)}
        need = {v["tap"] for v in live.values() if v.get("tap")}
        for t in sorted(taps - need):
            bad.append(f"TAP {t} belongs to no live VM")
        for t in sorted(need - taps):
            bad.append(f"live VM with TAP {t} has none")
        bad += self.check_nat(live)
        bad += self.check_processes(vms, live)
        bad += self.check_files(vms, live, snaps)
        bad += self.check_guests(live)
        for f in loop_backing_files():
            if f.startswith(str(self.env.tmp)):
                bad.append(f"loop device left on {f}")
        return bad

    def check_nat(self, live):
        bad = []
        table = self.env.nft_table()
        rules = [json.dumps(x["rule"]) for x in json.loads(table)["nftables"] if "rule" in x] if table else []
        want = {v["ip"] for v in live.values() if v.get("nat")}
        for ip in sorted(want):
            if not any(f'"{ip}"' in r for r in rules):
                bad.append(f"NAT VM at {ip} has no NAT rule")
        for r in rules:
            for ip in sorted(self.all_ips - want):
                if f'"{ip}"' in r:
                    bad.append(f"NAT rule for {ip}, not a running NAT VM: {r[:200]}")
        return bad

    def check_processes(self, vms, live):
        bad = []
        procs = ns_processes(self.netns_id)
        vmms = {p: c for p, c in procs.items() if c.startswith(VMM_COMMS)}
        pids = {v.get("pid") for v in live.values()}
        for p, c in sorted(vmms.items()):
            if p not in pids:
                owner = [v["name"] for v in vms if v.get("pid") == p]
                bad.append(f"VMM process {p} ({c}) without a live VM (record: {owner or 'none'})")
        for v in live.values():
            if not v.get("pid") or v["pid"] not in vmms:
                bad.append(f"vm {v['name']} is {v['state']} without its VMM (pid {v.get('pid')})")
        # A helper killed under a running daemon (one a CLI autostarted) is
        # started again by the daemon's next call that needs it: none is fine.
        for name, ok in (("bangerd", (1,)), ("bangerd-root", (0, 1))):
            n = sum(1 for c in procs.values() if c == name)
            if n not in ok:
                bad.append(f"{n} {name} processes")
        return bad

    def check_guests(self, live):
        """A running VM's VMM has started its guest: not Firecracker's "Not
        started", not QEMU's "prelaunch" (-S, never cont-ed)."""
        bad = []
        for v in live.values():
            if v["state"] != "running":
                continue
            d = self.runtime / "vms" / v["id"]
            state = vmm_guest_state(d / "fc.sock", d / "qmp.sock")
            if state in ("Not started", "prelaunch"):
                bad.append(f"vm {v['name']} is running but its VMM never started the guest ({state})")
        return bad

    def check_files(self, vms, live, snaps):
        bad = []
        ids = {v["id"] for v in vms}
        for d, allowed in ((self.env.state / "vms", ids), (self.runtime / "vms", set(live))):
            for f in sorted(d.iterdir()) if d.exists() else []:
                if f.name not in allowed:
                    bad.append(f"{f} has no {'live ' if allowed is not ids else ''}VM")
        dirs = {pathlib.Path(s["dir"]).name for s in snaps}
        d = self.env.state / "snapshots"
        for f in sorted(d.iterdir()) if d.exists() else []:
            if f.name not in dirs:
                bad.append(f"{f} has no snapshot record")
        return bad

    def settled_check(self):
        """Invariants, retried for a while: a VMM asked to power off before
        the kill may exit only now, and its exit is then seen and released."""
        deadline = time.monotonic() + self.settle
        while True:
            self.all_ips = {v["ip"] for v in self.vms() if v.get("ip")} | self.all_ips_ever
            bad = self.check()
            # What was reported already is not waited out again.
            if set(bad) <= self.seen or time.monotonic() > deadline:
                return bad
            time.sleep(0.5)

    # -- operations ------------------------------------------------------------

    def name(self):
        self.counter += 1
        return f"c{self.counter}"

    def pick_op(self, vms, snaps):
        by = lambda *st: [v["name"] for v in vms if v["state"] in st]  # noqa: E731
        stopped = by("stopped", "created", "error")
        running = by("running")
        paused = by("paused")
        users = [s["name"] for s in snaps if s["kind"] == "user"]
        ops = []
        if len(vms) < self.max_vms:
            ops += [("create", None)] * 3 + [("create-nat", None)] * 3
            if users:
                ops += [("clone", self.rng.choice(users))] * 2
        if stopped:
            ops += [("start", self.rng.choice(stopped))] * 2
        if running:
            ops += [("stop", self.rng.choice(running)), ("restart", self.rng.choice(running)),
                    ("kill", self.rng.choice(running)), ("snapshot", self.rng.choice(running)),
                    ("pause", self.rng.choice(running))]
        if paused:
            ops += [("resume", self.rng.choice(paused)), ("stop", self.rng.choice(paused))]
        names = {v["id"]: v["name"] for v in vms}
        own = [(names[s["vm_id"]], s["name"]) for s in snaps if s["kind"] == "user" and s.get("vm_id") in names]
        if own:
            ops += [("restore", self.rng.choice(own))]
        if vms:
            ops += [("delete", self.rng.choice([v["name"] for v in vms]))]
        if self.only:
            ops = [o for o in ops if o[0] in self.only]
        return self.rng.choice(ops)

    def argv(self, op, target):
        if op in ("create", "create-nat"):
            return ["vm", "create", "--name", self.name(), *self.create_args] + (["--nat"] if op == "create-nat"
                                                                                   else [])
        if op == "clone":
            return ["vm", "create", "--name", self.name(), "--from-snapshot", target]
        if op == "snapshot":
            return ["vm", "snapshot", target, "--name", f"s{self.name()}"]
        if op == "restore":
            return ["vm", "restore", *target]
        if op == "delete":
            return ["vm", "delete", "--force", target]
        return ["vm", op, target]

    def round(self, i, max_delay):
        vms, snaps = self.vms(), self.snapshots()
        op, target = self.pick_op(vms, snaps)
        argv = self.argv(op, target)
        delay = self.rng.uniform(0, max_delay)
        helper_too = self.rng.random() < 0.25
        helper_first = helper_too and self.rng.random() < 0.5
        gap = self.rng.uniform(0, 0.5)
        what = (f"round {i} (seed {self.seed}): banger {' '.join(argv)}, bangerd SIGKILLed after {delay:.2f} s"
                + (f", bangerd-root {'first' if helper_first else 'after it'} ({gap:.2f} s apart)"
                   if helper_too else ""))
        print(what, flush=True)
        proc = subprocess.Popen(["ip", "netns", "exec", self.env.ns, str(BANGER), *argv], env=self.env.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        helpers = self.helper_pids()
        if helper_first:
            self.kill_all(helpers)
            time.sleep(gap)
        os.kill(self.daemon_pid, signal.SIGKILL)
        self.kills += 1
        if helper_too and not helper_first:
            time.sleep(gap)
            self.kill_all(helpers)
        try:
            out, err = proc.communicate(timeout=self.op_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.report(what, [f"the CLI did not return within {self.op_timeout} s of the daemon's death"])
        self.wait_gone(what, self.daemon_pid)
        last = (err.strip().splitlines() or [""])[-1][:160]
        print(f"  -> exit {proc.returncode}{': ' + last if proc.returncode else ''}", flush=True)
        self.start_daemon()
        self.all_ips_ever |= {v["ip"] for v in self.vms() if v.get("ip")}
        bad = self.settled_check()
        self.report(what, bad)

    def wait_gone(self, what, pid, limit=120):
        """Until every thread of the SIGKILLed daemon is gone: its main
        thread turns zombie while another (an fsync on a loaded disk) still
        holds the listening socket, and a CLI connecting then reaches the
        dying daemon instead of starting a new one."""
        t0 = time.monotonic()
        while not all_threads_gone(pid):
            if time.monotonic() - t0 > limit:
                self.report(what, [f"bangerd pid {pid} still there {limit} s after SIGKILL"])
                return
            time.sleep(0.02)
        if time.monotonic() - t0 > 2:
            print(f"  (bangerd took {time.monotonic() - t0:.1f} s to die)", flush=True)

    def kill_all(self, pids):
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
                self.helper_kills += 1
            except ProcessLookupError:
                pass

    def report(self, what, bad):
        new = [b for b in bad if b not in self.seen]
        self.seen |= set(bad)
        for b in new:
            msg = f"VIOLATION after {what}: {b}"
            print(msg, flush=True)
            self.violations.append(msg)
        if new:
            print("--- daemon log (tail) ---\n" + self.env.daemon_log()[-4000:], flush=True)

    def run(self, kills, max_delay):
        print(f"crash harness: seed {self.seed} (BANGER_CRASH_SEED={self.seed} replays), {kills} kills", flush=True)
        self.all_ips_ever = set()
        self.start_daemon()
        t0 = time.monotonic()
        for i in range(1, kills + 1):
            self.round(i, max_delay)
        self.cleanup_and_check()
        took = time.monotonic() - t0
        print(f"crash harness: seed {self.seed}: {self.kills} bangerd kills ({self.helper_kills} bangerd-root), "
              f"{len(self.violations)} violations, {took:.0f} s", flush=True)
        return took

    def cleanup_and_check(self):
        """Delete everything; nothing may be left."""
        what = f"the final delete (seed {self.seed})"
        names = [v["name"] for v in self.vms()]
        if names:
            p = self.cli("vm", "delete", "--force", *names, timeout=300)
            if p.returncode != 0:
                self.report(what, [f"vm delete --force failed: {p.stderr.strip()[-500:]}"])
        p = self.cli("snapshot", "prune", "--all", timeout=300)
        if p.returncode != 0:
            self.report(what, [f"snapshot prune --all failed: {p.stderr.strip()[-500:]}"])
        bad = self.settled_check()
        if self.vms():
            bad.append(f"VMs left: {[v['name'] for v in self.vms()]}")
        if self.snapshots():
            bad.append(f"snapshots left: {[s['name'] for s in self.snapshots()]}")
        table = self.env.nft_table()
        if table and any("rule" in x for x in json.loads(table)["nftables"]):
            bad.append(f"NAT rules left: {table[:500]}")
        self.report(what, bad)
