"""The banger CLI's VM, image, kernel and completion commands, driven as a user
would. Nothing here boots a VM: argument checking, help texts, completion
scripts, and round trips through a real daemon for what needs no guest
(kernels, images, VMs created with --no-start). The daemon runs in a network
namespace of its own so nothing it might do can touch the host's links."""
import json
import stat
import os
import pathlib
import re
import shutil
import struct
import subprocess

import pytest

from bangerlib import BANGERD, Rpc, bash_complete, run_cli, socket_path, stop_daemon, wait_for_socket


@pytest.fixture
def daemon(build_dir, xdg):
    p = subprocess.Popen(["unshare", "-n", str(BANGERD)], env=xdg, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    wait_for_socket(socket_path(xdg), proc=p)
    yield p
    stop_daemon(p)


# ---- usage errors: exit 2, a message naming the problem, and no daemon ----

USAGE_ERRORS = [
    (["vm", "create", "--memory", "0"], "memory must be greater than zero"),
    (["vm", "create", "--memory", "-1"], "invalid memory '-1'"),
    (["vm", "create", "--memory", "-512M"], "invalid memory"),
    (["vm", "create", "--disk-size", "0G"], "disk size must be greater than zero"),
    (["vm", "create", "--disk-size", "-8G"], "invalid disk size"),
    (["vm", "create", "--disk-size", "8"], "needs a unit"),
    (["vm", "create", "--disk-size", "1000K"], "not a whole number of MiB"),
    (["vm", "create", "--vcpu", "0"], "invalid vCPU count '0'"),
    (["vm", "create", "--vcpu", "-2"], "invalid vCPU count"),
    (["vm", "create", "--vcpu", "65"], "invalid vCPU count"),
    (["vm", "create", "--name", "Bad_Name"], "invalid name 'Bad_Name'"),
    (["vm", "create", "--name", "-x"], "invalid name"),
    (["vm", "create", "--name", "a" * 64], "invalid name"),
    (["vm", "create", "--vmm", "xen"], "invalid --vmm 'xen'"),
    (["vm", "create", "--bogus"], "--bogus"),
    (["vm", "create", "extra"], "unexpected argument 'extra'"),
    (["vm", "run", "--rm", "-d"], "exclude each other"),
    (["vm", "run", "--memory", "0", "--", "true"], "memory must be greater than zero"),
    (["vm", "set", "x", "--memory", "0"], "memory must be greater than zero"),
    (["vm", "set", "x", "--vcpu", "0"], "invalid vCPU count"),
    (["vm", "set", "x"], "nothing to change"),
    (["vm", "start"], "at least one VM"),
    (["vm", "stop", "--timeout", "0", "x"], "--timeout"),
    (["vm", "kill", "--timeout", "3", "x"], "--timeout"),
    (["vm", "show"], "missing argument"),
    (["vm", "show", "a", "b"], "unexpected argument 'b'"),
    (["vm", "exec", "x"], "expects a VM and a command"),
    (["vm", "logs", "x", "--tail", "0"], "--tail"),
    (["vm", "frobnicate"], "unknown command 'frobnicate'"),
    (["vm", "--bogus"], "unknown option '--bogus'"),
    (["kernel", "import", "k"], "--from"),
    (["kernel", "import", "Bad", "--from", "/"], "invalid name 'Bad'"),
    (["kernel", "import", "k", "--from", "/nonexistent/vmlinux"], "/nonexistent/vmlinux"),
    (["image", "register", "--name", "i"], "required"),
    (["image", "register", "--name", "i", "--rootfs", "/nonexistent", "--kernel-ref", "k"], "/nonexistent"),
    (["image", "show"], "missing argument"),
    (["completion", "tcsh"], "unknown shell 'tcsh'"),
    (["completion"], "missing argument"),
    (["completion", "--bogus"], "banger completion: unknown option or missing value: --bogus"),
    (["doctor", "--bogus"], "banger doctor: unknown option or missing value: --bogus"),
    (["doctor", "extra"], "banger doctor: unexpected argument 'extra'"),
    (["events", "--bogus"], "banger events: unknown option or missing value: --bogus"),
    (["events", "--vm"], "banger events: unknown option or missing value: --vm"),
    (["events", "--vm", "Bad_Name"], "invalid name 'Bad_Name'"),
    (["events", "extra"], "banger events: unexpected argument 'extra'"),
    (["vm", "list", "--watch", "--names"], "does not go with --watch"),
]


@pytest.mark.parametrize("args,message", USAGE_ERRORS, ids=[" ".join(a)[:40] for a, _ in USAGE_ERRORS])
def test_usage_error(build_dir, xdg, args, message):
    p = run_cli(xdg, *args)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr
    assert "--help" in p.stderr or "Usage:" in p.stdout
    # One report, from banger: getopt's own ("unrecognized option") stays quiet.
    assert "unrecognized option" not in p.stderr and "invalid option" not in p.stderr, p.stderr
    # Refused before any RPC: no daemon was started for it.
    assert not socket_path(xdg).exists()


# ---- help texts ----

def group_verbs(env, group):
    out = run_cli(env, group, "--help", check=True).stdout
    section = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    verbs = []
    for line in section.splitlines():
        verbs += [n.strip() for n in re.split(r"\s{2,}", line.strip())[0].split(",")]
    return [v for v in verbs if v]


def test_help_for_every_command(build_dir, xdg):
    top = run_cli(xdg, "--help", check=True).stdout
    commands = re.findall(r"^  ([a-z]+) ", top.split("Commands:\n", 1)[1].split("\n\n", 1)[0], re.M)
    assert {"vm", "image", "kernel", "completion", "ps"} <= set(commands)
    for cmd in commands:
        p = run_cli(xdg, cmd, "--help")
        assert p.returncode == 0, (cmd, p.stderr)
        assert p.stdout.startswith("Usage: banger "), cmd
    expected = {
        "vm": {"create", "run", "start", "stop", "restart", "kill", "delete", "rm", "list", "ls", "ps", "show", "logs",
               "ssh", "exec", "ports", "stats", "set", "prune"},
        "image": {"build", "register", "promote", "list", "show", "delete"},
        "kernel": {"import", "list", "show", "rm"},
        "daemon": {"status", "start", "stop"},
    }
    for group, want in expected.items():
        verbs = set(group_verbs(xdg, group))
        assert want <= verbs, (group, want - verbs)
        for verb in verbs:
            p = run_cli(xdg, group, verb, "--help")
            assert p.returncode == 0, (group, verb, p.stderr)
            assert p.stdout.startswith(f"Usage: banger {group} "), (group, verb, p.stdout)
            assert f"Usage: banger {group} COMMAND" not in p.stdout, (group, verb)  # its own help, not the group's
            assert len(p.stdout.splitlines()) >= 3, (group, verb)
    assert not socket_path(xdg).exists()


def test_group_without_verb_shows_help_and_exits_2(build_dir, xdg):
    p = run_cli(xdg, "vm")
    assert p.returncode == 2
    assert "create" in p.stdout and "prune" in p.stdout


def fmt_size(n):
    """The CLI's format_size: binary units, one decimal from G up or below 10."""
    v, u = float(n), 0
    while v >= 1024 and u < 5:
        v /= 1024
        u += 1
    unit = "BKMGTP"[u]
    if u == 0:
        return f"{n}B"
    if u < 3 and v >= 10:
        return f"{v:.0f}{unit}"
    return f"{v:.1f}{unit}"


def test_create_help_shows_built_in_defaults(build_dir, xdg):
    out = run_cli(xdg, "vm", "create", "--help", check=True).stdout
    assert "default: 2 (built in)" in out
    assert "default: 1.0G (built in)" in out
    assert "default: 8.0G (built in)" in out
    assert "default: debian-bookworm" in out


def write_config(xdg, text):
    d = pathlib.Path(xdg["XDG_CONFIG_HOME"]) / "banger"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(d / "config.toml", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def test_create_help_shows_config_defaults(build_dir, xdg):
    write_config(xdg, '[vm_defaults]\nvcpu = 3\nmemory = "1536M"\ndisk_size = "12G"\nimage = "myimg"\nnat = true\n')
    for verb in ("create", "run"):
        out = run_cli(xdg, "vm", verb, "--help", check=True).stdout
        assert "default: 3 (config)" in out
        assert "default: 1.5G (config)" in out
        assert "default: 12.0G (config)" in out
        assert "default: myimg (config)" in out
        assert re.search(r"--nat, --no-nat .*default: on", out)


def test_create_refuses_bad_config(build_dir, xdg):
    write_config(xdg, "[vm_defaults]\nvcpu = 0\n")
    p = run_cli(xdg, "vm", "create", "--no-start")
    assert p.returncode == 1
    assert "config.toml" in p.stderr and "vcpu" in p.stderr
    assert not socket_path(xdg).exists()


# ---- completion scripts ----

@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_is_valid(build_dir, xdg, tmp_path, shell):
    exe = shutil.which(shell)
    if not exe:
        pytest.skip(f"{shell} is not installed")
    p = run_cli(xdg, "completion", shell, check=True)
    script = tmp_path / f"banger.{shell}"
    script.write_text(p.stdout)
    r = subprocess.run([exe, "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "create" in p.stdout and "disk-size" in p.stdout and "prune" in p.stdout


def test_bash_completion_completes(build_dir, xdg, tmp_path):
    script = tmp_path / "banger.bash"
    script.write_text(run_cli(xdg, "completion", "bash", check=True).stdout)

    def complete(*words):
        return bash_complete(script, xdg, *words)

    assert {"vm", "image", "kernel", "completion"} <= complete("banger", "")
    assert complete("banger", "vm", "cr") == {"create"}
    assert complete("banger", "--json", "vm", "pr") == {"prune"}
    assert {"--disk-size", "--no-start", "--vmm"} <= complete("banger", "vm", "create", "--")
    assert complete("banger", "vm", "create", "--vmm", "") == {"firecracker", "qemu"}
    assert complete("banger", "completion", "") == {"bash", "zsh", "fish"}
    assert complete("banger", "events", "--") == {"--vm", "--json", "--help"}
    assert "--watch" in complete("banger", "vm", "list", "--")


def test_fish_completion_completes(build_dir, xdg, tmp_path):
    if not shutil.which("fish"):
        pytest.skip("fish is not installed")
    script = tmp_path / "banger.fish"
    script.write_text(run_cli(xdg, "completion", "fish", check=True).stdout)
    r = subprocess.run(["fish", "-c", f"source {script}; complete -C 'banger vm cr'; complete -C 'banger image '"],
                       capture_output=True, text=True, env=xdg)
    names = {line.split("\t")[0] for line in r.stdout.splitlines()}
    assert "create" in names and "register" in names and "promote" in names


# ---- against a real daemon ----

HEADER = ["ID", "NAME", "STATE", "IMAGE", "IP", "VCPU", "MEM", "DISK", "CREATED"]


def test_vm_list_empty(daemon, xdg):
    p = run_cli(xdg, "vm", "list", check=True)
    assert p.stdout.splitlines() == ["   ".join(h for h in HEADER)] or p.stdout.split() == HEADER
    assert len(p.stdout.splitlines()) == 1
    assert run_cli(xdg, "ps", "-q", check=True).stdout == ""
    assert run_cli(xdg, "vm", "list", "--names", check=True).stdout == ""
    assert json.loads(run_cli(xdg, "--json", "vm", "list", check=True).stdout) == {"vms": []}


def test_vm_show_missing(daemon, xdg):
    p = run_cli(xdg, "vm", "show", "nosuch")
    assert p.returncode == 1
    assert "nosuch" in p.stderr
    assert p.stdout == ""


def test_vm_names_never_starts_daemon(build_dir, xdg):
    p = run_cli(xdg, "vm", "list", "--names")
    assert p.returncode == 1
    assert not socket_path(xdg).exists()


def static_elf_executable():
    """A statically linked ET_EXEC ELF stands in for a vmlinux (the daemon
    checks the ELF type, and nothing here boots it)."""
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        try:
            with open(cand, "rb") as f:
                hdr = f.read(18)
        except OSError:
            continue
        if hdr[:4] == b"\x7fELF" and struct.unpack_from("<H", hdr, 16)[0] == 2:
            return cand
    pytest.skip("no static ET_EXEC binary (busybox-static) to stand in for a vmlinux")


@pytest.fixture
def image(daemon, xdg, tmp_path):
    vmlinux = tmp_path / "vmlinux"
    shutil.copy(static_elf_executable(), vmlinux)
    rootfs = tmp_path / "rootfs.ext4"
    with open(rootfs, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(rootfs)], check=True)
    run_cli(xdg, "kernel", "import", "k1", "--from", str(vmlinux), check=True)
    run_cli(xdg, "image", "register", "--name", "img1", "--rootfs", str(rootfs), "--kernel-ref", "k1", check=True)
    return {"vmlinux": vmlinux, "rootfs": rootfs}


def test_kernel_and_image_round_trip(image, xdg):
    kl = run_cli(xdg, "kernel", "list", check=True).stdout.splitlines()
    assert kl[0].split() == ["NAME", "VERSION", "INITRD", "MODULES", "SIZE", "CREATED"]
    assert kl[1].split()[0] == "k1"
    k = json.loads(run_cli(xdg, "--json", "kernel", "show", "k1", check=True).stdout)
    assert k["name"] == "k1" and k["size"] == image["vmlinux"].stat().st_size
    assert "sha256:" in run_cli(xdg, "kernel", "show", "k1", check=True).stdout

    il = run_cli(xdg, "image", "ls", check=True).stdout.splitlines()
    assert il[1].split()[:3] == ["img1", "k1", "no"]
    assert il[1].split()[-1] == str(image["rootfs"])
    shown = run_cli(xdg, "image", "show", "img1", check=True).stdout
    assert "rootfs:     " + str(image["rootfs"]) in shown

    p = run_cli(xdg, "kernel", "rm", "k1")
    assert p.returncode == 1 and "img1" in p.stderr  # still in use
    run_cli(xdg, "image", "delete", "img1", check=True)
    assert image["rootfs"].exists()  # registered in place: left alone
    run_cli(xdg, "kernel", "rm", "k1", check=True)
    assert json.loads(run_cli(xdg, "--json", "kernel", "list", check=True).stdout)["kernels"] == []
    p = run_cli(xdg, "image", "show", "img1")
    assert p.returncode == 1 and "img1" in p.stderr


def vm_dirs(xdg):
    d = pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/vms"
    return sorted(x.name for x in d.iterdir()) if d.exists() else []


def test_vm_create_no_start_set_and_delete(image, xdg):
    p = run_cli(xdg, "vm", "create", "--name", "t1", "--image", "img1", "--no-start", "--disk-size", "64M",
                "--memory", "128", "--vcpu", "1", check=True)
    assert "spec: name=t1 image=img1 vcpu=1 memory=128M disk=64M" in p.stderr
    assert re.search(r"^prepare: ", p.stderr, re.M)  # plain progress lines off a terminal
    assert p.stdout.startswith("t1 (") and "created" in p.stdout
    rows = run_cli(xdg, "vm", "list", check=True).stdout.splitlines()
    assert len(rows) == 2
    cols = rows[1].split()
    vm_id = json.loads(run_cli(xdg, "--json", "vm", "show", "t1", check=True).stdout)["id"]
    assert cols[:4] == [vm_id[:12], "t1", "created", "img1"]
    assert cols[5:8] == ["1", "128M", "64M"]
    assert run_cli(xdg, "ps", "-q", check=True).stdout.split() == [vm_id]
    assert vm_dirs(xdg) == [vm_id]

    run_cli(xdg, "vm", "set", "t1", "--vcpu", "2", "--memory", "1G", check=True)
    shown = run_cli(xdg, "vm", "show", vm_id[:6], check=True).stdout
    assert "resources:  2 vCPU, 1.0G memory, 64M disk" in shown

    # The same VM twice: deleted once, reported once.
    p = run_cli(xdg, "vm", "delete", "t1", "t1", check=True)
    assert p.stdout.splitlines() == ["deleted t1"]
    assert run_cli(xdg, "vm", "list", "-q", check=True).stdout == ""
    assert vm_dirs(xdg) == []


def test_vm_create_json_events(image, xdg):
    p = run_cli(xdg, "--json", "vm", "create", "--name", "j1", "--image", "img1", "--no-start", "--disk-size", "64M",
                check=True)
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert events[0]["event"] == "spec" and events[0]["name"] == "j1" and events[0]["disk_bytes"] == 64 << 20
    assert any(e["event"] == "progress" and e["stage"] == "prepare" for e in events)
    assert events[-1]["event"] == "result" and events[-1]["vm"]["state"] == "created"
    run_cli(xdg, "vm", "rm", "j1", check=True)


def test_vm_list_brief(image, xdg):
    """vm.list with "brief": the table's fields of each VM, the same values as
    the whole record (docs/protocol.md); without it, whole records."""
    for n in ("b1", "b2"):
        run_cli(xdg, "vm", "create", "--name", n, "--image", "img1", "--no-start", "--disk-size", "64M", check=True)
    rpc = Rpc(socket_path(xdg))
    full = rpc.call("vm.list")["result"]["vms"]
    brief = rpc.call("vm.list", {"brief": True})["result"]["vms"]
    keys = ["id", "name", "state", "image", "ip", "vcpu", "memory_mib", "disk_bytes", "created_at"]
    assert [list(v) for v in brief] == [keys, keys]
    assert brief == [{k: v[k] for k in keys} for v in full]
    assert [v["name"] for v in brief] == ["b1", "b2"] and brief[0]["image"] == "img1"
    assert rpc.call("vm.list", {"brief": False})["result"]["vms"] == full
    assert rpc.call("vm.list", {"brief": "yes"})["error"]["code"] == -32602
    run_cli(xdg, "vm", "rm", "b1", "b2", check=True)


VM_KEYS = ["id", "name", "state", "last_error", "image", "vmm", "vcpu", "memory_mib", "disk_bytes", "nat", "ip", "mac",
           "tap", "dns_name", "pid", "boot_id", "ready", "created_at", "updated_at", "log_path", "idle_timeout_sec",
           "idle_action", "idle", "last_used_at"]


def test_vm_list_json_text_is_pinned(image, xdg):
    """`vm list --json` is read by scripts: its keys, their order and its
    layout (2-space indent, ": " and one value a line) stay as they are,
    whatever makes it faster."""
    for n in ("j1", "j2"):
        run_cli(xdg, "vm", "create", "--name", n, "--image", "img1", "--no-start", "--disk-size", "64M", check=True)
    out = run_cli(xdg, "vm", "list", "--json", check=True).stdout
    doc = json.loads(out)
    assert out == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    assert list(doc) == ["vms"] and [v["name"] for v in doc["vms"]] == ["j1", "j2"]
    for v in doc["vms"]:
        assert list(v) == VM_KEYS
        assert list(v["ready"]) == ["vmm", "agent", "ssh"] and list(v["idle"]) == ["timeout_sec", "action"]
        assert v["state"] == "created" and v["pid"] is None and isinstance(v["disk_bytes"], int)
    assert out.startswith('{\n  "vms": [\n    {\n      "id": "')
    assert run_cli(xdg, "--json", "vm", "list", check=True).stdout == out
    run_cli(xdg, "vm", "rm", "j1", "j2", check=True)


def test_vm_prune_asks_first(image, xdg):
    for n in ("p1", "p2"):
        run_cli(xdg, "vm", "create", "--name", n, "--image", "img1", "--no-start", "--disk-size", "64M", check=True)
    p = run_cli(xdg, "vm", "prune", input="n\n")
    assert p.returncode == 1 and "p1 (created)" in p.stderr and "nothing deleted" in p.stderr
    assert sorted(run_cli(xdg, "vm", "list", "--names", check=True).stdout.split()) == ["p1", "p2"]
    p = run_cli(xdg, "vm", "prune", input="y\n", check=True)
    assert sorted(p.stdout.splitlines()) == ["deleted p1", "deleted p2"]
    assert run_cli(xdg, "vm", "list", "--names", check=True).stdout == ""
    assert vm_dirs(xdg) == []


def test_image_promote_copies_into_the_store(image, xdg):
    """promote makes a registered image independent of its original file."""
    before = json.loads(run_cli(xdg, "--json", "image", "show", "img1", check=True).stdout)
    assert before["managed"] is False
    run_cli(xdg, "image", "promote", "img1", check=True)
    after = json.loads(run_cli(xdg, "--json", "image", "show", "img1", check=True).stdout)
    assert after["managed"] is True
    new = pathlib.Path(after["rootfs"])
    assert new != image["rootfs"] and new.parent.name == "img1" and new.parent.parent.name == "images"
    assert new.read_bytes() == image["rootfs"].read_bytes()
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    image["rootfs"].unlink()  # the original can go now
    # Promoting again changes nothing; deleting removes banger's copy.
    run_cli(xdg, "image", "promote", "img1", check=True)
    run_cli(xdg, "image", "delete", "img1", check=True)
    assert not new.exists() and not new.parent.exists()
