"""The VM lifecycle end to end with the QEMU driver (TCG here): real
banger CLI, real bangerd and bangerd-root, a real guest kernel, inside a
network namespace this test creates. The steps run in order and share one
VM, as a user's session would."""
import json
import os
import pathlib
import re
import signal
import socket
import struct
import subprocess
import time

import pytest

from lifecycle import BANGER, Env, build_test_image, kernel_dir, process_gone, require_root

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    e = Env(tmp_path_factory.mktemp("lifecycle-qemu"))
    e.setup()
    e.image_dir, e.manifest = build_test_image()
    e.info = {}
    yield e
    e.teardown()


def known_host(env, ip):
    """Is ip in banger's known_hosts (entries may be hashed)?"""
    p = subprocess.run(["ssh-keygen", "-F", ip, "-f", str(env.state / "ssh/known_hosts")], capture_output=True)
    return p.returncode == 0


def test_import_kernel_and_register_image(env, tmp_path):
    k = kernel_dir(tmp_path, env.image_dir, env.manifest)
    out = env.json("kernel", "import", "testk", "--from", str(k))
    assert out["name"] == "testk"
    assert out["version"] == env.manifest["KERNEL_RELEASE"]
    # Firecracker needs an ELF: the bzImage was decompressed.
    assert pathlib.Path(out["vmlinux"]).read_bytes()[:4] == b"\x7fELF"
    img = env.json("image", "register", "--name", "test", "--rootfs", str(env.image_dir / "rootfs.ext4"),
                   "--kernel-ref", "testk")
    assert img["name"] == "test" and img["kernel"] == "testk"


def test_create_reaches_agent_ready(env):
    t0 = time.monotonic()
    p = env.banger("vm", "create", "--name", "lq", "--image", "test", "--vmm", "qemu", "--vcpu", "1",
                   "--memory", "256M", "--disk-size", "128M", "--nat")
    env.info["create_s"] = time.monotonic() - t0
    assert "spec:" in p.stdout + p.stderr
    vm = env.json("vm", "show", "lq")
    assert vm["state"] == "running", vm
    assert vm["ready"]["agent"] is True
    assert re.fullmatch(r"[0-9a-f-]{36}", vm["boot_id"])
    assert vm["ip"].startswith("172.16.0.")
    # Debian's kernel has a PVH entry: QEMU boots the decompressed vmlinux
    # (no firmware, no self-decompression in the guest).
    argv = pathlib.Path(f"/proc/{vm['pid']}/cmdline").read_bytes().split(b"\0")
    kernel = argv[argv.index(b"-kernel") + 1]
    assert kernel.endswith(b"/vmlinux") and pathlib.Path(kernel.decode()).read_bytes()[:4] == b"\x7fELF", argv
    env.info.update(vm=vm)
    rows = env.banger("vm", "list").stdout.splitlines()
    assert rows[0].split() == ["ID", "NAME", "STATE", "IMAGE", "IP", "VCPU", "MEM", "DISK", "CREATED"]
    assert any(" lq " in f" {r} " and "running" in r for r in rows[1:])
    # The TAP exists in the namespace, owned and enslaved to the bridge.
    links = {l["ifname"]: l for l in env.links()}
    assert vm["tap"] in links and links[vm["tap"]].get("master") == "br-fc"


def test_exec_passes_output_and_exit_code(env):
    p = env.banger("vm", "exec", "lq", "--", "uname", "-r")
    assert p.stdout.strip() == env.manifest["KERNEL_RELEASE"]
    p = env.banger("vm", "exec", "lq", "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert p.returncode == 7
    assert p.stdout == "out\n" and "err" in p.stderr
    p = env.banger("vm", "exec", "lq", "--", "cat", input="through stdin\n")
    assert p.stdout == "through stdin\n"


def test_guest_kernel_skips_its_crypto_self_tests(env):
    """cryptomgr.notests is on the guest's command line and the kernel took
    it (its self-tests were 0.2-0.3 s of a TCG boot: bench/README.md)."""
    p = env.banger("vm", "exec", "lq", "--", "cat", "/proc/cmdline")
    assert "cryptomgr.notests" in p.stdout.split(), p.stdout
    assert "alg: self-tests disabled" in env.banger("vm", "logs", "lq").stdout


def test_second_exec_while_one_runs(env):
    """Without vhost-vsock the agent has one virtio-serial channel; each exec
    is a stream on the daemon's connection over it, so a second exec runs
    at once while the first one is still running."""
    first = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "vm", "exec", "lq", "--", "sleep", "25"],
                             env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        t0 = time.monotonic()
        p = env.banger("vm", "exec", "lq", "--", "true", check=False, timeout=60)
        took = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        assert took < 10, took
        assert first.poll() is None  # still running beside it
        assert first.wait(60) == 0
    finally:
        if first.poll() is None:
            first.kill()


def test_ssh_reaches_the_guest(env):
    p = env.banger("vm", "ssh", "lq", "--", "cat", "/etc/hostname")
    assert p.stdout.strip() == "lq"
    # Trust on first use, in banger's own known_hosts file.
    assert known_host(env, env.info["vm"]["ip"])


def test_ssh_passes_arguments_and_exit_code(env):
    """`vm ssh VM -- ARGV` behaves like `vm exec`: each argument arrives as
    given (not re-split by the remote shell) and the exit code comes back."""
    p = env.banger("vm", "ssh", "lq", "--", "sh", "-c", "exit 5", check=False)
    assert p.returncode == 5, p.stderr
    p = env.banger("vm", "ssh", "lq", "--", "printf", "[%s]\\n", "a   b", "$HOME", "it's", "")
    assert p.stdout == "[a   b]\n[$HOME]\n[it's]\n[]\n", p.stdout


