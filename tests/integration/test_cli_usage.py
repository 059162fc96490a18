"""What a new user meets first, checked without booting a guest: usage errors
that name what the user typed and exit 2, help texts that are true, names
checked before any work, sizes held to the host, verbs on several VMs that do
what they can, messages that name things by their names. The daemon runs in
a network namespace of its own (test_cli.py's fixtures)."""
import json
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess

import pytest

from bangerlib import BANGER, BANGERD, Rpc, bash_complete, run_cli, socket_path, stop_daemon, wait_for_socket
from test_cli import daemon, image  # noqa: F401  (fixtures)


def host_mib():
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20


def vm_names(xdg):
    return run_cli(xdg, "vm", "list", "--names", check=True).stdout.split()


def create(xdg, name, *extra, check=True):
    return run_cli(xdg, "vm", "create", "--name", name, "--image", "img1", "--no-start", "--disk-size", "64M",
                   *extra, check=check)


# ---- the top level and the daemon verbs ----

@pytest.mark.parametrize("args,bad", [(["--bogus"], "--bogus"), (["-x"], "-x"), (["--socket"], "--socket")])
def test_bad_global_option_is_reported_as_banger(build_dir, xdg, args, bad):
    p = run_cli(xdg, *args)
    assert p.returncode == 2
    assert p.stderr.startswith("banger: ") and bad in p.stderr, p.stderr
    assert str(BANGER) not in p.stderr and "src/cli" not in p.stderr


@pytest.mark.parametrize("verb", ["status", "start", "stop"])
def test_daemon_verbs_have_their_own_help(build_dir, xdg, verb):
    p = run_cli(xdg, "daemon", verb, "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"Usage: banger daemon {verb}"), p.stdout
    assert not socket_path(xdg).exists()


def group_verbs_and_json_note(xdg, group):
    out = run_cli(xdg, group, "--help", check=True).stdout
    verbs = re.findall(r"^  ([a-z][a-z-]*)(?:,[ a-z,]+)?  ", out.split("Commands:\n", 1)[1], re.M)
    note = " ".join(out.split("Commands:\n", 1)[1].split("\n\n", 1)[1].split())
    if note.startswith("Every command takes --json"):
        return verbs, set()
    m = re.match(r"Every command takes -h/--help, and all but (.+) take --json \(machine-readable output\)\.", note)
    assert m, note
    return verbs, set(re.split(r", | and ", m.group(1)))


@pytest.mark.parametrize("group", ["vm", "image", "kernel", "snapshot", "daemon"])
def test_group_help_says_which_verbs_take_json(build_dir, xdg, group):
    verbs, without = group_verbs_and_json_note(xdg, group)
    assert verbs and without <= set(verbs), (verbs, without)
    if group == "vm":
        assert "exec" in verbs and "exec" not in without and "ssh" in without
    for verb in verbs:
        # --json first, then an option no verb has: the error names the first
        # one the verb refuses.
        p = run_cli(xdg, group, verb, "--json", "--no-such-option")
        assert p.returncode == 2, (verb, p.stderr)
        refused = "--json" in p.stderr
        assert refused == (verb in without), (group, verb, p.stderr)
    assert not socket_path(xdg).exists()


def test_doctor_without_config_file_says_defaults(build_dir, xdg):
    rows = json.loads(run_cli(xdg, "--json", "doctor").stdout)
    row = next(r for r in rows if r["check"] == "config")
    assert row["status"] == "PASS" and row["details"][0].startswith("none (defaults)"), row


# ---- names: one rule, a hostname label, checked before any work ----

@pytest.mark.parametrize("args", [["vm", "create", "--name", "x-"], ["vm", "run", "--name", "web-", "--", "true"],
                                  ["image", "register", "--name", "img-", "--rootfs", "/", "--kernel-ref", "k"],
                                  ["kernel", "import", "k-", "--from", "/"]])
def test_name_ending_in_hyphen_is_a_usage_error(build_dir, xdg, args):
    p = run_cli(xdg, *args)
    assert p.returncode == 2, p.stderr
    assert "starting and ending with a letter or digit" in p.stderr
    assert not socket_path(xdg).exists()


def test_daemon_refuses_name_ending_in_hyphen_before_any_work(image, xdg):
    rpc = Rpc(socket_path(xdg))
    m = rpc.call("vm.create", {"name": "x-", "image": "img1", "no_start": True, "disk_bytes": 64 << 20})
    rpc.close()
    assert m["error"]["code"] == -32602 and m["error"]["data"]["param"] == "name", m
    assert vm_names(xdg) == []
    assert not (pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/vms").exists() or \
        list((pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/vms").iterdir()) == []


# ---- defaults a user expects ----

def test_create_defaults_are_fixed_and_shown(image, xdg):
    out = run_cli(xdg, "vm", "create", "--help", check=True).stdout
    assert "default: 2 (built in)" in out and "default: 1.0G (built in)" in out, out
    p = create(xdg, "d1")
    assert "vcpu=2 memory=1.0G" in p.stderr, p.stderr
    vm = json.loads(run_cli(xdg, "--json", "vm", "show", "d1", check=True).stdout)
    assert vm["vcpu"] == 2 and vm["memory_mib"] == 1024


# ---- errors the daemon finds in what the user typed: exit 2, the option's name ----

@pytest.mark.parametrize("args,flag", [
    (["vm", "create", "--name", "u1", "--image", "img1", "--no-start", "--memory", "32M"], "--memory"),
    (["vm", "create", "--name", "u1", "--image", "img1", "--no-start", "--disk-size", "8M"], "--disk-size"),
    (["vm", "kill", "--signal", "FROB", "nosuch"], "--signal"),
    (["vm", "stop", "--timeout", "7200", "nosuch"], "--timeout"),
])
def test_daemon_side_usage_error_names_the_option(image, xdg, args, flag):
    p = run_cli(xdg, *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert f"invalid {flag}: it must be" in p.stderr, p.stderr
    assert "_mib" not in p.stderr and "_bytes" not in p.stderr and "_sec" not in p.stderr and '"signal"' not in p.stderr
    assert f"Try 'banger {args[0]} {args[1]} --help'" in p.stderr
    assert vm_names(xdg) == []


# ---- sizes held to what the host has ----

def test_sizes_over_the_host_are_refused_at_create_and_set(image, xdg):
    over_mem = f"{(host_mib() // 1024) + 2}G"
    p = create(xdg, "big", "--memory", over_mem, check=False)
    assert p.returncode == 2 and "invalid --memory" in p.stderr and "the memory this host has" in p.stderr, p.stderr
    p = create(xdg, "big", "--vcpu", str(os.cpu_count() + 1), check=False)
    assert p.returncode == 2 and "invalid --vcpu" in p.stderr and f"at most {os.cpu_count()}" in p.stderr, p.stderr
    assert vm_names(xdg) == []  # nothing made, the name is free
    create(xdg, "big")
    p = run_cli(xdg, "vm", "set", "big", "--memory", over_mem)
    assert p.returncode == 2 and "invalid --memory" in p.stderr, p.stderr
    vm = json.loads(run_cli(xdg, "--json", "vm", "show", "big", check=True).stdout)
    assert vm["memory_mib"] == 1024


def test_start_of_a_vm_too_big_for_the_host_says_how_to_fix_it(daemon, image, xdg):
    """A VM sized before the host changed (here: its record edited while the
    daemon is down) is refused before anything happens, with the fix."""
    create(xdg, "grown")
    stop_daemon(daemon)
    con = sqlite3.connect(pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/banger.db")
    con.execute("UPDATE vms SET mem_mib = ? WHERE name = 'grown'", (host_mib() + 1024,))
    con.commit()
    con.close()
    p = subprocess.Popen(["unshare", "-n", str(BANGERD)], env=xdg, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    wait_for_socket(socket_path(xdg), proc=p)
    try:
        r = run_cli(xdg, "vm", "start", "grown")
        assert r.returncode == 1
        assert "more than this host's" in r.stderr and "banger vm set grown --memory" in r.stderr, r.stderr
        vm = json.loads(run_cli(xdg, "--json", "vm", "show", "grown", check=True).stdout)
        assert vm["state"] == "created" and vm["last_error"] is None, vm
    finally:
        stop_daemon(p)


# ---- verbs on several VMs: do what can be done, report each failure ----

def test_delete_deletes_what_exists_and_reports_the_rest(image, xdg):
    for n in ("t1", "t2"):
        create(xdg, n)
    p = run_cli(xdg, "vm", "delete", "t1", "nosuch", "t2")
    assert p.returncode == 1
    assert p.stdout.splitlines() == ["deleted t1", "deleted t2"]
    assert "nosuch" in p.stderr
    assert vm_names(xdg) == []
    # --json: every reference has its result, in the order given.
    create(xdg, "t3")
    p = run_cli(xdg, "--json", "vm", "delete", "nosuch", "t3")
    assert p.returncode == 1
    res = json.loads(p.stdout)["results"]
    assert [(r["ref"], r["ok"]) for r in res] == [("nosuch", False), ("t3", True)]


def test_stop_of_a_vm_that_is_not_running_says_so(image, xdg):
    create(xdg, "s1")
    p = run_cli(xdg, "vm", "stop", "s1", check=True)
    assert p.stdout.strip() == "s1 is not running (created)", p.stdout


# ---- names, not ids ----

def test_kernel_rm_names_the_kernel_and_its_users(image, xdg):
    kid = json.loads(run_cli(xdg, "--json", "kernel", "show", "k1", check=True).stdout)["id"]
    p = run_cli(xdg, "kernel", "rm", "k1")
    assert p.returncode == 1
    assert "kernel k1 is still in use by image(s) img1" in p.stderr, p.stderr
    assert kid[:8] not in p.stderr


def test_vm_run_deletes_a_vm_that_did_not_start_and_create_keeps_it(image, xdg):
    """No Firecracker here (tests that need it use the fake): the first start
    fails. vm create keeps the VM in error and says what to do; vm run
    deletes what it made."""
    if shutil.which("firecracker"):
        pytest.skip("a firecracker binary is installed: this start would not fail")
    p = run_cli(xdg, "vm", "create", "--name", "f1", "--image", "img1", "--vmm", "firecracker", "--disk-size", "64M",
                "--memory", "128M")
    assert p.returncode == 1, p.stderr
    assert "stays, in state error" in p.stderr and "banger vm start" in p.stderr and "banger vm set" in p.stderr, \
        p.stderr
    assert vm_names(xdg) == ["f1"]
    run_cli(xdg, "vm", "delete", "f1", check=True)
    p = run_cli(xdg, "vm", "run", "--name", "f2", "--image", "img1", "--vmm", "firecracker", "--disk-size", "64M",
                "--memory", "128M", "--", "true")
    assert p.returncode == 1, p.stderr
    assert "did not start" in p.stderr, p.stderr
    assert vm_names(xdg) == []


# ---- progress: every stage ends with its final state; off a terminal, lines, not bars ----

def import_with_initrd(xdg, tmp_path, name, tty):
    initrd = tmp_path / f"{name}.initrd"
    initrd.write_bytes(os.urandom(3_000_000))  # copied in 1 MiB steps: the daemon reports 34%, 69%, 100%
    args = [str(BANGER), "kernel", "import", name, "--from", "/bin/busybox", "--initrd", str(initrd)]
    if tty:  # a pseudo-terminal for the CLI's stderr
        args = ["script", "-qec", " ".join(args), "/dev/null"]
    p = subprocess.run(args, env=xdg, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stderr if not tty else p.stdout


def test_progress_off_a_terminal_is_stage_lines_ending_in_the_final_state(daemon, xdg, tmp_path):
    if not os.path.exists("/bin/busybox"):
        pytest.skip("no /bin/busybox to stand in for a kernel")
    err = import_with_initrd(xdg, tmp_path, "p1", tty=False)
    assert "[" not in err and "left" not in err and "%" not in err, err  # no bars, no stale percentages
    assert "copy: done, 2.9M in " in err, err


def test_progress_on_a_terminal_leaves_each_stage_finished(daemon, xdg, tmp_path):
    if not os.path.exists("/bin/busybox") or not shutil.which("script"):
        pytest.skip("needs /bin/busybox and script(1)")
    out = import_with_initrd(xdg, tmp_path, "p2", tty=True)
    finished = re.split(r"[\r\n]+", out.replace("\x1b[K", ""))
    assert any(re.fullmatch(r"  copy +[0-9.]+s  done, 2\.9M", l) for l in finished), finished


# ---- completion offers the names of images and kernels ----

def completion_env(xdg):
    return dict(xdg, PATH=f"{BANGER.parent}:{os.environ['PATH']}")


def test_list_names_never_starts_the_daemon(build_dir, xdg):
    for group in ("image", "kernel"):
        p = run_cli(xdg, group, "list", "--names")
        assert p.returncode == 1 and p.stdout == ""
    assert not socket_path(xdg).exists()


def test_bash_completes_image_and_kernel_names(image, xdg, tmp_path):
    assert run_cli(xdg, "image", "list", "--names", check=True).stdout == "img1\n"
    assert run_cli(xdg, "kernel", "list", "--names", check=True).stdout == "k1\n"
    script = tmp_path / "banger.bash"
    script.write_text(run_cli(xdg, "completion", "bash", check=True).stdout)
    env = completion_env(xdg)
    assert bash_complete(script, env, "banger", "vm", "create", "--image", "") == {"img1"}
    assert bash_complete(script, env, "banger", "vm", "run", "--image", "i") == {"img1"}
    assert bash_complete(script, env, "banger", "image", "delete", "") == {"img1"}
    assert bash_complete(script, env, "banger", "image", "show", "") == {"img1"}
    assert bash_complete(script, env, "banger", "kernel", "rm", "") == {"k1"}
    assert bash_complete(script, env, "banger", "image", "register", "--kernel-ref", "") == {"k1"}


def test_zsh_completes_image_and_kernel_names(image, xdg, tmp_path):
    if not shutil.which("zsh"):
        pytest.skip("zsh is not installed")
    script = tmp_path / "_banger"
    script.write_text(run_cli(xdg, "completion", "zsh", check=True).stdout)

    def complete(*words):
        # compadd and compdef stand in for zsh's completion system: what
        # _banger would offer is what it hands to compadd.
        prog = (f"compdef() {{ :; }}; compadd() {{ [[ $1 == -- ]] && shift; print -l -- \"$@\"; }}; "
                f"_files() {{ :; }}; _describe() {{ :; }}; source {script}; "
                f"words=({' '.join(repr(w) for w in words)}); CURRENT={len(words)}; PREFIX={words[-1]!r}; _banger")
        r = subprocess.run(["zsh", "-f", "-c", prog], capture_output=True, text=True, env=completion_env(xdg))
        assert r.returncode == 0, r.stderr
        return set(r.stdout.split())

    assert complete("banger", "vm", "create", "--image", "") == {"img1"}
    assert complete("banger", "image", "delete", "") == {"img1"}
    assert complete("banger", "kernel", "rm", "") == {"k1"}
    assert complete("banger", "image", "import", "x", "--kernel-ref", "") == {"k1"}


def test_fish_completes_image_and_kernel_names(image, xdg, tmp_path):
    if not shutil.which("fish"):
        pytest.skip("fish is not installed")
    script = tmp_path / "banger.fish"
    script.write_text(run_cli(xdg, "completion", "fish", check=True).stdout)

    def complete(line):
        r = subprocess.run(["fish", "-c", f"source {script}; complete -C '{line}'"], capture_output=True, text=True,
                           env=completion_env(xdg))
        return {l.split("\t")[0] for l in r.stdout.splitlines()}

    assert "img1" in complete("banger vm create --image ")
    assert "img1" in complete("banger image delete ")
    assert "k1" in complete("banger kernel rm ")
    assert "k1" in complete("banger image register --kernel-ref ")