def test_ports_lists_dropbear(env):
    """No systemd-resolved in the test's namespace: lq.vm would not resolve
    there, so the endpoint is the address."""
    ip = env.info["vm"]["ip"]
    p = env.banger("vm", "ports", "lq")
    assert "dropbear" in p.stdout and f"{ip}:22" in p.stdout and "lq.vm" not in p.stdout, p.stdout
    ports = env.json("vm", "ports", "lq")["ports"]
    assert any(x["port"] == 22 and x["process"] == "dropbear" and x["endpoint"] == f"{ip}:22" for x in ports)


def test_stats_from_proc_and_agent(env):
    st = env.json("vm", "stats", "lq")
    assert st["vmm"]["pid"] == env.info["vm"]["pid"]
    assert st["vmm"]["rss_bytes"] > 10 << 20 and st["vmm"]["cpu_sec"] > 0
    assert 100_000 < st["guest"]["mem_total_kib"] <= 256 * 1024
    assert "load1" in st["guest"]


def test_dns_answers_vm_name(env):
    """bangerd answers <name>.vm on its loopback port (inside the namespace)."""
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x02lq\x02vm\x00" + struct.pack(">HH", 1, 1)
    code = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(5);"
            f"s.sendto(bytes.fromhex('{q.hex()}'),('127.0.0.1',5354));sys.stdout.write(s.recv(512).hex())")
    reply = bytes.fromhex(env.in_ns("/usr/bin/python3", "-c", code).stdout)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == 0  # NOERROR
    assert socket.inet_aton(env.info["vm"]["ip"]) == reply[-4:]
    q2 = q.replace(b"\x02lq", b"\x02zz")
    code2 = code.replace(q.hex(), q2.hex())
    reply2 = bytes.fromhex(env.in_ns("/usr/bin/python3", "-c", code2).stdout)
    assert reply2[3] & 0x0F == 3  # NXDOMAIN


def test_nat_rule_present(env):
    assert env.info["vm"]["ip"] in env.nft_table()


def test_stop_is_graceful_and_timely(env):
    vm = env.info["vm"]
    # What the guest synced before the stop survives it (checked after the restart).
    env.banger("vm", "exec", "lq", "--", "sh", "-c", "echo kept-across-stop > /root/keep; sync")
    t0 = time.monotonic()
    env.banger("vm", "stop", "lq")
    took = time.monotonic() - t0
    assert took < 10 + 5, took  # stop_timeout_sec default 10 s
    after = env.json("vm", "show", "lq")
    assert after["state"] == "stopped" and after["pid"] is None
    assert process_gone(vm["pid"])
    assert vm["tap"] not in {l["ifname"] for l in env.links()}
    assert vm["ip"] not in env.nft_table()
    log = env.banger("vm", "logs", "lq").stdout
    assert "poweroff requested by the host" in log  # the agent's graceful path, not a kill


def test_start_again_has_new_boot_id(env):
    old = env.info["vm"]["boot_id"]
    env.banger("vm", "start", "lq")
    vm = env.json("vm", "show", "lq")
    assert vm["state"] == "running" and vm["boot_id"] != old
    assert vm["ip"] == env.info["vm"]["ip"]  # the address is stable across restarts
    assert env.banger("vm", "exec", "lq", "--", "cat", "/root/keep").stdout == "kept-across-stop\n"
    env.info["vm"] = vm


def test_daemon_sigkill_then_reattach(env):
    st = env.json("daemon", "status")
    os.kill(st["pid"], signal.SIGKILL)
    time.sleep(0.3)
    vm = env.json("vm", "show", "lq")  # autostarts a new daemon
    assert env.json("daemon", "status")["pid"] != st["pid"]
    assert vm["state"] == "running" and vm["pid"] == env.info["vm"]["pid"]
    assert "re-attached" in env.daemon_log()
    assert env.banger("vm", "exec", "lq", "--", "cat", "/etc/hostname").stdout.strip() == "lq"


def test_kill_ends_stopped_not_error(env):
    pid = env.json("vm", "show", "lq")["pid"]
    env.banger("vm", "kill", "lq")
    vm = env.json("vm", "show", "lq")
    assert vm["state"] == "stopped" and vm["last_error"] is None
    assert process_gone(pid)
    env.banger("vm", "start", "lq")
    assert env.json("vm", "show", "lq")["state"] == "running"


def test_delete_leaves_nothing(env):
    vm = env.json("vm", "show", "lq")
    env.banger("vm", "delete", "lq")
    assert not known_host(env, vm["ip"])  # its host key entry went too
    assert env.banger("vm", "show", "lq", check=False).returncode == 1
    assert not any(l["ifname"].startswith("bgt") for l in env.links())
    assert vm["ip"] not in env.nft_table()
    assert process_gone(vm["pid"])
    assert list((env.state / "vms").iterdir()) == []
    losetup = json.loads(os.popen("losetup -J -l").read() or '{"loopdevices":[]}')
    assert not any(str(env.state) in (d.get("back-file") or "") for d in losetup["loopdevices"])
    for pid in env.ns_pids():
        if process_gone(pid):
            continue
        cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        assert vm["id"].encode() not in cmd, cmd


def test_run_rm_passes_exit_code_and_leaves_no_vm(env):
    before = env.json("vm", "list")["vms"]
    p = env.banger("vm", "run", "--image", "test", "--vmm", "qemu", "--memory", "256M", "--disk-size", "64M", "--rm",
                   "--", "sh", "-c", "cat /etc/hostname; exit 3", check=False)
    assert p.returncode == 3, p.stderr
    assert p.stdout.strip()  # the generated name, printed by the guest
    assert env.json("vm", "list")["vms"] == before
    assert not any(l["ifname"].startswith("bgt") for l in env.links())
